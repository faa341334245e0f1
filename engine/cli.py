"""The rule authors' verbs: `rules check`, `rules test`, `backtest`.

`orderwatch.cli` calls `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from engine.clock import to_epoch

SHIPPED_RULES = Path(__file__).resolve().parent.parent / "rules"
FIELDS_HELP = "file declaring custom fields under 'fields:' (a fields file or the connectors file)"


def declare_fields(path: str | None) -> bool:
    """Make the custom fields of `path` (a fields or connectors file) the known ones, or none;
    print the file's problems and return False if it has any."""
    from engine.fields import NONE, load_declared
    from orderwatch.yamlsrc import SourceError

    try:
        (load_declared(path) if path else NONE).install()
    except SourceError as exc:
        for pos, message in exc.problems:
            print(f"{pos}: {message}")
        return False
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}")
        return False
    return True


def _evaluator(paths: list[str], name: str, fields: str | None = None) -> tuple[int, Any]:
    """(number of rules, an Evaluator of them), or print every problem and return (0, None).
    `fields`: the file that declares custom fields.

    Never a traceback and never a hang: loading is bounded (engine.rules, orderwatch.yamlsrc),
    and whatever still fails is reported, positioned where possible."""
    from engine.reload import build, load, problems_of

    if not declare_fields(fields):
        return 0, None
    rules: list[Any] = []
    try:
        rules, programs = load(paths)
        # Compiling into durable_rules catches what only the engine can judge (patterns, limits).
        return len(rules), build(rules, programs, name)
    except Exception as exc:  # noqa: BLE001 - reported to the rule author
        for line in problems_of(exc, paths, rules):
            print(line)
        return 0, None


def cmd_rules_check(args: argparse.Namespace) -> int:
    count, evaluator = _evaluator(args.paths, "rules-check", args.fields)
    if evaluator is None:
        return 1
    evaluator.close()
    languages = [lang.strip() for lang in (args.languages or "").split(",") if lang.strip()]
    missing = untranslated(evaluator.rules, languages)
    for line in missing:
        print(line)
    if missing:
        return 1
    print(f"{count} rule(s) OK" + (f", each titled and summarised in {', '.join(languages)}" if languages else ""))
    return 0


def untranslated(rules: list[Any], languages: list[str]) -> list[str]:
    """'file:line:col: …' for each rule whose title or summary has no text in one of `languages`
    (a single text, not written by language, has none)."""
    out: list[str] = []
    for rule in rules:
        for key in ("title", "summary"):
            texts = rule.texts.get(key, {})
            lacking = [lang for lang in languages if not texts.get(lang)]
            if lacking:
                given = f"it has {', '.join(sorted(texts))}" if texts else "it is one text, not {zh: …, en: …}"
                out.append(f"{rule.pos}: rule {rule.id!r}: {key} has no {' or '.join(lacking)} text ({given})")
    return out


def _test_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.name.endswith((".test.yaml", ".test.yml"))))
        else:
            files.append(path)
    return files


def cmd_rules_test(args: argparse.Namespace) -> int:
    from engine.reload import problems_of
    from engine.ruletest import run_file

    total = failed = 0
    broken = False
    if not declare_fields(args.fields):
        return 1
    for path in _test_files(args.files):
        print(path)
        try:
            results = run_file(path)
        except Exception as exc:  # noqa: BLE001 - reported with its position, never a traceback
            for line in problems_of(exc, [str(path)]):
                print(line)
            broken = True
            continue
        for result in results:
            total += 1
            if result.ok:
                print(f"  ok    {result.case.name}")
                continue
            failed += 1
            print(f"  FAIL  {result.case.name}")
            for failure in result.failures:
                print("    " + failure.replace("\n", "\n    "))
    print(f"{total} test(s), {failed} failed" + (", and files with problems" if broken else ""))
    return 1 if failed or broken or total == 0 else 0


