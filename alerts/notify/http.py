"""The one HTTP POST every webhook-style integration uses: JSON out, the answer checked."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from alerts.notify import DeliveryError, SendContext


def where(url: str) -> str:
    """A URL without its query (webhook tokens live there and must not reach logs)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


async def post_json(ctx: SendContext, url: str, payload: Any, timeout: float,
                    headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, Any]:
    """POST `payload` as JSON; return (status, decoded answer or text). Non-2xx raises DeliveryError."""
    data = body if body is not None else json.dumps(payload, ensure_ascii=False).encode()
    send_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    try:
        async with ctx.http.post(url, data=data, headers=send_headers,
                                 timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            text = await resp.text()
            status = resp.status
            retry_after = _retry_after(resp.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise DeliveryError(f"POST {where(url)}: {type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"POST {where(url)}: HTTP {status}: {text[:300]}", retry_after)
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date (RFC 9110); None if absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())  # the endpoint's date is wall time


def check_errcode(url: str, answer: Any, code_keys: tuple[str, ...] = ("errcode",)) -> None:
    """Chat platforms answer HTTP 200 with an error code in the body: 0 means delivered."""
    if not isinstance(answer, dict):
        raise DeliveryError(f"POST {where(url)}: unexpected answer {str(answer)[:200]!r}")
    for key in code_keys:
        if key in answer:
            if answer[key] not in (0, "0"):
                message = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
                raise DeliveryError(f"POST {where(url)}: {key} {answer[key]}: {message}")
            return
    raise DeliveryError(f"POST {where(url)}: answer has none of {', '.join(code_keys)}: {str(answer)[:200]}")
