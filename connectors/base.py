"""The contract every connector shares (in the spirit of a Singer tap).

A connector reads its source and returns canonical change records plus dead
letters for what it could not parse. It owns one bookmark (a small JSON-able
dict) that says where it stopped; the runner persists the bookmark only after
the records of a poll were published, so that a crash replays (and the replay
is recognised by (source, key, seq)) and never skips.

Pull connectors implement `poll` (synchronous, run off the event loop); push
and stream connectors override `poll_async`, `start` and `stop`.
"""

from __future__ import annotations

import asyncio
import json
import os
from abc import ABC
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orderwatch.record import ChangeRecord, DeadLetter


@dataclass(frozen=True, slots=True)
class Notice:
    """Something odd in the source that loses no data (a blank row between rows…)."""

    reason: str
    where: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PollResult:
    records: list[ChangeRecord] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    rows_read: int = 0
    # The bookmark to persist once records and dead letters are published.
    bookmark: dict[str, Any] | None = None
    # The source holds more than this poll read: poll again without waiting.
    more: bool = False
    # Something is there but not readable yet (a file still being written).
    pending: bool = False


# What a push connector calls to hand a result to the runner; returns once published.
Deliver = Callable[[PollResult], Awaitable[None]]


class Connector(ABC):
    """One source. Subclasses implement `poll` or override `poll_async`."""

    def __init__(self, connector_id: str, bookmark: dict[str, Any] | None) -> None:
        self.id = connector_id
        self.bookmark: dict[str, Any] = dict(bookmark or {})

    def poll(self) -> PollResult:
        """Read what changed since `self.bookmark`; do not modify `self.bookmark`."""
        raise NotImplementedError

    async def poll_async(self) -> PollResult:
        """The runner's entry point; a blocking `poll` runs in a thread."""
        return await asyncio.to_thread(self.poll)

    async def start(self, deliver: Deliver) -> None:
        """Open long-lived resources; push connectors hand results to `deliver`."""

    async def stop(self) -> None:
        """Close what `start` opened."""

    def sample(self, rows: int) -> PollResult:
        """A first read of at most `rows` rows from scratch, for `connectors check`."""
        raise NotImplementedError

    def export(self) -> Iterator[PollResult]:
        """Everything the source holds now, from its beginning, as `run` would first publish
        it (for `connectors export`); pull connectors only."""
        raise NotImplementedError(f"{type(self).__name__} is a stream: export reads sql and spreadsheet sources")

    async def sample_async(self, rows: int) -> PollResult:
        """`sample` for the event loop; stream connectors override it."""
        return await asyncio.to_thread(self.sample, rows)

    def commit(self, result: PollResult) -> None:
        """Adopt the bookmark of a published poll."""
        if result.bookmark is not None:
            self.bookmark = result.bookmark

    def recover(self, records: list[ChangeRecord]) -> None:
        """Records this connector published after its last saved bookmark (found on the
        changes topic after a crash); a connector whose bookmark is a snapshot folds them in."""

    def close(self) -> None:
        """Release connections; the default holds none."""


class BookmarkStore:
    """Bookmarks as one small JSON file per connector, replaced atomically.

    Next to the connector's own bookmark the file keeps, per partition of the
    changes topic, the offset after this connector's last published message:
    where to look for records published but not yet bookmarked after a crash.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, connector_id: str) -> Path:
        return self.directory / f"{connector_id}.json"

    def _read(self, connector_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(connector_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return data if isinstance(data, dict) else None

    def load(self, connector_id: str) -> dict[str, Any] | None:
        data = self._read(connector_id)
        if data is None or "bookmark" not in data:
            return data  # a bookmark file from before published offsets were kept
        bookmark = data["bookmark"]
        return bookmark if isinstance(bookmark, dict) else None

    def load_published(self, connector_id: str) -> dict[int, int] | None:
        """Changes-topic offsets saved with the bookmark (None if never saved)."""
        data = self._read(connector_id)
        if data is None or not isinstance(data.get("published"), dict):
            return None
        return {int(p): int(o) for p, o in data["published"].items()}

    def save(
        self,
        connector_id: str,
        bookmark: dict[str, Any] | None,
        published: dict[int, int] | None = None,
    ) -> None:
        data: dict[str, Any] = {"bookmark": bookmark}
        if published is None:
            published = self.load_published(connector_id)
        if published is not None:
            data["published"] = {str(p): o for p, o in sorted(published.items())}
        path = self._path(connector_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8")
        os.replace(tmp, path)
