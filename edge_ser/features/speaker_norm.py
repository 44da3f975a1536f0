"""Per-speaker feature standardisation from running statistics, starting from a training prior.

A model trained on speaker-normalised features (each training speaker standardised by its own mean and
variance) needs the same for a new speaker. On the device the speaker's statistics are not known in
advance: `SpeakerNorm` starts from the training prior (mean, variance, weighted as `prior_weight` clips)
and moves towards the speaker's own statistics as clips arrive (`update`), so one clip already helps and
twenty are close to knowing the speaker. The host uses the same class: with `prior_weight=0` and every clip
of a speaker given to `update`, `apply` is that speaker's z-score (the transductive recipe), and the
host's simulation of the device's online mode runs exactly this arithmetic.

    norm = SpeakerNorm(prior_mean, prior_var, prior_weight=10)
    norm.update(x1); z1 = norm.apply(x1)        # x: one clip vector [d] or clips [n, d]
    norm.reset()                                  # a new speaker / session

The running statistics are weighted sums merged with Chan et al.'s parallel update (numerically stable for
any batch size): the prior counts as `prior_weight` pseudo-clips with the prior mean and variance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.limits import MAX_NORMALIZATION_VALUES
from edge_ser.schema import Checker

VAR_FLOOR = 1e-6
"""Default floor of the variance, relative to the prior's (a feature that never moves for one speaker would
otherwise be divided by ~0)."""
MAX_PRIOR_WEIGHT = 1e6
"""Largest accepted prior weight (pseudo-clips); more than this never lets a speaker's clips count."""
_TINY = 1e-30  # absolute floor, for a feature whose prior variance is 0 (constant in training)
RESOLUTION = 1e-4
"""The standard deviation used is at least this fraction of the prior mean's magnitude: a feature that is constant
by construction (the equivalent sound level of a level-normalised clip) varies only by float rounding (~1e-7 of
its value), and standardising that noise turned a 20 dB gain change into a 2.4-sigma input change."""


def floored_std(mean: Any, std: Any, eps: float = 1e-6) -> np.ndarray:
    """A model's input standard deviation, at least `eps` and RESOLUTION x |mean|: the same floor as
    `SpeakerNorm.var`, for the models that standardise raw features themselves (norm `none`). Without it a
    feature constant by construction had its float rounding scaled to unit variance, and a rerun moved a table
    row by 0.6 points (docs/protocol.md, "Audit", defect 2)."""
    m, s = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return np.maximum(np.maximum(s, eps), RESOLUTION * np.abs(m))


def _vector(v: Any, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim != 1 or not 1 <= a.size <= MAX_NORMALIZATION_VALUES:
        raise ConfigError(f"SpeakerNorm: {what} must be a 1-D vector of 1..{MAX_NORMALIZATION_VALUES} values")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"SpeakerNorm: {what} holds NaN or infinity")
    return a


