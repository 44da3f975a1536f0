"""Typed access to a graph node's attributes (`bundle.graph`), shared by the numpy engine and the FLOP counter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class NodeAttrs:
    """`i`, `f`, `ints`, `s`: an attribute of `self.attrs` or its default, checked; a wrong type raises
    `self.error` (each user names its own exception type, so its messages keep their context)."""

    attrs: Mapping[str, Any]
    error: type[Exception] = ValueError

    def i(self, key: str, default: int) -> int:
        v = self.attrs.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(f"attribute {key}={v!r} must be an integer")
        return int(v)

    def f(self, key: str, default: float) -> float:
        v = self.attrs.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(f"attribute {key}={v!r} must be a number")
        return float(v)

    def ints(self, key: str, default: Sequence[int] | None) -> list[int] | None:
        v = self.attrs.get(key, default)
        if v is None:
            return None
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, (list, tuple)) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in v
        ):
            raise self.error(f"attribute {key}={v!r} must be a list of integers")
        return [int(x) for x in v]

    def s(self, key: str, default: str) -> str:
        v = self.attrs.get(key, default)
        if not isinstance(v, str):
            raise self.error(f"attribute {key}={v!r} must be a string")
        return v
