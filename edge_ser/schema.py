"""Field-by-field checks of a parsed JSON or YAML document: the one checker of bundle manifests and device
profiles.

    c = Checker("bundle b: manifest.json", error=BundleError)          # the first problem raises
    labels = c.get(manifest, "labels", "", list)                         # -> "...: labels: must be a list, got text 'x'"
    c = Checker("pi4.yaml", error=ProfileError, collect=True)            # every problem is listed, then raised once

Every message reads ``<where>: <field path>: <what is wrong>``, with the path in the document's own terms
(``peaks.cpu.fp32.value``, ``model.inputs[0].shape``). A check returns the checked value; in `collect` mode a
check that found a problem records it and returns None, so the caller can go on and report the rest.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from edge_ser.errors import ConfigError

T = TypeVar("T")

MISSING: Any = object()
"""Marks a key that is absent from a mapping (as opposed to present with the value null)."""

_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "text",
    int: "an integer",
    float: "a number",
    bool: "true or false",
}


def kind_of(v: Any) -> str:
    """How a value of a parsed document is named in messages: mapping, list, text, number, true/false, null."""
    if v is None or v is MISSING:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return {dict: "mapping", list: "list", str: "text"}.get(type(v), type(v).__name__)


def short(v: Any, n: int = 60) -> str:
    """repr(v), cut to n characters."""
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def describe(v: Any) -> str:
    """`text '1e3'` for messages, with a hint for YAML 1.1's exponent-without-dot rule (PyYAML reads it as text)."""
    if v is None or v is MISSING:
        return "null"
    text = f"{kind_of(v)} {short(v)}"
    if isinstance(v, str):
        try:
            float(v)
        except ValueError:
            return text
        return text + " (a quoted number? YAML reads 1e3 as text: write 1.0e3)"
    return text


def speaker_ids(split: Any, part: str) -> list[str]:
    """The ids of a manifest split record's `part` ("train_speakers", "test_speakers", ...), a list of ids as
    training writes it. Anything else there (a hand-edited or damaged manifest: a number, one string such as
    "03,08", null, a map) is none, as if absent, so a reader neither crashes on it nor reads a string's characters
    as ids; in a list, ids other than a string or a whole number are left out. The one rule for `edge-ser info`
    and the converters (`converters.heldout`, the TFLite export's training clips)."""
    ids = split.get(part) if isinstance(split, Mapping) else None
    if not isinstance(ids, (list, tuple)):
        return []
    return [str(s) for s in ids if isinstance(s, (str, int)) and not isinstance(s, bool)]