class SpeakerNorm:
    """Running mean and variance of one speaker's clip features, from a prior; standardises with them.

    Args:
        prior_mean: [d] the prior mean (the training speakers' mean).
        prior_var: [d] the prior variance (the training speakers' mean within-speaker variance), >= 0.
        prior_weight: how many clips the prior counts as (>= 0); 0 = the speaker's own statistics only.
        var_floor: the variance used is at least `var_floor * prior_var` (0 <= var_floor < 1).
    """

    def __init__(
        self, prior_mean: Any, prior_var: Any, *, prior_weight: float = 10.0, var_floor: float = VAR_FLOOR
    ) -> None:
        self.prior_mean = _vector(prior_mean, "prior_mean")
        self.prior_var = _vector(prior_var, "prior_var")
        if self.prior_var.shape != self.prior_mean.shape:
            raise ConfigError(
                f"SpeakerNorm: prior_var has {self.prior_var.size} values, prior_mean {self.prior_mean.size}"
            )
        if np.any(self.prior_var < 0):
            raise ConfigError("SpeakerNorm: prior_var must be >= 0")
        w = float(prior_weight)
        if not (math.isfinite(w) and 0 <= w <= MAX_PRIOR_WEIGHT):
            raise ConfigError(
                f"SpeakerNorm: prior_weight={prior_weight!r} must be in 0..{MAX_PRIOR_WEIGHT:g}"
            )
        f = float(var_floor)
        if not (math.isfinite(f) and 0 <= f < 1):
            raise ConfigError(f"SpeakerNorm: var_floor={var_floor!r} must be in [0, 1)")
        self.prior_weight, self.var_floor = w, f
        self.reset()

    @classmethod
    def from_speakers(
        cls, X: np.ndarray, speakers: Any, *, prior_weight: float = 10.0, var_floor: float = VAR_FLOOR
    ) -> SpeakerNorm:
        """The prior of labelled training data: the mean of the speakers' means and of their variances.

        The within-speaker variance (not the pooled one, which adds the spread between speakers) is what a
        new speaker's running variance estimates, so it is the prior for it."""
        X = np.asarray(X, dtype=np.float64)
        speakers = np.asarray([str(s) for s in speakers])
        if X.ndim != 2 or len(X) != len(speakers) or len(X) == 0:
            raise ConfigError(
                f"SpeakerNorm.from_speakers: X {X.shape} must be [n, d] with one speaker per row"
            )
        names = np.unique(speakers)
        means = np.stack([X[speakers == s].mean(0) for s in names])
        variances = np.stack([X[speakers == s].var(0) for s in names])
        return cls(means.mean(0), variances.mean(0), prior_weight=prior_weight, var_floor=var_floor)

    # -- state -------------------------------------------------------------------------------------------------

    def reset(self) -> SpeakerNorm:
        """Forget every clip: back to the prior (a new speaker or session)."""
        self.count = 0
        self.weight = self.prior_weight
        self._mean = self.prior_mean.copy()
        self._m2 = self.prior_var * self.prior_weight
        return self

    @property
    def dim(self) -> int:
        return int(self.prior_mean.size)

    @property
    def mean(self) -> np.ndarray:
        """[d] the current mean (the prior's before any clip when prior_weight is 0)."""
        return self._mean.copy()

    @property
    def var(self) -> np.ndarray:
        """[d] the current variance, floored at `var_floor * prior_var` and at (RESOLUTION * |prior_mean|)^2 (the
        prior's when nothing is known)."""
        raw = self._m2 / self.weight if self.weight > 0 else self.prior_var
        floor = np.maximum(self.var_floor * self.prior_var, (RESOLUTION * self.prior_mean) ** 2)
        return np.maximum(raw, np.maximum(floor, _TINY))

    def _rows(self, x: Any) -> np.ndarray:
        a = np.asarray(x, dtype=np.float64)
        rows = a[None] if a.ndim == 1 else a
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ConfigError(f"SpeakerNorm: expected clip vectors of {self.dim} values, got shape {a.shape}")
        return rows

    def update(self, x: Any) -> SpeakerNorm:
        """Add one clip vector [d] or several [n, d] of this speaker to the statistics."""
        rows = self._rows(x)
        if not np.all(np.isfinite(rows)):
            raise ConfigError("SpeakerNorm.update: the clip features hold NaN or infinity")
        n = len(rows)
        if n == 0:
            return self
        mean_b = rows.mean(0)
        return self._merge(n, mean_b, ((rows - mean_b) ** 2).sum(0))

    def _merge(self, n: int, mean_b: np.ndarray, m2_b: np.ndarray) -> SpeakerNorm:
        """Add a batch of `n` clips given by its mean and sum of squared deviations (Chan et al.'s merge)."""
        total = self.weight + n
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + m2_b + delta**2 * (self.weight * n / total)
        self.weight = total
        self.count += n
        return self

    def absorb(self, base: Mapping[str, Any], grown: Mapping[str, Any]) -> int:
        """Add the clips that statistics `grown` hold beyond `base` (states of `state()`, `grown` made from `base`
        by `update`) to these statistics: two sessions that started from one saved speaker both count. The
        clips added (0 when `grown` holds none beyond `base`)."""
        n = int(grown["count"]) - int(base["count"])
        if n <= 0:
            return 0
        w0, w1 = float(base["weight"]), float(grown["weight"])
        m0, m1 = np.asarray(base["mean"], np.float64), np.asarray(grown["mean"], np.float64)
        mean_b = m0 + (m1 - m0) * (w1 / n)  # the merge above, solved for the batch
        m2_b = np.asarray(grown["m2"], np.float64) - np.asarray(base["m2"], np.float64)
        m2_b = np.maximum(m2_b - (mean_b - m0) ** 2 * (w0 * n / w1), 0.0)
        self._merge(n, mean_b, m2_b)
        return n

    @property
    def constant(self) -> np.ndarray:
        """[d] features the prior says never move (variance below the RESOLUTION floor): `apply` gives 0 there.
        The equivalent sound level of a level-normalised EMODB clip is one; a RAVDESS clip, whose pauses lower
        it by a fraction of a dB, put it hundreds of sigma out and flagged 99.7 % of RAVDESS out of range."""
        return self.prior_var <= (RESOLUTION * self.prior_mean) ** 2

    def apply(self, x: Any) -> np.ndarray:
        """(x - mean) / sqrt(var) for one clip vector [d] or clips [n, d], 0 for the `constant` features; float32,
        the shape of `x`."""
        a = np.asarray(x, dtype=np.float64)
        self._rows(a)
        return np.where(self.constant, 0.0, (a - self._mean) / np.sqrt(self.var)).astype(np.float32)

    def state(self) -> dict[str, Any]:
        """The running statistics (what `set_state` restores): clips seen, their weight with the prior's, the
        mean and the sum of squared deviations."""
        return {
            "count": self.count,
            "weight": self.weight,
            "mean": self._mean.tolist(),
            "m2": self._m2.tolist(),
        }

    def set_state(self, state: Mapping[str, Any], where: str = "speaker state") -> SpeakerNorm:
        """Restore running statistics saved by `state` (ConfigError naming `where` and the field if they do not
        fit this prior's dimension or are not a valid state)."""
        c = Checker(where)
        c.mapping(state, "", required=("count", "weight", "mean", "m2"))
        # at most 2**53: the weight, a float, counts whole clips exactly up to it (a hand-edited 10**400 was an
        # OverflowError traceback)
        count = c.integer(state["count"], "count", 0, 2**53)
        weight = c.get(state, "weight", "", (int, float))
        try:  # a hand-edited "abc" or [1, 2] among the values was numpy's ValueError traceback
            mean = np.asarray(c.get(state, "mean", "", list), dtype=np.float64)
            m2 = np.asarray(c.get(state, "m2", "", list), dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: mean and m2 must be lists of numbers") from None
        if mean.shape != (self.dim,) or m2.shape != (self.dim,):
            raise ConfigError(
                f"{where}: mean and m2 must hold {self.dim} values, got {mean.size} and {m2.size}"
            )
        if count < 0 or not math.isclose(weight, self.prior_weight + count, abs_tol=1e-6):
            raise ConfigError(
                f"{where}: count {count} and weight {weight} do not fit prior weight {self.prior_weight:g}"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(m2)) and np.all(m2 >= 0)):
            raise ConfigError(f"{where}: mean and m2 must be finite, m2 >= 0")
        self.count, self.weight, self._mean, self._m2 = count, float(weight), mean, m2
        return self

    # -- config ------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The prior and settings (what a bundle records); the running state is per session and not kept."""
        return {
            "prior_mean": self.prior_mean.tolist(),
            "prior_var": self.prior_var.tolist(),
            "prior_weight": self.prior_weight,
            "var_floor": self.var_floor,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "speaker_norm") -> SpeakerNorm:
        """Inverse of to_dict; ConfigError naming the field that is missing or wrong."""
        c = Checker(where)
        c.mapping(data, "", required=("prior_mean", "prior_var"), optional=("prior_weight", "var_floor"))
        mean = c.get(data, "prior_mean", "", list)
        var = c.get(data, "prior_var", "", list)
        weight = c.get(data, "prior_weight", "", (int, float), required=False)
        floor = c.get(data, "var_floor", "", (int, float), required=False)
        made = c.build(
            "",
            lambda: cls(
                mean,
                var,
                prior_weight=10.0 if weight is None else weight,
                var_floor=VAR_FLOOR if floor is None else floor,
            ),
        )
        assert made is not None  # Checker raises in non-collect mode
        return made

    def __repr__(self) -> str:
        return (
            f"SpeakerNorm(d={self.dim}, prior_weight={self.prior_weight:g}, clips={self.count}, "
            f"var_floor={self.var_floor:g})"
        )


__all__ = ["VAR_FLOOR", "SpeakerNorm"]
