"""Rule files that cannot hurt: each kind of hostile or oversized rule file is refused with its
position by `rules check` (never a traceback, never a hang), and a running worker that finds
one in its rules folder keeps its rules, its event loop and its API.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.evaluator import Evaluator
from engine.reload import RuleReloader
from engine.rules import load_rules
from orderwatch.yamlsrc import SourceError, load_text
from tests.conftest import WorkerProc, wait_for
from tests.test_pipeline import publish
from tests.test_rules_live import BIG, LATE, alerts, order

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "orderwatch"]


def _rule(rule_id: str, when: str, extra: str = "") -> str:
    return f"- id: {rule_id}\n  entity: purchase_order\n  when: {when}\n{extra}"


def _bomb() -> str:
    """Billion laughs: nine levels of nine aliases, used as a label value."""
    lists = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lists += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "lists:\n" + "\n".join(lists) + "\nrules:\n" + "\n".join(
        "  " + line for line in _rule("bomb", "{amount: {gt: 1}}", "labels: {x: *a9}\n").splitlines()) + "\n"


def _forty() -> str:
    conditions = "".join(f"      - amount: {{ne: {i}}}\n" for i in range(40))
    return "- id: forty\n  entity: purchase_order\n  when:\n    all:\n" + conditions


# kind → (file text, the problem's line:col, a piece of its message)
BAD = {
    "forty-conditions": (_forty(), "3:3", "rule has 40 conditions; at most 32"),
    "infinity": (_rule("inf", "{amount: {gt: .inf}}"), "3:23", "not a finite number"),
    "deep-yaml": (_rule("deep", "{amount: {in: " + "[" * 5000 + "]" * 5000 + "}}"), "3:83",
                  "nested more than 64 levels deep"),
    "parentheses": (_rule("parens", '{amount: {gt: "' + "(" * 5000 + "qty" + ")" * 5000 + '"}}'), "3:19",
                    "expression of 10,003 characters; at most 256"),
    "huge-integer": (_rule("bigint", "{amount: {gt: " + "9" * 5000 + "}}"), "3:23",
                     "(5,000 digits) is out of range"),
    "alias-bomb": (_bomb(), "7:12", "aliases expand this document past 100,000 values"),
    "long-list": (_rule("list", "{amount: {in: [" + ", ".join(str(i) for i in range(600)) + "]}}"), "3:19",
                  "'in' takes at most 256 values, got 600"),
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=REPO, timeout=60, check=False)


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-rules")
    for kind, (text, _, _) in BAD.items():
        (folder / f"{kind}.yaml").write_text(text)
    return folder


@pytest.mark.parametrize("kind", sorted(BAD))
def test_each_kind_is_refused_at_load_with_its_position(kind: str, tmp_path: Path) -> None:
    text, where, message = BAD[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text)
    with pytest.raises(SourceError) as exc:
        load_rules([path])
    assert [f"{pos.line}:{pos.col}" for pos, _ in exc.value.problems] == [where], exc.value.problems
    assert message in exc.value.problems[0][1]


def test_rules_check_reports_every_kind_with_its_position_and_no_traceback(bad_folder: Path) -> None:
    res = run("rules", "check", str(bad_folder))
    assert res.returncode == 1
    assert "Traceback" not in res.stdout + res.stderr and res.stderr == ""
    for kind, (_, where, message) in BAD.items():
        lines = [line for line in res.stdout.splitlines() if line.startswith(f"{bad_folder / kind}.yaml:")]
        assert len(lines) == 1 and lines[0].startswith(f"{bad_folder / kind}.yaml:{where}: "), res.stdout
        assert message in lines[0]


@pytest.mark.parametrize("kind", ["alias-bomb", "deep-yaml", "huge-integer"])
def test_rules_test_and_backtest_report_bad_rules_without_a_traceback(kind: str, tmp_path: Path) -> None:
    text, where, _ = BAD[kind]
    (tmp_path / "bad.yaml").write_text(text)
    (tmp_path / "bad.test.yaml").write_text("rule_files: [bad.yaml]\ntests:\n  - name: t\n    records: []\n    expect: []\n")
    (tmp_path / "in.jsonl").write_text("")
    for res in (run("rules", "test", str(tmp_path / "bad.test.yaml")),
                run("backtest", "--rules", str(tmp_path / "bad.yaml"), "--input", str(tmp_path / "in.jsonl"))):
        assert res.returncode == 1, res.stdout + res.stderr
        assert "Traceback" not in res.stdout + res.stderr
        assert f"{tmp_path / 'bad.yaml'}:{where}: " in res.stdout


def test_the_limits_protect_every_yaml_file_not_only_rules() -> None:
    with pytest.raises(SourceError) as exc:
        load_text(_bomb(), "alerts.yaml")
    assert str(exc.value.problems[0][0]) == "alerts.yaml:7:12"
    with pytest.raises(SourceError, match="refers to a value that contains it"):
        load_text("a: &a [1, *a]\n", "alerts.yaml")
    with pytest.raises(SourceError, match="nested more than 64 levels deep"):
        load_text("a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n", "x.yaml")
    with pytest.raises(SourceError, match="not a finite number"):
        load_text("timeout: .nan\n", "alerts.yaml")
    assert load_text("big: 9223372036854775807\nsmall: -9223372036854775808\n", "x.yaml") == {
        "big": 2**63 - 1, "small": -(2**63)}


def test_a_reload_reads_and_compiles_off_the_event_loop(tmp_path: Path) -> None:
    # Many valid rules: loading them takes a while, and the event loop keeps running meanwhile.
    (tmp_path / "many.yaml").write_text("".join(
        _rule(f"r{i}", f"{{all: [{{amount: {{gt: {i}}}}}, {{status: {{in: [a, b, c, d]}}}}]}}") for i in range(600)))
    reloader = RuleReloader([str(tmp_path)], Evaluator([], name="off-loop"), name="off-loop")

    async def go() -> tuple[int, int]:
        beats = 0
        done = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal beats
            while not done.is_set():
                beats += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(heartbeat())
        result = await reloader.reload_async()
        done.set()
        await task
        assert result.ok, result.problems
        result.evaluator.close()  # type: ignore[union-attr]
        return result.rules, beats

    rules, beats = asyncio.run(go())
    assert rules == 600 and beats > 10


def _rejected(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(r'^orderwatch_rule_reloads_total\{result="rejected"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.integration
def test_a_worker_keeps_its_rules_through_every_kind_of_bad_reload(broker, app_id, tmp_path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "late.yaml").write_text(LATE)
    (rules / "big.yaml").write_text(BIG)
    store = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    worker = WorkerProc(broker.url, app_id, tmp_path, store, tick=1.0, extra=["--rules", str(rules)])
    far = datetime.now(UTC) + timedelta(days=30)
    try:
        worker.wait_ready()
        for n, (kind, (text, where, _)) in enumerate(BAD.items(), start=1):
            (rules / "bad.yaml").write_text(text)
            wait_for(lambda n=n: _rejected(f"{worker.url}/metrics") >= n, 60, f"the {kind} reload to be rejected")
            assert worker.proc.poll() is None, f"the worker died on {kind}:\n{worker.log()}"
            assert f"rules not reloaded, the running rules stay: {rules / 'bad.yaml'}:{where}: " in worker.log()
            assert (worker.status() or {}).get("rule_reloads") == 0, "the API answers; the old rules stay"

        # The old rules still fire on a change…
        publish(broker.bootstrap, app_id, [order("PO-BIG", 1, far, amount=25000)])
        wait_for(lambda: "po-big PO-BIG" in alerts(store, "firing"), 30, "the old rules to fire on a change")
        # …and on a tick: a deadline a few seconds from now.
        deadline = datetime.now(UTC) + timedelta(seconds=4)
        publish(broker.bootstrap, app_id, [order("PO-LATE", 1, deadline - timedelta(days=1))])
        wait_for(lambda: "po-late PO-LATE" in alerts(store, "firing"), 40, "the old rules to fire on a deadline")
        assert worker.proc.poll() is None
    finally:
        worker.stop()
