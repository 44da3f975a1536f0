"""Bundle-provided text on a terminal (edge_ser/text.py): escape sequences and control characters never get
through, from the helper itself up to `edge-ser info`, `edge-ser predict` and the live console, run for real
on a bundle whose labels are hostile."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from edge_ser.live.outputs.console import ConsoleOutput, format_line, format_table
from edge_ser.live.result import LiveResult, StageTimes
from edge_ser.text import control_chars, describe_controls, is_control, printable

REPO = Path(__file__).resolve().parents[1]

HOSTILE = [
    "\x1b[2J\x1b[Hangry",  # clear the screen, cursor home
    "\x1b]0;owned\x07calm",  # retitle the terminal (OSC ... BEL)
    "\x1b]8;;https://evil.example/\x1b\\happy\x1b]8;;\x1b\\",  # a hyperlink (OSC 8 ... ST)
    "sad\rneutral",  # carriage return: overwrite the start of the line
    "fear\b\b\b\bdisgust",  # backspaces
    "\u202eyppah",  # right-to-left override: shows as "happy"
    "bo\x85red",  # NEL (C1 next line)
    "sur\u2028prised",  # Unicode line separator
    "\x9b31mred",  # C1 CSI
    "\x00nul\x07bell\x7f",  # NUL, BEL, DEL
]
"""Labels that would act on a terminal if printed as they are."""


def _clean(text: str, *, newlines: bool = True) -> bool:
    """No control character at all in `text` (newlines allowed when `newlines`)."""
    return not [c for c in control_chars(text) if not (newlines and c == "\n")]


@pytest.mark.parametrize("label", HOSTILE, ids=repr)
def test_printable_removes_sequences_and_controls(label: str) -> None:
    out = printable(label)
    assert control_chars(label) and not control_chars(out), out
    assert "[2J" not in out and "]0;" not in out and "owned" not in out and "evil.example" not in out
    assert printable(out) == out  # idempotent


def test_printable_keeps_ordinary_text() -> None:
    for s in ("angry", "wütend", "悲しい", "😀 happy", "a b-c_d.e", "", "50 % (neutral)"):
        assert printable(s) == s and control_chars(s) == []
    assert printable(42) == "42"
    assert printable("a\nb\rc\td", keep_newlines=True) == "a\nb?c?d"
    assert printable("a\nb") == "a?b"
    assert printable("x\x1b]0;never terminated") == "x"  # an unterminated OSC swallows the rest
    assert is_control("\u2029") and is_control("\udc80") and not is_control("\u00e9") and not is_control(" ")
    assert describe_controls("a\nb\x1b") == "U+000A (line feed), U+001B (escape)"


def _result(labels: tuple[str, ...]) -> LiveResult:
    n = len(labels)
    p = tuple(1.0 / n for _ in labels)
    return LiveResult(t=1.0, labels=labels, probs=p, smoothed=p, label=labels[0], confidence=p[0], speech=True,
                      level_db=-20.0, mode="audio", notes=("from \x1b[31mbundle\x1b[0m",),
                      times=StageTimes(1.0, 1.0, 0.0, 1.0, 3.0))  # fmt: skip


def test_console_output_is_clean_in_both_formats() -> None:
    import io

    res = _result(tuple(HOSTILE))
    assert _clean(format_line(res), newlines=False)
    assert all(_clean(ln, newlines=False) for ln in format_table(res))
    buf = io.StringIO()
    out = ConsoleOutput(buf, tty=True, ascii_bars=True)
    out.emit(res)
    out.emit(res)
    text = buf.getvalue()
    # the only escape sequence is the console's own redraw (cursor up N lines, clear to end of screen)
    own = re.findall(r"\x1b\[\d+F\x1b\[J", text)
    assert len(own) == 1 and text.count("\x1b") == 2, repr(text)
    assert _clean(text.replace(own[0], ""))
    assert "yppah" in text and "calm" in text  # the words are still there, only the controls are gone


@pytest.fixture(scope="module")
def hostile_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bundles/laq_mlp_emodb with its 7 labels and its name replaced by hostile ones, written raw (with a
    matching manifest.sha256): what a careless or malicious exporter produces."""
    from edge_ser.bundle import manifest_sum_line

    src = REPO / "bundles" / "laq_mlp_emodb"
    dst = tmp_path_factory.mktemp("b") / "hostile"
    shutil.copytree(src, dst)
    m = json.loads((src / "manifest.json").read_text())
    m["labels"] = HOSTILE[: len(m["labels"])]
    m["model"]["name"] = "\x1b]0;owned\x07laq"
    raw = json.dumps(m).encode()
    (dst / "manifest.json").write_bytes(raw)
    (dst / "manifest.sha256").write_bytes(manifest_sum_line(raw))
    return dst


def _wav(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    rng = np.random.default_rng(0)
    x = (0.2 * rng.standard_normal(int(seconds * rate)) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_ser", *args], capture_output=True, text=True, timeout=300
    )


def test_hostile_labels_are_refused_and_the_refusal_prints_clean(
    hostile_bundle: Path, tmp_path: Path
) -> None:
    """The bundle check refuses labels and names with control characters (first defence); its message, which
    quotes them, is itself made printable (second defence)."""
    info = _cli("info", str(hostile_bundle))
    assert info.returncode == 2
    assert "model.name: has control characters" in info.stderr, info.stderr
    assert _clean(info.stdout) and _clean(info.stderr), control_chars(info.stderr)


def test_predict_prints_hostile_file_names_clean(tmp_path: Path) -> None:
    bad_name = tmp_path / "clip\x1b[2J\r.wav"  # a file name is outside text too
    bundle = REPO / "bundles" / "laq_mlp_emodb"
    pred = _cli("predict", str(bundle), str(_wav(bad_name)), "--top", "7")
    assert pred.returncode == 0, pred.stderr
    assert _clean(pred.stdout) and _clean(pred.stderr)
    line = next(ln for ln in pred.stdout.splitlines() if ".wav:" in ln)
    top = line.split("  [")[0]  # the clip is noise: its mark ("[no speech: ...]") follows the labels
    assert line.startswith("  clip?.wav: ") and top.count(",") == 6  # all 7 labels, one line


def test_error_messages_are_clean(tmp_path: Path) -> None:
    missing = tmp_path / "no\x1b]0;owned\x07such"
    r = _cli("info", str(missing))
    assert r.returncode == 2 and "error" in r.stderr
    assert _clean(r.stderr) and "such" in r.stderr  # the message stays, the sequence does not act


def test_counted_and_with_article_say_one_and_an_as_english_does() -> None:
    from edge_ser.text import counted, with_article

    assert [counted(n, "update") for n in (0, 1, 2)] == ["0 updates", "1 update", "2 updates"]
    assert counted(2, "branch", "branches") == "2 branches"
    said = [
        with_article(w) for w in ("pi4", "orin-nano-8gb", "host", "x86 host", "USB microphone", "int8 model")
    ]
    assert said == ["a pi4", "an orin-nano-8gb", "a host", "an x86 host", "a USB microphone", "an int8 model"]
