"""Delivery integrations, one module per kind of endpoint, behind one small interface.

A receiver in the alerts YAML names its `type`; `parse_receiver` hands the
mapping to that type's module, which validates its own keys. At delivery
time `Receiver.send` gets a `Notification` and raises `DeliveryError` when
the endpoint did not take it (the outbox then retries with backoff).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from alerts.clock import Clock
from alerts.message import Notification
from alerts.template import Renderer
from alerts.yamlcheck import Problems, as_map, check_keys, get_bool, get_duration, get_str
from orderwatch.yamlsrc import Map, Pos

COMMON_KEYS = {"name", "type", "send_resolved", "timeout"}


class DeliveryError(Exception):
    """The endpoint did not accept the notification; the message says what it answered."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the endpoint asked us to wait (Retry-After)


@dataclass
class SendContext:
    """What integrations share at delivery time."""

    http: aiohttp.ClientSession
    renderer: Renderer = field(default=None)  # type: ignore[assignment]  # default: the built-in templates
    clock: Clock = time.time  # the alert layer's clock: when a (retried) notification actually goes out

    def __post_init__(self) -> None:
        if self.renderer is None:
            self.renderer = Renderer(clock=self.clock)  # texts count days to when the message goes out


class Receiver:
    """A configured endpoint. Subclasses set `type` and implement `send`."""

    type: ClassVar[str] = ""
    #: The recipient field this receiver needs (email: an address); None if it can post without one.
    needs: ClassVar[str | None] = None

    def __init__(self, name: str, send_resolved: bool = True, timeout: float = 10.0) -> None:
        self.name = name
        self.send_resolved = send_resolved
        self.timeout = timeout

    def reaches(self, recipient: dict[str, Any] | None) -> bool:
        """Whether this receiver can address the recipient (or has a fixed destination)."""
        return True

    async def send(self, n: Notification, ctx: SendContext) -> None:
        raise NotImplementedError


Parser = Callable[[str, Map, Problems, Path], Receiver | None]


def _registry() -> dict[str, tuple[Parser, set[str]]]:
    from alerts.notify import (
        alertmanager,
        console,
        dingtalk,
        email,
        feishu,
        jsonl,
        slack,
        teams,
        webhook,
        wecom,
    )

    modules = (console, jsonl, email, webhook, slack, teams, dingtalk, wecom, feishu, alertmanager)
    return {mod.TYPE: (mod.parse, mod.KEYS) for mod in modules}


def types() -> list[str]:
    return sorted(_registry())


def parse_receiver(node: Any, pos: Pos, problems: Problems, base_dir: Path) -> Receiver | None:
    """Validate one `receivers:` entry and build its Receiver (None if it has problems)."""
    doc = as_map(node, pos, "a receiver", problems)
    if doc is None:
        return None
    name = get_str(doc, "name", problems)
    kind = get_str(doc, "type", problems)
    registry = _registry()
    if not name or not kind:
        problems.add(doc.pos, "a receiver needs 'name' and 'type'")
        return None
    if kind not in registry:
        problems.add(doc.at("type"), f"receiver {name}: type {kind!r} is not one of {', '.join(sorted(registry))}")
        return None
    parse, keys = registry[kind]
    check_keys(doc, COMMON_KEYS | keys, problems, f"receiver {name} ({kind})")
    before = len(problems.items)
    receiver = parse(name, doc, problems, base_dir)
    if receiver is None or len(problems.items) > before:
        return None
    receiver.send_resolved = get_bool(doc, "send_resolved", problems, True)
    receiver.timeout = get_duration(doc, "timeout", problems, 10.0) or 10.0
    return receiver


def required_str(doc: Map, key: str, problems: Problems, what: str) -> str:
    value = get_str(doc, key, problems)
    if not value:
        problems.add(doc.pos, f"{what} needs '{key}'")
        return ""
    return value


def http_url(doc: Map, key: str, problems: Problems, what: str) -> str:
    url = required_str(doc, key, problems, what)
    if url and not url.startswith(("http://", "https://")):
        problems.add(doc.at(key), f"{what}: {key} must be an http:// or https:// URL")
    return url


def string_map(doc: Map, key: str, problems: Problems) -> dict[str, str]:
    if key not in doc:
        return {}
    node = as_map(doc[key], doc.at(key), key, problems)
    return {str(k): str(v) for k, v in (node or {}).items()}
