"""Real local servers the delivery tests talk to: an HTTP endpoint that records requests, and SMTP.

`HttpRecorder` is an aiohttp server on 127.0.0.1 answering with scripted
replies (per path); `SmtpSink` is aiosmtpd's real SMTP server keeping every
message it accepts.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Self

from aiohttp import web

from orderwatch.broker import free_port


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = Callable[[Request], tuple[int, Any]]


class HttpRecorder:
    """Records requests; `replies[path]` decides the answer (default: 200 and `{"errcode": 0}`).

    With `hold_after` = n, every request after the n-th is recorded and then left without an
    answer until `release()`: a slow endpoint with messages in flight.
    """

    def __init__(self, hold_after: int | None = None) -> None:
        self.requests: list[Request] = []
        self.replies: dict[str, Reply] = {}
        self.port = free_port()
        self.hold_after = hold_after
        self._released = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def release(self) -> None:
        """Answer the held requests and hold no more (callable from any thread)."""
        self.hold_after = None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._released.set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        rec = Request(request.method, request.path, dict(request.query), dict(request.headers), body)
        self.requests.append(rec)
        if self.hold_after is not None and len(self.requests) > self.hold_after:
            await self._released.wait()
        status, answer = self.replies.get(request.path, lambda r: (200, {"errcode": 0, "errmsg": "ok"}))(rec)
        if isinstance(answer, web.Response):  # a reply that needs its own headers (Retry-After…)
            answer.set_status(status)
            return answer
        if isinstance(answer, str):
            return web.Response(status=status, text=answer)
        return web.json_response(answer, status=status)

    async def start(self) -> HttpRecorder:
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class HttpRecorderThread:
    """The same recorder on its own event loop in a thread (for tests that are not async)."""

    def __init__(self, hold_after: int | None = None) -> None:
        self.recorder = HttpRecorder(hold_after)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> HttpRecorder:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.recorder.start(), self.loop).result(10)
        return self.recorder

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.recorder.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 keeping the messages it accepts."""

    port: int = field(default_factory=free_port)
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    # Scripted refusals: return an SMTP reply line to answer with it, None to go on as usual.
    refuse_rcpt: Callable[[str], str | None] = lambda address: None
    refuse_data: Callable[[], str | None] = lambda: None
    quit_reply: str = "221 Bye"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        refusal = self.refuse_rcpt(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return self.quit_reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        refusal = self.refuse_data()
        if refusal:
            return refusal
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def __enter__(self) -> Self:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpts, m in self.messages if address in rcpts]
