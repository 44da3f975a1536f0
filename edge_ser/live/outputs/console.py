"""Console output: a live probability table redrawn in place on a terminal, one line per update in a log.

On a TTY the table is redrawn with two ANSI sequences (cursor up N lines, clear to end of screen), no
curses: it works over SSH and on a Pi's serial console. When stdout is a file or pipe (systemd journal,
`| tee`), or a terminal that says it cannot move its cursor (`TERM=dumb`), every update is one self-contained
line, so logs stay readable and greppable.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from typing import TextIO

from edge_ser.live.outputs.base import OutputError
from edge_ser.live.result import NO_AUDIO, LiveResult
from edge_ser.text import printable

BLOCK_BARS = ("\u2588", "\u2591")
"""Full block and light shade: a solid bar on a dimmed track, for UTF-8 terminals."""
ASCII_BARS = ("#", ".")
"""The same bars for terminals that cannot print Unicode (C locale, some serial consoles)."""

_UP_AND_CLEAR = "\x1b[{n}F\x1b[J"
"""CSI n F (cursor to the start of the line n lines up) then CSI J (erase to the end of the screen)."""


def bar(p: float, width: int, chars: tuple[str, str] = ASCII_BARS) -> str:
    """A text bar for probability `p` (clipped to 0..1): `width` characters, round(p * width) of them full."""
    p = min(max(p, 0.0), 1.0) if math.isfinite(p) else 0.0  # NaN draws as an empty bar
    n = round(p * width)
    return chars[0] * n + chars[1] * (width - n)


def _ms(x: float) -> str:
    return f"{x:.1f}"


def _level(x: float) -> str:
    """dBFS as text; digital silence gives -inf (or NaN from an empty window), shown as "-inf"."""
    return f"{x:.1f}" if math.isfinite(x) else "-inf"


def _db(x: float) -> str:
    """dBFS for the log line: "-23.4dBFS", the unit the table, the web page and `run`'s notes say (it read
    "-23.4dB"), or "-inf" for digital silence (it read "-infdB")."""
    return f"{x:.1f}dBFS" if math.isfinite(x) else "-inf"


def _gate(result: LiveResult) -> str:
    if not result.hears:
        return "FACE" if result.speech else "no face"
    if result.label == NO_AUDIO:
        return "no audio"
    return "SPEECH" if result.speech else "silence"


def _speaker(result: LiveResult) -> str:
    """How much of the speaker the statistics hold (nothing for a bundle that does not learn its speaker)."""
    if result.speaker_clips is None:
        return ""
    n = result.speaker_clips
    return f"  speaker: {n} clip{'' if n == 1 else 's'}"


def format_table(
    result: LiveResult, *, bar_width: int = 24, chars: tuple[str, str] = ASCII_BARS, notes: bool = True
) -> list[str]:
    """The TTY view of `result` as lines (no newlines): header, one row per class, the reported label,
    stage times and overflows, then fallback and notes when present.

    Rows show the smoothed probability as a bar and a number, and this window's raw probability; the row of
    the reported label is marked with '>'. A column shows '-' when that vector is empty (silence windows).
    Labels, notes and names come from the bundle: every line is passed through `edge_ser.text.printable`, so
    an escape sequence or a carriage return in a label cannot move the cursor or rewrite the terminal.
    """
    mode = result.mode + (f" (fallback: {result.fallback})" if result.fallback else "")
    lines = [
        f"edge-ser live  t={result.t:8.2f}s  mode={mode}  {_gate(result)}"
        + ("  OUT OF RANGE" if result.ood else "")  # early in the line: a narrow terminal cuts the end
        + (f"  {_level(result.level_db)} dBFS" if result.hears else "")
        + _speaker(result)
    ]
    names = [printable(x) for x in result.labels]
    width = max([len(x) for x in names] + [5])
    lines.append(f"  {'label':<{width}}  {'smoothed':<{bar_width + 6}}  raw")
    for i, name in enumerate(names):
        mark = ">" if result.labels[i] == result.label else " "
        sm = result.smoothed[i] if i < len(result.smoothed) else None
        raw = result.probs[i] if i < len(result.probs) else None
        sm_txt = f"{bar(sm, bar_width, chars)} {sm:5.2f}" if sm is not None else f"{' ' * bar_width}     -"
        raw_txt = f"{raw:4.2f}" if raw is not None else "   -"
        lines.append(f"{mark} {name:<{width}}  {sm_txt}  {raw_txt}")
    shown = (
        result.label if not result.probs else f"{result.label} ({result.confidence:.2f})"
    )  # silence, no result
    lines.append(f"  -> {shown}")
    tm = result.times
    lines.append(
        f"  ms: capture {_ms(tm.capture)}  features {_ms(tm.features)}  face {_ms(tm.face)}  "
        f"inference {_ms(tm.inference)}  total {_ms(tm.total)}   overflows {result.overflows}"
    )
    if result.notes and notes:
        lines.append("  notes: " + "; ".join(result.notes))
    return [printable(ln) for ln in lines]


def format_line(result: LiveResult) -> str:
    """The log view of `result`: one line, `key=value` fields then `label=prob` pairs (smoothed).

    Example: ``t=12.50 label=angry conf=0.81 speech fused level=-23.4dBFS | angry=0.81 calm=0.10 |
    ms capture=1.2 features=3.4 face=2.0 inference=5.6 total=12.3 | overflows=0``. Passed through
    `edge_ser.text.printable`: one line, whatever the bundle's labels hold.
    """
    head = (
        f"t={result.t:.2f} label={result.label} conf={result.confidence:.2f} "
        + (f"{'speech' if result.speech else 'silence'} {result.mode} level={_db(result.level_db)}"
           if result.hears else result.mode)
    )  # fmt: skip
    parts = [head]
    if result.fallback:
        parts[0] += f" fallback={result.fallback!r}"
    if result.speaker_clips is not None:
        parts[0] += f" speaker_clips={result.speaker_clips}"
    if result.ood:
        parts[0] += " OUT_OF_RANGE"
    if result.smoothed:
        parts.append(" ".join(f"{n}={p:.2f}" for n, p in zip(result.labels, result.smoothed, strict=True)))
    tm = result.times
    parts.append(
        f"ms capture={_ms(tm.capture)} features={_ms(tm.features)} face={_ms(tm.face)} "
        f"inference={_ms(tm.inference)} total={_ms(tm.total)}"
    )
    parts.append(f"overflows={result.overflows}")
    if result.notes:
        parts.append("notes=" + "; ".join(result.notes))
    return printable(" | ".join(parts))


def is_tty(stream: TextIO) -> bool:
    """Whether `stream` is a terminal (False for a stream without `isatty`, or a closed one)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _can_redraw() -> bool:
    """False when $TERM says the terminal is dumb (Emacs' shell, some serial consoles): no cursor movement."""
    return os.environ.get("TERM", "").strip().lower() != "dumb"


