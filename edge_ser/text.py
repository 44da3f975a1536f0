"""Text from outside (bundle labels and names, file names, configuration values) made safe for a terminal.

A bundle is data, but its labels and names reach the terminal through `edge-ser run`'s console table,
`edge-ser predict` and `edge-ser info`. A label such as ``"\\x1b]0;pwned\\x07angry"`` or ``"calm\\rhappy"``
would otherwise retitle the terminal, move the cursor or overwrite what was printed, and a bidi override
(U+202E) reverses what a reader sees. `printable(s)` removes whole escape sequences and replaces any other
control character with ``?``; `control_chars(s)` finds them, for inputs that must be refused instead (the
first-boot options, where a newline would start a new line in a configuration file).

What counts as a control character here (`is_control`):
- C0 controls U+0000..U+001F (NUL, BEL, BS, TAB, LF, CR, ESC, ...), DEL U+007F and the C1 controls
  U+0080..U+009F (NEL U+0085, CSI U+009B, OSC U+009D, ...): Unicode category Cc;
- the line and paragraph separators U+2028 and U+2029 (categories Zl, Zp): line breaks to YAML and JSON
  readers and to some terminals;
- the bidirectional formatting characters U+061C, U+200E, U+200F, U+202A..U+202E and U+2066..U+2069
  (embeddings, overrides, isolates and marks): they reorder what is displayed ("Trojan Source");
- lone surrogates (category Cs: undecodable bytes of a file name under Python's surrogateescape).
"""

from __future__ import annotations

import re
import unicodedata

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Unicode's explicit bidirectional formatting characters (UAX #9, table 4) plus the three marks."""

_ESCAPE_SEQUENCE = re.compile(
    r"""
      (?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?              # CSI: ESC [ or C1 CSI, params, final
    | (?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?  # OSC/DCS/SOS/PM/APC .. ST
    | \x1b[\x20-\x2f]*[\x30-\x7e]?                                     # any other ESC sequence (ESC c, ESC 7)
    """,
    re.VERBOSE,
)
"""ECMA-48 escape sequences, removed as a whole so that no parameter bytes ("[31m", "]0;title") are left
behind; an unterminated string sequence (OSC without BEL/ST) is removed up to the end of the text."""

REPLACEMENT = "?"
"""What a lone control character becomes: ASCII, so a terminal with a C locale can still print it."""


def is_control(ch: str) -> bool:
    """True for one character that must not reach a terminal or a line-based file (see the module doc)."""
    if ch in BIDI_CONTROLS:
        return True
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")


def control_chars(s: str) -> list[str]:
    """The distinct control characters in `s`, in order of first appearance (empty: `s` is clean)."""
    seen: dict[str, None] = {}
    for ch in s:
        if ch not in seen and is_control(ch):
            seen[ch] = None
    return list(seen)


def describe_controls(s: str) -> str:
    """The control characters of `s` for an error message, e.g. ``U+000A (line feed), U+001B``."""
    names = []
    for ch in control_chars(s):
        name = unicodedata.name(ch, "") or {"\n": "line feed", "\r": "carriage return", "\t": "tab",
                                            "\0": "NUL", "\x1b": "escape", "\x85": "next line"}.get(ch, "")  # fmt: skip
        names.append(f"U+{ord(ch):04X}" + (f" ({name.lower()})" if name else ""))
    return ", ".join(names)


def printable(s: object, *, keep_newlines: bool = False) -> str:
    """`str(s)` safe to print on a terminal: escape sequences removed, other control characters as "?".

    keep_newlines: keep "\\n" (for messages that are meant to span lines); every other control character,
    "\\r" included, is still replaced.
    """
    text = str(s)
    if text.isprintable() and text.isascii():
        return text  # the common case: plain ASCII, nothing to do
    text = _ESCAPE_SEQUENCE.sub("", text)
    if keep_newlines:
        return "\n".join(_replace_controls(line) for line in text.split("\n"))
    return _replace_controls(text)


def _replace_controls(text: str) -> str:
    return "".join(REPLACEMENT if is_control(ch) else ch for ch in text)


__all__ = ["BIDI_CONTROLS", "REPLACEMENT", "control_chars", "describe_controls", "is_control", "printable"]


def drawable(s: object) -> str:
    """`s` in the characters OpenCV's Hershey fonts draw (printable ASCII): accents dropped ("Fröhlich" ->
    "Frohlich", a decomposed "ä" -> "a"), others as "?"; `cv2.putText` drew every non-ASCII byte as "?"
    ("Fr??hlich") in plots of labels of one's own."""
    import unicodedata

    text = unicodedata.normalize("NFKD", str(s))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 update", "2 updates" (`plural`: an irregular plural form, default `noun` + "s")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


_AN_SOUND = re.compile(r"[aeio]|u(?!ni|se|sb|tf)|[fhlmnrsx](?![a-z])", re.IGNORECASE)
"""Words said with a vowel sound first: a vowel (not "uni...", "use", "USB", "UTF"), or a letter said as a
name ("an f16", "an x86 host", "an M2"; an acronym said letter by letter otherwise is not told apart)."""


def with_article(word: str) -> str:
    """ "a pi4", "an orin-nano-8gb", "an x86 host": `word` after the indefinite article its sound takes."""
    return f"{'an' if _AN_SOUND.match(word) else 'a'} {word}"
