"""An HTTP endpoint that ERPs and scripts push changes to (aiohttp).

POST a JSON object or an array of them. Without `fields` in the config each
object is a canonical change record (`source` may be left out; `entity` too
when the config names one); with `fields`, each object is a source row mapped
like an sql row (`key`, `seq` and optionally `op`, `ts` name its columns).

Answers: 200 all accepted; 400 with the reason of each bad record (the good
ones of the batch are accepted all the same); 401 bad signature or token;
413 body over `max_bytes`; 503 when publishing failed (nothing accepted:
send again). A record whose seq is not newer than the last one accepted for
its key is a duplicate (a re-sent batch): acknowledged, not published again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from aiohttp import web

from connectors import metrics
from connectors.base import Connector, Deliver, Notice, PollResult
from connectors.dates import parse_datetime
from connectors.mapping import FieldMapping, MappingError, make_key
from orderwatch.record import (
    MAX_RECORD_BYTES,
    MAX_RECORDS,
    ChangeRecord,
    DeadLetter,
    InvalidRecord,
    Unreadable,
    read_json,
    record_problem,
    seq_problem,
)

log = logging.getLogger(__name__)
AUTH_MODES = ("hmac", "bearer", "none")
DEDUPE_KEYS = 50_000  # newest seq kept for this many keys (the bookmark's size bound)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """One `type: webhook` entry of the connectors file."""

    id: str
    host: str = "127.0.0.1"
    port: int = 8099
    path: str = "/ingest"
    auth: str = "hmac"
    secret: str | None = None
    token: str | None = None
    signature_header: str = "X-Orderwatch-Signature"
    max_bytes: int = 1024 * 1024
    entity: str | None = None
    key: tuple[str, ...] | None = None
    mapping: FieldMapping | None = None
    seq: str | None = None
    op: str | None = None
    ts: str | None = None
    actor: str | None = None
    timezone: tzinfo = field(default=UTC)


def sign(secret: str, body: bytes) -> str:
    """The signature header value a sender computes: `sha256=<hex HMAC-SHA256 of the body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_newer(seq: int | str, last: int | str | None) -> bool:
    """Cursor order as the engine applies it: integers numerically, else as text."""
    if last is None:
        return True
    if isinstance(seq, int) and isinstance(last, int):
        return seq > last
    return str(seq) > str(last)


class WebhookConnector(Connector):
    """Bookmark: {"last": {"entity:key": seq}} — the newest accepted seq per key."""

    def __init__(self, config: WebhookConfig, bookmark: dict[str, Any] | None = None) -> None:
        super().__init__(config.id, bookmark)
        self.config = config
        self.port = config.port
        self._deliver: Deliver | None = None
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()  # one batch at a time: the seq table must not race

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        app = web.Application(client_max_size=self.config.max_bytes)
        app.router.add_post(self.config.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("webhook %s listening on http://%s:%s%s", self.id, self.config.host, self.port,
                    self.config.path)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def poll_async(self) -> PollResult:
        return PollResult()  # pushed, not polled

    async def sample_async(self, rows: int) -> PollResult:
        where = {"listen": f"{self.config.host}:{self.config.port}", "path": self.config.path}
        return PollResult(notices=[Notice("push source: nothing to read until a sender posts", where)])

    def _reply(self, code: int, body: dict[str, Any]) -> web.Response:
        metrics.WEBHOOK_REQUESTS.labels(self.id, str(code)).inc()
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 and self.config.auth == "bearer" else None
        return web.json_response(body, status=code, headers=headers, dumps=_dumps)

    async def _handle(self, request: web.Request) -> web.Response:
        limit = self.config.max_bytes
        if request.content_length is not None and request.content_length > limit:
            return self._reply(413, {"error": f"body over {limit} bytes"})
        # read(n) returns what has arrived so far, not n bytes: a body sent in pieces
        # would be cut short (and fail its signature). Read to the end or past the limit.
        body = b""
        while len(body) <= limit:
            piece = await request.content.read(limit + 1 - len(body))
            if not piece:
                break
            body += piece
        if len(body) > limit:
            return self._reply(413, {"error": f"body over {limit} bytes"})
        problem = self._auth_problem(request, body)
        if problem:
            return self._reply(401, {"error": problem})
        # The engine's reading and limits (orderwatch/record.py), strict about NaN and numbers
        # beyond the float range, which the sender can be told about.
        try:
            doc, exact = read_json(body, strict=True)
        except Unreadable as exc:
            reason = str(exc).removeprefix("not JSON: ")
            return self._reply(400, {"error": f"body is not JSON: {reason}", "accepted": 0})
        items = doc if isinstance(doc, list) else [doc]
        if len(items) > MAX_RECORDS:
            return self._reply(400, {"error": f"{len(items)} records, over the limit of {MAX_RECORDS} per request",
                                     "accepted": 0})
        records: list[ChangeRecord] = []
        rejected: list[dict[str, Any]] = []
        small = len(body) <= MAX_RECORD_BYTES
        for index, item in enumerate(items):
            try:
                unsafe = record_problem(item, exact, small)
                if unsafe is not None:
                    raise unsafe
                records.append(self._record(item))
            except (InvalidRecord, MappingError) as exc:
                rejected.append({"index": index, "field": exc.field, "reason": str(exc)})
            except Exception as exc:  # noqa: BLE001 - one bad record is a 400, never a 500
                rejected.append({"index": index, "field": None, "reason": f"cannot be read: {type(exc).__name__}: {exc}"})
        where = {"remote": request.remote or "", "path": self.config.path}
        dead = [DeadLetter(r["reason"], r["field"], items[r["index"]], self.id,
                           where={**where, "index": r["index"]}) for r in rejected]
        async with self._lock:
            fresh, duplicates, last = self._fresh(records)
            result = PollResult(records=fresh, dead=dead, rows_read=len(items), bookmark={"last": last})
            try:
                assert self._deliver is not None
                await self._deliver(result)
            except Exception as exc:  # noqa: BLE001 - the broker is down: tell the sender to come back
                log.warning("webhook %s could not publish: %s", self.id, exc)
                return self._reply(503, {"error": f"could not publish, send again: {exc}"})
        answer = {"accepted": len(fresh), "duplicates": duplicates}
        if rejected:
            return self._reply(400, {**answer, "rejected": rejected})
        return self._reply(200, answer)

    def _auth_problem(self, request: web.Request, body: bytes) -> str | None:
        cfg = self.config
        if cfg.auth == "bearer":
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {cfg.token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return "missing or wrong bearer token (Authorization: Bearer …)"
        elif cfg.auth == "hmac":
            given = request.headers.get(cfg.signature_header, "").strip()
            if not given:
                return f"missing {cfg.signature_header} header (sha256=<hex HMAC-SHA256 of the body>)"
            expected = sign(cfg.secret or "", body)
            if not given.startswith("sha256="):
                given = "sha256=" + given
            if not hmac.compare_digest(given.lower().encode(), expected.encode()):
                return f"{cfg.signature_header} does not match the body"
        return None

    def _record(self, item: Any) -> ChangeRecord:
        cfg = self.config
        if cfg.mapping is None:
            if not isinstance(item, dict):
                raise InvalidRecord("record", f"expected a JSON object, got {type(item).__name__}")
            if item.get("source", cfg.id) != cfg.id:
                raise InvalidRecord("source", f"must be {cfg.id!r} (this connector) or left out")
            if cfg.entity and item.get("entity", cfg.entity) != cfg.entity:
                raise InvalidRecord("entity", f"this endpoint takes {cfg.entity} records only")
            return ChangeRecord.from_dict({"source": cfg.id, "entity": cfg.entity, **item})
        if not isinstance(item, dict):
            raise InvalidRecord("record", f"expected a JSON object (a row), got {type(item).__name__}")
        assert cfg.key is not None and cfg.seq is not None and cfg.entity is not None
        key = make_key(item, cfg.key)
        seq: Any = item.get(cfg.seq)
        problem = seq_problem(seq)
        if problem is not None:
            if "64 bits" in problem:
                raise InvalidRecord(cfg.seq, problem)
            raise InvalidRecord(cfg.seq, "required: the row's version (an integer or a timestamp)")
        op = str(item.get(cfg.op) or "upsert").lower() if cfg.op else "upsert"
        if op not in ("upsert", "delete"):
            raise InvalidRecord(cfg.op or "op", f"must be upsert or delete, got {op!r}")
        ts = datetime.now(UTC)
        if cfg.ts and item.get(cfg.ts) not in (None, ""):
            try:
                ts = parse_datetime(item[cfg.ts], cfg.timezone)
            except ValueError as exc:
                raise InvalidRecord(cfg.ts, str(exc)) from None
        fields = cfg.mapping.apply(item) if op == "upsert" else {}
        actor = item.get(cfg.actor) if cfg.actor else None
        return ChangeRecord(source=cfg.id, entity=cfg.entity, key=key, op=op,  # type: ignore[arg-type]
                            ts=ts, seq=seq, fields=fields,
                            actor=str(actor) if actor not in (None, "") else None)

    def _fresh(self, records: list[ChangeRecord]) -> tuple[list[ChangeRecord], int, dict[str, Any]]:
        """Records newer than the last accepted for their key, and the updated table."""
        last: dict[str, Any] = dict(self.bookmark.get("last") or {})
        fresh, duplicates = [], 0
        for record in records:
            if not is_newer(record.seq, last.get(record.entity_key)):
                duplicates += 1
                continue
            last.pop(record.entity_key, None)  # re-insert: the dict's order is recency
            last[record.entity_key] = record.seq
            fresh.append(record)
        metrics.DUPLICATES.labels(self.id).inc(duplicates)
        while len(last) > DEDUPE_KEYS:
            last.pop(next(iter(last)))
        return fresh, duplicates, last


def _dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    try:
        text.encode()
    except UnicodeEncodeError:  # a reason quoting text with an unpaired surrogate
        return json.dumps(value, default=str)
    return text