def _wants_ascii(stream: TextIO) -> bool:
    enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return enc not in ("utf8", "utf_8")


class ConsoleOutput:
    """Prints each result to `stream` (default stdout): the table in place on a TTY, one line otherwise.

    tty: force the format (None: ask the stream, and $TERM: a dumb terminal gets lines). ascii_bars: force
    '#'/'.' bars (None: ASCII unless the stream's encoding is UTF-8). bar_width: characters per bar (fewer on a
    terminal too narrow for them). The stream is flushed after every update and is not closed by `close()` (it
    belongs to the caller).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        ascii_bars: bool | None = None,
        bar_width: int = 24,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.tty = is_tty(self.stream) and _can_redraw() if tty is None else tty
        use_ascii = _wants_ascii(self.stream) if ascii_bars is None else ascii_bars
        self.chars = ASCII_BARS if use_ascii else BLOCK_BARS
        self.bar_width = bar_width
        self._drawn = 0  # lines of the table currently on screen (TTY mode)
        self._closed = False

    def _columns(self) -> int:
        """Terminal width, or a huge number when unknown (not a terminal, or a pty whose size was never
        set, which reports 0 columns): then lines are not cut."""
        try:
            cols = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return 10_000
        return cols if cols > 0 else 10_000

    def render(self, result: LiveResult) -> str:
        """The exact text `emit` writes for `result` (including the ANSI redraw prefix on a TTY)."""
        return self._text(result)[0]

    def _text(self, result: LiveResult) -> tuple[str, int]:
        """(the text for `result`, the lines of it the next update redraws: the table's, on a TTY)."""
        if not self.tty:
            return format_line(result) + "\n", 0
        cols = self._columns()
        # the bars give way first: a row is its label, its bar and 16 characters of numbers, and a row cut to the
        # width lost its numbers (a 40-column terminal showed "0.80" as "0.")
        label_width = max([len(printable(x)) for x in result.labels] + [5])
        bar_width = max(min(self.bar_width, cols - 1 - label_width - 16), 1)
        # lines are cut to the terminal width: a wrapped line would make the cursor-up count wrong
        lines = [
            ln[: max(cols - 1, 1)]
            for ln in format_table(result, bar_width=bar_width, chars=self.chars, notes=False)
        ]
        prefix = _UP_AND_CLEAR.format(n=self._drawn) if self._drawn else ""
        # notes go above the table, whole and wrapped, and stay: in the table they were cut to the width and
        # erased by the next redraw half a second later (the 8 kHz note lost its advice)
        kept = [
            part
            for note in result.notes
            for part in textwrap.wrap(printable(f"note: {note}"), max(cols - 1, 20), subsequent_indent="  ")
        ]
        return prefix + "".join(f"{ln}\n" for ln in kept) + "\n".join(lines) + "\n", len(lines)

    def emit(self, result: LiveResult) -> None:
        if self._closed:
            raise OutputError("console output is closed")
        text, table = self._text(result)
        try:
            self.stream.write(text)  # one write per update: no half-drawn table, no flicker
            self.stream.flush()
        except (OSError, ValueError) as e:
            raise OutputError(f"console: cannot write: {e}") from e
        self._drawn = table

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass  # stdout already gone (closed pipe): nothing left to flush


__all__ = ["ASCII_BARS", "BLOCK_BARS", "ConsoleOutput", "bar", "format_line", "format_table", "is_tty"]