def _instant(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    if text == "now":
        return time.time()
    epoch = to_epoch(text)
    if epoch is None:
        print(f"{flag}: expected an ISO date/time or 'now', got {text!r}", file=sys.stderr)
        raise SystemExit(2)  # a usage mistake, as argparse's own
    return epoch


def cmd_backtest(args: argparse.Namespace) -> int:
    from engine import backtest

    _, evaluator = _evaluator(args.rules or [str(SHIPPED_RULES)], "backtest", args.fields)
    if evaluator is None:
        return 1
    try:
        records, invalid = backtest.load_input(args.input)
    except OSError as exc:
        print(f"{args.input}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    start, end = _instant(args.start, "--from"), _instant(args.end, "--to")
    if start is not None and end is not None and start > end:
        print(f"--from {args.start} is later than --to {args.end}: nothing to report", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = backtest.run(evaluator, records, start, end, progress)
    result.invalid = invalid
    for line in invalid:
        print(f"invalid record: {line}", file=sys.stderr)
    for line in backtest.outside(result) if args.format != "text" else []:
        print(line, file=sys.stderr)  # the text format ends with them
    if not result.records and records:
        print(f"no record of {args.input} was replayed ({len(records)} read)", file=sys.stderr)
    if args.format == "json":
        backtest.print_json(result, sys.stdout)
    elif args.format == "summary":
        backtest.print_summary(result, sys.stdout)
    else:
        backtest.print_text(result, sys.stdout)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `rules check`, `rules test` and `backtest` to the orderwatch command."""
    rules = subparsers.add_parser("rules", help="rule authoring tools: check and test rule files",
                                  description="Check rule files, and run their YAML unit tests.")
    verbs = rules.add_subparsers(dest="rules_cmd", required=True)
    p = verbs.add_parser(
        "check", help="validate rule files; print file:line:col: problem, exit 1 if any",
        description="Validate rule files and folders (a folder means its *.yaml files, *.test.yaml excluded). "
                    "Prints one 'file:line:col: message' per problem and exits 1 if there is any.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="rule file or folder")
    p.add_argument("--fields", metavar="FILE", help=FIELDS_HELP)
    p.add_argument("--languages", metavar="LANGS",
                   help="also require every rule's title and summary in each of these languages, e.g. zh,en")
    p.set_defaults(func=cmd_rules_check)
    p = verbs.add_parser(
        "test", help="run YAML rule unit tests (*.test.yaml); exit 1 on a failure",
        description="Run rule unit tests: given change records at instants, expect these alerts at later "
                    "instants. A folder means its *.test.yaml files. Failures print what differs.")
    p.add_argument("files", nargs="+", metavar="FILE", help="test file or folder")
    p.add_argument("--fields", metavar="FILE", help=FIELDS_HELP)
    p.set_defaults(func=cmd_rules_test)

    p = subparsers.add_parser(
        "backtest", help="replay recorded change records offline through the rules",
        description="Replay change records (JSON lines) on simulated time through the same engine code as "
                    "the live pipeline, without a broker; print the alert timeline and per-rule counts.")
    p.add_argument("--rules", action="append", metavar="PATH",
                   help="rule file or folder (repeatable; default: the shipped rules/)")
    p.add_argument("--fields", metavar="FILE", help=FIELDS_HELP)
    p.add_argument("--input", required=True, metavar="FILE", help="change records, one JSON object per line ('-': stdin)")
    p.add_argument("--from", dest="start", metavar="TIME",
                   help="report transitions from this ISO time on (earlier records still build state)")
    p.add_argument("--to", dest="end", metavar="TIME",
                   help="stop at this ISO time, or 'now' (default: the last record's time)")
    p.add_argument("--format", choices=["text", "json", "summary"], default="text",
                   help="text: timeline and counts; json: one object per transition; summary: one JSON "
                        "object with per-rule fired/resolved/firing-at-end counts and the record counts")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=cmd_backtest)
