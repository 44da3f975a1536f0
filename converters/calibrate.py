"""Calibration and fusion fitting on validation posteriors (host): temperature scaling, ECE, reliability
diagrams, and the fusion-weight grid.

    T = fit_temperature(p_val, y_val)                       # one scalar per branch, minimising NLL
    ece(p, y), nll(p, y)                                    # before / after
    draw_reliability_png({"before": p, "after": q}, y, "audio", path)
    rule = choose_weights(rule, {"audio": pa, "face": pf}, y_val)   # the grid, always containing (1,0), (0,1)

Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks") divides a branch's log
posterior by one scalar T fitted on validation; it does not change the branch's arg-max. The fusion weights are
chosen on the same validation set by a small grid that contains every single branch alone, so the chosen
rule is at least as good as the better branch there (in UAR, ties broken by NLL), each branch as the rule has it
alone: a branch with its own training prior re-weighted to the rule's, whose arg-max can differ from the
branch's own. Everything is numpy.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from converters.evaluate import index_metrics
from edge_ser.errors import ConfigError, InputWarning
from edge_ser.fileio import write_png
from edge_ser.fusion import MAX_TEMPERATURE, MIN_TEMPERATURE, FusionRule, calibrated_log

WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
"""Per-branch weights tried by `choose_weights` (every combination but all zeros)."""
ECE_BINS = 15
"""Confidence bins of the expected calibration error (Guo et al. 2017 use 15)."""


def nll(p: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log likelihood of the true classes y [n] under probabilities p [n, classes]."""
    p = np.asarray(p, dtype=np.float64)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), np.asarray(y)], 1e-12))))


