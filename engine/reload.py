"""Hot reload of rules: watch the rule files, build a new Evaluator, or report why not.

    reloader = RuleReloader(settings.rules, evaluator, name=settings.app_id)
    result = reloader.poll()          # every few seconds: None when nothing changed
    result = reloader.reload()        # on SIGHUP (or an HTTP call): always re-reads
    if result and result.ok:
        old, engine.evaluator = engine.evaluator, result.evaluator
        ...re-evaluate every owned state once with the new evaluator (in chunks, emitting
        transitions and writing state like a tick): matches and deadlines may differ...
        old.close()
    elif result:
        log each of result.problems; the old evaluator keeps running

A swap needs nothing but the new Evaluator: entity states carry over as they
are. A rule that still exists keeps its `firing`/`pending` entries (no new
firing transition); a rule that was removed resolves on the state's next
evaluation, with the texts of the removed rule (`Evaluator(previous=old)`).
Detection polls modification times and sizes; a file touched but unchanged
(same content) does not reload.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from engine.evaluator import Evaluator
from engine.rules import load_rules, rule_files
from orderwatch.yamlsrc import SourceError

Snapshot = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Reload:
    """The outcome of a reload: a new evaluator, or the problems that kept the old one."""

    evaluator: Evaluator | None
    problems: list[str] = field(default_factory=list)  # "file:line:col: message"
    rules: int = 0

    @property
    def ok(self) -> bool:
        return self.evaluator is not None


class RuleReloader:
    """Watches rule files and folders; builds a replacement Evaluator on change or on request."""

    def __init__(self, paths: list[str] | tuple[str, ...], evaluator: Evaluator, name: str = "orderwatch") -> None:
        self.paths = [str(p) for p in paths]
        self.current = evaluator
        self.name = name
        self.generation = 0
        self._snapshot = self._scan()
        self._digest = self._content()

    def _watched(self) -> list[Path]:
        # Folders too: adding or removing a file changes the folder's mtime.
        return [Path(p) for p in self.paths if Path(p).is_dir()] + rule_files(self.paths)

    def _scan(self) -> Snapshot:
        out: Snapshot = {}
        for path in self._watched():
            try:
                st = path.stat()
            except OSError:
                continue
            out[str(path)] = (st.st_mtime_ns, st.st_size)
        return out

    def _content(self) -> str:
        digest = hashlib.sha256()
        for path in rule_files(self.paths):
            digest.update(str(path).encode())
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"\0missing")
        return digest.hexdigest()

    def changed(self) -> bool:
        """Whether a rule file's content changed since the last reload (cheap when nothing did)."""
        snapshot = self._scan()
        if snapshot == self._snapshot:
            return False
        self._snapshot = snapshot
        return self._content() != self._digest

    def poll(self) -> Reload | None:
        """Reload if a rule file changed since the last look; None when nothing changed."""
        return self.reload() if self.changed() else None

    def reload(self) -> Reload:
        """Re-read the rules; on success the new evaluator becomes `current`."""
        self._snapshot = self._scan()
        self._digest = self._content()
        try:
            rules = load_rules(self.paths)
            self.generation += 1
            evaluator = Evaluator(rules, name=f"{self.name}.r{self.generation}", previous=self.current)
        except SourceError as exc:
            return Reload(None, [f"{pos}: {msg}" for pos, msg in exc.problems])
        self.current = evaluator
        return Reload(evaluator, [], len(rules))
