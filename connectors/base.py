"""The contract every connector shares (in the spirit of a Singer tap).

A connector reads its source and returns canonical change records plus dead
letters for what it could not parse. It owns one bookmark (a small JSON-able
dict) that says where it stopped; the runner persists the bookmark only after
the records of a poll were published, so that a crash replays (the engine
drops replays by seq) and never skips.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orderwatch.record import ChangeRecord, DeadLetter


@dataclass(slots=True)
class PollResult:
    records: list[ChangeRecord] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    rows_read: int = 0
    # The bookmark to persist once records and dead letters are published.
    bookmark: dict[str, Any] | None = None


class Connector(ABC):
    """One source. `poll` is synchronous; the runner calls it off the event loop."""

    def __init__(self, connector_id: str, bookmark: dict[str, Any] | None) -> None:
        self.id = connector_id
        self.bookmark: dict[str, Any] = dict(bookmark or {})

    @abstractmethod
    def poll(self) -> PollResult:
        """Read what changed since `self.bookmark`; do not modify `self.bookmark`."""

    def commit(self, result: PollResult) -> None:
        """Adopt the bookmark of a published poll."""
        if result.bookmark is not None:
            self.bookmark = result.bookmark

    def close(self) -> None:
        """Release connections; the default holds none."""


class BookmarkStore:
    """Bookmarks as one small JSON file per connector, replaced atomically."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, connector_id: str) -> Path:
        return self.directory / f"{connector_id}.json"

    def load(self, connector_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(connector_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return data if isinstance(data, dict) else None

    def save(self, connector_id: str, bookmark: dict[str, Any]) -> None:
        path = self._path(connector_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(bookmark, ensure_ascii=False, default=str), encoding="utf-8")
        os.replace(tmp, path)