def temper(p: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities [n, classes] after temperature scaling (softmax(log p / T))."""
    return np.exp(calibrated_log(p, temperature))


def fit_temperature(p: np.ndarray, y: np.ndarray, *, steps: int = 60) -> float:
    """The temperature that minimises the NLL of (p, y): golden-section search over log T in
    [MIN_TEMPERATURE, MAX_TEMPERATURE] (the NLL is convex in 1/T for softmax outputs).

    A set on which the NLL falls all the way to an end of the search (every clip right: T -> 0, the branch a hard
    arg-max; every clip wrong or posteriors that say nothing: T -> infinity, a flat branch) has no fitted
    temperature: that end is returned, with an InputWarning saying so."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y)
    if p.ndim != 2 or len(p) != len(y) or len(y) == 0:
        raise ConfigError(
            f"fit_temperature: p must be [n, classes] with n = len(y) > 0, got {p.shape}, {len(y)}"
        )
    if not np.isfinite(p).all() or (p < 0).any():
        raise ConfigError(
            f"fit_temperature: p holds {int((~np.isfinite(p)).sum())} non-finite and {int((p < 0).sum())} "
            "negative values; it must be probabilities"
        )
    if y.dtype.kind not in "iu" or (y < 0).any() or (y >= p.shape[1]).any():
        raise ConfigError(
            f"fit_temperature: y must be class indices in 0..{p.shape[1] - 1}, got {y.dtype} from "
            f"{y.min()} to {y.max()}"
        )
    lo, hi = np.log(MIN_TEMPERATURE * 2), np.log(MAX_TEMPERATURE / 2)
    ends = (lo, hi)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(temper(p, np.exp(a)), y), nll(temper(p, np.exp(b)), y)
    for _ in range(steps):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(temper(p, np.exp(a)), y)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(temper(p, np.exp(b)), y)
    t = float(np.exp((lo + hi) / 2))
    # an end of the search as good as the fit: the NLL falls (or stays flat) all the way there
    at_end = [
        float(np.exp(e)) for e in ends[::-1] if nll(temper(p, np.exp(e)), y) <= nll(temper(p, t), y) + 1e-12
    ]
    if at_end:
        what = (
            "a hard arg-max (every clip right?)"
            if at_end[0] < 1
            else "flat (every clip wrong, or no evidence?)"
        )
        warnings.warn(
            f"fit_temperature: the NLL of these {len(y)} clips falls all the way to the search's end, T = "
            f"{at_end[0]:g}: no temperature fits them, and the branch is made {what}",
            InputWarning,
            stacklevel=2,
        )
        return at_end[0]
    return t


def reliability(
    p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin: (mean confidence, accuracy, count), for the top class of each row."""
    p = np.asarray(p, dtype=np.float64)
    conf, pred = p.max(1), p.argmax(1)
    hit = (pred == np.asarray(y)).astype(np.float64)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    mean_conf = np.bincount(which, conf, bins) / np.maximum(count, 1)
    acc = np.bincount(which, hit, bins) / np.maximum(count, 1)
    return mean_conf, acc, count


def ece(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over confidence bins of (share of rows) x |accuracy - confidence|."""
    conf, acc, count = reliability(p, y, bins)
    return float(np.sum(count / max(count.sum(), 1) * np.abs(acc - conf)))


def uar(p: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> float:
    """Unweighted average recall of the arg-max of p [n, classes]."""
    return index_metrics(np.asarray(y), np.asarray(p).argmax(1), classes).uar


def choose_weights(
    rule: FusionRule,
    posteriors: Mapping[str, np.ndarray],
    y: np.ndarray,
    grid: Sequence[float] = WEIGHT_GRID,
) -> tuple[FusionRule, dict[str, float]]:
    """The weights (one per branch, from `grid`) whose fused validation posteriors have the best UAR, ties
    broken by lower NLL; the grid holds each branch alone (weight 1, the others 0), so the result is never
    below the better branch on this set as the rule has it alone (a branch with its own `prior` re-weighted to
    the rule's, which can move its arg-max). Returns the rule with those weights and the scores it reached."""
    names = rule.names
    if 1.0 not in grid or 0.0 not in grid:
        raise ConfigError(f"the weight grid must contain 0 and 1 (each branch alone), got {list(grid)}")
    best: tuple[float, float] | None = None
    chosen, scores = rule, {}
    tried = set()
    for ws in itertools.product(grid, repeat=len(names)):
        if not any(ws):
            continue
        if sum(w != 0 for w in ws) == 1:  # a branch alone counts at weight 1 (FusionRule.fuse): one candidate
            ws = tuple(1.0 if w else 0.0 for w in ws)
        if ws in tried:
            continue
        tried.add(ws)
        r = rule.with_params({}, dict(zip(names, ws, strict=True)))
        q = r.fuse(posteriors)
        key = (uar(q, y, rule.labels), -nll(q, y))
        if best is None or key > best:
            best, chosen = key, r
            scores = {"uar": key[0], "nll": -key[1], "accuracy": float((q.argmax(1) == y).mean())}
    return chosen, scores


def draw_reliability_png(curves: Mapping[str, np.ndarray], y: np.ndarray, title: str, path: Path) -> Path:
    """A reliability diagram (accuracy against confidence per bin, the diagonal is perfect calibration) of one
    or more probability sets on the same labels, e.g. {"before": p, "after T=1.8": q}; with each ECE in the
    legend. Drawn with OpenCV, as the project's other plots."""
    from edge_ser.vision._cv2 import import_cv2

    cv2 = import_cv2("drawing the reliability diagram")
    size, left, top = 360, 60, 60
    w, h = left + size + 30, top + size + 60 + 22 * len(curves)
    img = np.full((h, w, 3), 255, np.uint8)
    font, black, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (190, 190, 190)

    def xy(cx: float, cy: float) -> tuple[int, int]:
        return int(left + cx * size), int(top + (1 - cy) * size)

    cv2.rectangle(img, xy(0, 1), xy(1, 0), black, 1)
    cv2.line(img, xy(0, 0), xy(1, 1), grey, 1, cv2.LINE_AA)
    for t in (0.0, 0.5, 1.0):
        cv2.putText(img, f"{t:.1f}", (xy(t, 0)[0] - 10, top + size + 18), font, 0.4, black, 1, cv2.LINE_AA)
        cv2.putText(img, f"{t:.1f}", (left - 32, xy(0, t)[1] + 4), font, 0.4, black, 1, cv2.LINE_AA)
    colours = [(200, 80, 30), (30, 140, 30), (30, 30, 200), (150, 30, 150)]
    for k, (name, p) in enumerate(curves.items()):
        conf, acc, count = reliability(p, y)
        colour = colours[k % len(colours)]
        pts = [xy(c, a) for c, a, n in zip(conf, acc, count, strict=True) if n > 0]
        for a, b in itertools.pairwise(pts):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for pt in pts:
            cv2.circle(img, pt, 3, colour, -1, cv2.LINE_AA)
        label = f"{name}: ECE {100 * ece(p, y):.1f}%, NLL {nll(p, y):.3f}"
        cv2.putText(img, label, (left, top + size + 40 + 22 * k), font, 0.45, colour, 1, cv2.LINE_AA)
    cv2.putText(img, title[:60], (8, 24), font, 0.55, black, 1, cv2.LINE_AA)
    cv2.putText(img, "x: confidence, y: accuracy", (8, 46), font, 0.42, black, 1, cv2.LINE_AA)
    return write_png(path, img)


__all__ = [
    "ECE_BINS",
    "WEIGHT_GRID",
    "choose_weights",
    "draw_reliability_png",
    "ece",
    "fit_temperature",
    "nll",
    "reliability",
    "temper",
    "uar",
]
