"""Checks of training settings shared by the configs that take them (the zoo's points, the temporal trainer)."""

from __future__ import annotations

from edge_ser.errors import ConfigError


def check_counts(owner: str, obj: object, lows: dict[str, int]) -> None:
    """ConfigError "{owner}{name}=value must be an integer >= low" for the first field of `obj` named in `lows`
    that is not an integer (a bool is not one) of at least its low: epochs or batch 0 trained nothing, or failed
    every point alone."""
    for name, low in lows.items():
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{owner}{name}={v!r} must be an integer >= {low}")