def sub_record(doc: Any, key: str) -> Mapping[str, Any]:
    """A manifest record's sub-record `key` (a manifest's "accuracy", its "split", a split's "sizes"), {} when absent
    or not a mapping (a hand-edited manifest: a string, a list, null), so a reader neither crashes on `.get` nor
    reads it. The one rule for `edge-ser info` and the converters (the TFLite export's training clips)."""
    value = doc.get(key) if isinstance(doc, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def number(value: Any) -> float | None:
    """`value` when it is a number (not a bool), else None: a hand-edited manifest's "82 %" or null is left out by
    its readers, not formatted into a crash."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def uar_of(record: Any) -> float | None:
    """A figure record's `uar` ({"uar": 0.83, ...}; `number`), None when the record is no mapping or its `uar` no
    number. The one rule for `Bundle.describe`'s headline and `edge-ser info`."""
    return number(record.get("uar")) if isinstance(record, Mapping) else None


def tflite_variants(manifest: Any) -> Mapping[str, Any]:
    """A manifest's TFLite variants by name ({} without a `tflite` block, or with null there: a hand-edited
    manifest passes its check so). The one rule for the engine, `edge-ser info`, slim and the roofline."""
    return sub_record(sub_record(manifest, "tflite"), "variants")


def join(path: str, key: str | int) -> str:
    """The path of a member: join("model", "inputs") -> "model.inputs", join("files", 0) -> "files[0]"."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def config_from_dict(
    cls: type[T], data: Any, *, what: str = "field(s)", **convert: Callable[[Any], Any]
) -> T:
    """A config dataclass from a mapping (the inverse of its `to_dict`): missing keys take their defaults; not a
    mapping, an unknown key or a bad value is a ConfigError naming the class. `convert` maps a field to a
    function applied to its value first (e.g. a list back to a tuple, a nested dict to its spec)."""
    name = cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{name}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known, key=str)
    if unknown:
        raise ConfigError(f"{name}: unknown {what} {unknown}; known: {sorted(known)}")
    values = {k: convert[k](v) if k in convert else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as e:
        raise ConfigError(f"{name}: {e}") from e


class Checker:
    """Checks values of one document; every problem names `where` and the field path.

    Args:
        where: how messages name the document ("pi4.yaml", "bundle b: manifest.json").
        error: the exception raised; with `collect` it is given the list of problems (ProfileError takes one).
        collect: record every problem and go on (`raise_problems()` raises them together) instead of raising
            at the first.
    """

    def __init__(self, where: str, *, error: type[Exception] = ConfigError, collect: bool = False) -> None:
        self.where = where
        self.error = error
        self.collect = collect
        self.problems: list[str] = []

    # -- reporting -------------------------------------------------------------------------------------------

    def fail(self, path: str, what: str) -> Exception:
        """The exception for one problem (for a caller that raises it itself)."""
        return self.error(f"{self.where}: {path or '<top level>'}: {what}")

    def problem(self, path: str, what: str) -> None:
        """Report a problem: raise it, or in `collect` mode record it."""
        if not self.collect:
            raise self.fail(path, what)
        self.problems.append(f"{self.where}: {path or '<top level>'}: {what}")

    def raise_problems(self) -> None:
        """In `collect` mode, raise every recorded problem at once (nothing when there are none)."""
        if self.problems:
            raise self.error(list(self.problems))

    # -- structure -------------------------------------------------------------------------------------------

    def build(self, path: str, make: Callable[..., T], *args: Any) -> T | None:
        """`make(*args)` (a spec's `from_dict`, say), its ConfigError or bad-value error reported at `path`."""
        try:
            return make(*args)
        except ConfigError as e:
            self.problem(path, str(e))
        except (TypeError, ValueError, ArithmeticError) as e:
            self.problem(path, f"invalid value ({type(e).__name__}: {e})")
        return None

    def get(
        self,
        d: Mapping[str, Any],
        key: str,
        path: str,
        kind: type | tuple[type, ...],
        *,
        required: bool = True,
    ) -> Any:
        """`d[key]` checked to be of `kind`; a missing (or, when not required, null) key gives None."""
        v = d.get(key, MISSING)
        p = join(path, key)
        if v is MISSING or (v is None and not required):
            if required:
                self.problem(p, "missing (required)")
            return None
        return self.of(v, p, kind)

    def of(self, v: Any, path: str, kind: type | tuple[type, ...]) -> Any:
        """`v` checked to be of `kind` (a bool is never taken for a number)."""
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in kinds)
            self.problem(path, f"must be {names}, got {describe(v)}")
            return None
        return v

    def mapping(
        self, v: Any, path: str, required: Iterable[str] = (), optional: Iterable[str] | None = ()
    ) -> dict[str, Any] | None:
        """A mapping with the `required` keys; keys outside required + optional are problems (optional=None:
        any other key is allowed)."""
        if not isinstance(v, dict):
            self.problem(path, f"must be a mapping, got {describe(v)}")
            return None
        required = tuple(required)
        if optional is not None:
            allowed = set(required) | set(optional)
            for key in v:
                if key not in allowed:
                    self.problem(
                        join(path, str(key)), f"unknown key (expected one of: {', '.join(sorted(allowed))})"
                    )
        for key in required:
            if key not in v:
                self.problem(join(path, key), "missing (required)")
        return v

    # -- values ----------------------------------------------------------------------------------------------

    def number(
        self,
        v: Any,
        path: str,
        *,
        lo: float | None = None,
        hi: float | None = None,
        positive: bool = False,
        absurd: float | None = None,
        unit: str = "",
    ) -> float | None:
        """A finite number (not a bool); `lo` / `hi` bound it, `positive` wants > 0, and `absurd` is a limit
        beyond which a value is a typo or a unit mix-up (the message says so, with `unit`)."""
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.problem(path, f"must be a finite number, got {describe(v)}")
            return None
        if positive and v <= 0:
            self.problem(path, f"must be > 0, got {v!r}")
            return None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.problem(
                path,
                f"must be between {lo} and {hi}, got {v!r}"
                if hi is not None
                else f"must be >= {lo}, got {v!r}",
            )
            return None
        if absurd is not None and v > absurd:
            self.problem(path, f"{v!r} is absurd (> {absurd:g}{' ' + unit if unit else ''}); check the unit")
            return None
        return v

    def integer(self, v: Any, path: str, lo: int | None = None, hi: int | None = None) -> int | None:
        """An integer (not a bool, not 4.0) within [lo, hi]."""
        if isinstance(v, bool) or not isinstance(v, int):
            self.problem(path, f"must be an integer, got {describe(v)}")
            return None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.problem(path, f"must be between {lo} and {hi}, got {v}")
            return None
        return v

    def text(self, v: Any, path: str, *, max_len: int = 1024) -> str | None:
        """Non-empty text (surrounding white space removed) of at most `max_len` characters."""
        if not isinstance(v, str):
            self.problem(path, f"must be text, got {describe(v)}")
            return None
        if not v.strip():
            self.problem(path, "must not be empty")
            return None
        if len(v) > max_len:
            self.problem(path, f"is longer than {max_len} characters")
            return None
        return v.strip()

    def flag(self, v: Any, path: str) -> bool | None:
        """true or false."""
        if not isinstance(v, bool):
            self.problem(path, f"must be true or false, got {describe(v)}")
            return None
        return v

    def choice(self, v: Any, path: str, options: Iterable[Any]) -> Any:
        """One of `options`."""
        options = tuple(options)
        if v not in options:
            self.problem(path, f"{short(v)} must be one of: {', '.join(map(str, options))}")
            return None
        return v

    def texts(self, v: Any, path: str) -> tuple[str, ...] | None:
        """A list of non-empty texts."""
        if not isinstance(v, list) or not all(isinstance(s, str) and s.strip() for s in v):
            self.problem(path, f"must be a list of non-empty texts, got {describe(v)}")
            return None
        return tuple(s.strip() for s in v)

    def unique(self, values: list[Any], path: str) -> None:
        """No value twice (in linear time)."""
        seen: set[Any] = set()
        dup = sorted({x for x in values if x in seen or seen.add(x)}, key=str)
        if dup:
            self.problem(path, f"must be unique; repeated: {short(dup, 200)}")


__all__ = ["MISSING", "Checker", "config_from_dict", "describe", "join", "kind_of", "short"]
