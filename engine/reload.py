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

Nothing in a rule file can hurt the running worker: every failure while loading
or compiling becomes a problem of the Reload (file:line:col where possible),
and `reload_async` reads, validates and compiles on a thread of its own,
within LOAD_SECONDS, so that the event loop keeps serving. Only the creation of
the durable_rules rulesets, which must happen on the thread that matches,
stays on the caller's thread; the load limits (engine.rules, orderwatch.yamlsrc)
bound it.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.compiler import GUARD, EntityProgram, compile_rules
from engine.evaluator import Evaluator
from engine.matcher import MatcherError
from engine.rules import Rule, load_rules, pattern_problems, rule_files
from orderwatch.yamlsrc import MAX_BYTES, SourceError

Snapshot = dict[str, tuple[int, int]]
LOAD_SECONDS = 30.0


@dataclass(frozen=True)
class Reload:
    """The outcome of a reload: a new evaluator, or the problems that kept the old one."""

    evaluator: Evaluator | None
    problems: list[str] = field(default_factory=list)  # "file:line:col: message"
    rules: int = 0

    @property
    def ok(self) -> bool:
        return self.evaluator is not None


def problems_of(exc: BaseException, paths: Sequence[str], rules: Sequence[Rule] = ()) -> list[str]:
    """What a failure to load or compile rules says to a person, positioned where possible."""
    if isinstance(exc, SourceError):
        return [f"{pos}: {msg}" for pos, msg in exc.problems]
    where = " ".join(str(p) for p in paths)
    if isinstance(exc, MatcherError):
        # Too complex for durable_rules (e.g. too many alternatives in one rule): say which rule.
        rule_id = (exc.rule_id or "").removeprefix(GUARD)
        where = next((str(r.pos) for r in rules if r.id == rule_id), where)
        return [f"{where}: {exc} (simplify or split the rule)"]
    if isinstance(exc, RecursionError):
        return [f"{where}: the rules are nested too deeply to load"]
    if isinstance(exc, MemoryError):
        return [f"{where}: the rules are too large to load"]
    return [f"{where}: the rules cannot be loaded: {type(exc).__name__}: {str(exc)[:200]}"]


def load(paths: Sequence[str]) -> tuple[list[Rule], dict[str, EntityProgram]]:
    """Read, validate and compile rules without touching durable_rules (safe on any thread)."""
    rules = load_rules(paths, durable=False)
    return rules, compile_rules(rules)


def build(rules: list[Rule], programs: dict[str, EntityProgram], name: str,
          previous: Evaluator | None = None) -> Evaluator:
    """The durable_rules part: check the patterns and create the rulesets (on durable_rules' thread)."""
    problems = pattern_problems(rules)
    if problems:
        raise SourceError(sorted(problems, key=lambda item: (item[0].file, item[0].line, item[0].col)))
    return Evaluator(rules, name=name, previous=previous, programs=programs)


def _in_thread(work: Callable[[], Any]) -> asyncio.Future[Any]:
    """Run `work` on a daemon thread (one that never holds up the process's exit); its outcome as a future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return  # timed out meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = work(), None
        except BaseException as exc:  # noqa: BLE001 - every failure is reported, never raised here
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop closed meanwhile

    threading.Thread(target=run, name="rules-load", daemon=True).start()
    return future


class RuleReloader:
    """Watches rule files and folders; builds a replacement Evaluator on change or on request."""

    def __init__(self, paths: list[str] | tuple[str, ...], evaluator: Evaluator, name: str = "orderwatch") -> None:
        self.paths = [str(p) for p in paths]
        self.current = evaluator
        self.name = name
        self.generation = 0
        self._loading: asyncio.Future[Any] | None = None
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
                with path.open("rb") as f:
                    digest.update(f.read(MAX_BYTES + 1))  # past that, loading refuses the file anyway
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

    def _mark(self) -> None:
        self._snapshot = self._scan()
        self._digest = self._content()

    def reload(self) -> Reload:
        """Re-read the rules on this thread; on success the new evaluator becomes `current`."""
        self._mark()
        try:
            loaded = load(self.paths)
        except Exception as exc:  # noqa: BLE001 - a bad rule file must never take the caller down
            return Reload(None, problems_of(exc, self.paths))
        return self._swap(*loaded)

    async def reload_async(self, timeout: float = LOAD_SECONDS) -> Reload:
        """Like reload, with reading, validating and compiling on a thread of its own, within
        `timeout` seconds: the event loop keeps serving meanwhile."""
        self._mark()
        where = " ".join(self.paths)
        if self._loading is not None and not self._loading.done():
            return Reload(None, [f"{where}: the previous reload is still loading; not reloaded"])
        self._loading = _in_thread(lambda: load(self.paths))
        try:
            loaded = await asyncio.wait_for(asyncio.shield(self._loading), timeout)
        except TimeoutError:
            return Reload(None, [f"{where}: loading the rules took longer than {timeout:g} s; not reloaded"])
        except Exception as exc:  # noqa: BLE001 - reported, the running rules stay
            return Reload(None, problems_of(exc, self.paths))
        return self._swap(*loaded)

    def _swap(self, rules: list[Rule], programs: dict[str, EntityProgram]) -> Reload:
        try:
            evaluator = build(rules, programs, f"{self.name}.r{self.generation + 1}", self.current)
        except Exception as exc:  # noqa: BLE001 - reported, the running rules stay
            return Reload(None, problems_of(exc, self.paths, rules))
        self.generation += 1
        self.current = evaluator
        return Reload(evaluator, [], len(rules))
