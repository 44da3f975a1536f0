"""Every command the docs quote still parses: an option renamed in code must be renamed in the docs too.

The commands are taken from code spans and code blocks of README.md, docs/, deploy/README.md, the "Made by"
lines of benchmarks/results/ (its sub-folders too) and the "command" its JSON and JSONL results record. Each `edge-ser ...` is parsed by the real `edge-ser` parser and each
`python benchmarks/X.py ...` by its script's own parser, stopped right after parsing (nothing runs). A span
that names a command without its required arguments (`edge-ser run`) is a mention, not a command, and passes;
an unknown option, an unknown subcommand or a missing script fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "deploy" / "README.md",
    *sorted((ROOT / "benchmarks" / "results").rglob("*.md")),  # roofline/, nested_*/ ... too
]
COMMAND = re.compile(
    r"(?:\$ )?((?:python3? benchmarks/\S+\.py|edge-ser)(?:\s.*)?)$"
)  # at the start of a part
NOTATION = re.compile(
    r"[<\[…]|\.\.\.| / |^edge-ser [^-\s]*[^a-z\s-]"
)  # usage notation (`train/laq`), not a command
MENTION = ("the following arguments are required", "expected one argument")
PLACEHOLDER = re.compile(r"invalid \w+ value: '[A-Z]+'|is not an integer")  # `--seed N`


class _Parsed(Exception):
    """Raised by the patched parse_args: the command parsed, and nothing after it runs."""


def quoted_commands() -> list[tuple[str, str]]:
    """(file name, command) for every edge-ser or benchmark command in a code span or block of the docs."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
        spans = re.findall(r"`([^`]+)`", re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S))
        lines = [s.replace("\n", " ") for s in spans]
        lines += [line for b in blocks for line in b.replace("\\\n", " ").splitlines()]
        for line in lines:
            for part in re.split(r"&&|\|\||;|\|", line):
                part = re.sub(r"^(\S+=\S+\s+)+", "", part.strip())  # leading VAR=value
                m = COMMAND.match(part)
                if m and not NOTATION.search(m.group(1)):
                    found.append((str(path.relative_to(ROOT)), m.group(1).split(" #")[0].strip()))
    return found


def recorded_commands() -> list[tuple[str, str]]:
    """(file name, command) for the command every JSON or JSONL results file records (its "command", or a
    sweep's "made_by", at any depth): a researcher reruns it to reproduce the figures beside it."""
    found = []

    def walk(value: object, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("command", "made_by") and isinstance(item, str):
                    found.append((where, item))
                else:
                    walk(item, where)
        elif isinstance(value, list):
            for item in value:
                walk(item, where)

    results = ROOT / "benchmarks" / "results"
    for path in sorted([*results.rglob("*.json"), *results.rglob("*.jsonl")]):
        where = str(path.relative_to(ROOT))
        text = path.read_text(encoding="utf-8")
        for record in [json.loads(text)] if path.suffix == ".json" else map(json.loads, text.splitlines()):
            walk(record, where)
    return found


COMMANDS = quoted_commands() + recorded_commands()


def test_the_docs_quote_commands():
    """The extraction finds the docs' commands (a broken pattern would make every test below vacuous)."""
    scripts = {c.split()[1] for _, c in COMMANDS if c.startswith("python")}
    assert len(COMMANDS) > 300
    assert {"benchmarks/si_table.py", "benchmarks/ship_ser_nested.py", "benchmarks/live_bench.py"} <= scripts
    assert sum(c.startswith("edge-ser eval ") for _, c in COMMANDS) > 10
    assert sum(w.endswith(".json") for w, _ in COMMANDS) > 100  # the results' JSON commands are read
    assert any(w.startswith("benchmarks/results/roofline/") for w, _ in COMMANDS)  # and their sub-folders'


def _parse(tokens: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Parse `tokens` as the shell would run them; the parser's error text, or '' when it parsed."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):  # noqa: ANN001, ANN202 - argparse's signature
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    if tokens[0] == "edge-ser":
        from edge_ser.cli import build_parser

        run = lambda: build_parser().parse_args(tokens[1:])  # noqa: E731
    else:
        script = ROOT / tokens[1]
        if not script.exists():
            return f"no such script: {tokens[1]}"
        monkeypatch.syspath_prepend(str(script.parent))
        monkeypatch.setattr(sys, "argv", [str(script), *tokens[2:]])
        run = lambda: runpy.run_path(str(script), run_name="__main__")  # noqa: E731
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            run()
    except _Parsed:
        return ""
    except SystemExit as e:
        return "" if e.code in (0, None) else (err.getvalue().strip().splitlines() or [str(e.code)])[-1]
    return "the command ran past its parser without parsing"


@pytest.mark.parametrize(
    "command",
    [
        "edge-ser eval bundles/ser_emodb --data emodb --adapt-mode all",
        "python benchmarks/si_table.py --no-such-option 1",
    ],
)
def test_a_renamed_option_is_caught(command, monkeypatch):
    """The check itself: an option the parser does not know is reported, not taken for a mention."""
    monkeypatch.chdir(ROOT)
    assert "unrecognized arguments" in _parse(shlex.split(command), monkeypatch)


@pytest.mark.parametrize("scripts", [False, True], ids=["edge-ser", "benchmarks"])
def test_quoted_commands_parse(scripts, monkeypatch):
    """Every quoted command parses, or is a mention missing only its required arguments or placeholders."""
    monkeypatch.chdir(ROOT)
    failures = []
    seen = set()
    for where, command in COMMANDS:
        if (
            command.startswith("python") != scripts or command in seen
        ):  # a command quoted twice is parsed once
            continue
        seen.add(command)
        error = _parse(shlex.split(command), monkeypatch)
        if error and not any(m in error for m in MENTION) and not PLACEHOLDER.search(error):
            failures.append(f"{where}: {command}\n    {error}")
    assert not failures, "commands in the docs that no longer parse:\n" + "\n".join(failures)
