"""Pauses around a clip: find its speech, and keep no more pause before and after it than the bundle's training
clips had (the manifest's optional `pauses` block, docs/protocol.md, "Pauses around the speech").

A clip of up to 30 s is classified whole, pauses included, as every training clip was: its features average over
the pauses and the level conditioning scales by the whole clip's RMS. A recording started early or stopped late is
then a different input (2 s of quiet room before and after a clip changed the top-1 of 35-80 % of clips). Trimming
the pause beyond what the training clips held leaves a clip like them unchanged and brings a padded one back.

    "pauses": {"keep_s": 0.85, "measured_on": "..."}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.features.pitch import voiced_frames

BLOCK = "pauses"
SPEECH_RANGE_DB = 35.0
"""A voiced frame counts as speech when its energy is within this many dB of the clip's loudest voiced frame (a
faint hum is voiced too, but far quieter; a second voice within this range counts as speech)."""
MAX_KEEP_S = 30.0


EDGE_RANGE_DB = 20.0
"""The span grows over the frames next to it that are within this many dB of its loudest frame, voiced or not: a
shouted or harsh vowel whose YIN dip misses the voicing threshold, or the consonant that ends a word, is speech."""


def speech_span(y: np.ndarray, sr: int) -> tuple[int, int] | None:
    """(first, end) sample of `y`'s speech: from the first to the last 40 ms frame that is voiced
    (`voiced_frames`) and within SPEECH_RANGE_DB of the loudest voiced frame, grown over the neighbouring frames
    within EDGE_RANGE_DB of its loudest; None when no frame is voiced (a whisper, noise: nothing is cut)."""
    voiced, energy, starts, n_frame, _ = voiced_frames(y, sr=sr)
    if not voiced.any():
        return None
    loudest = energy[voiced].max()
    idx = np.flatnonzero(voiced & (energy >= loudest * 10.0 ** (-SPEECH_RANGE_DB / 10.0)))
    first, last = int(idx[0]), int(idx[-1])
    edge = energy[first : last + 1].max() * 10.0 ** (-EDGE_RANGE_DB / 10.0)
    while first > 0 and energy[first - 1] >= edge:
        first -= 1
    while last + 1 < energy.size and energy[last + 1] >= edge:
        last += 1
    return int(starts[first]), int(starts[last] + n_frame)


def trim_pauses(y: np.ndarray, sr: int, keep_s: float) -> np.ndarray:
    """`y` with at most `keep_s` seconds kept before the first and after the last speech frame (`speech_span`);
    `y` itself when it has no speech or no longer pause."""
    if not 0 <= keep_s <= MAX_KEEP_S:  # also refuses nan
        raise ConfigError(f"keep_s {keep_s} must be in 0..{MAX_KEEP_S:g} s")
    span = speech_span(y, sr)
    if span is None:
        return y
    keep = int(round(keep_s * sr))
    a, b = max(0, span[0] - keep), min(y.shape[0], span[1] + keep)
    return y if (a, b) == (0, y.shape[0]) else y[a:b]


def keep_seconds(manifest: Mapping[str, Any]) -> float | None:
    """The pause a bundle keeps around a clip's speech (its `pauses.keep_s`), None without the block."""
    block = manifest.get(BLOCK)
    return None if block is None else float(block["keep_s"])


def bundle_keep(manifest: Mapping[str, Any], kind: Any) -> float | None:
    """The pause a whole clip keeps for a bundle of input kind `kind` (its `pauses.keep_s`): None without the block,
    or when the model takes faces (the faces are timed by the audio) or no audio."""
    if not kind.hears or kind.faces:
        return None
    return keep_seconds(manifest)


def check_block(c: Any, manifest: Mapping[str, Any]) -> None:
    """Check a manifest's optional `pauses` block (problems into the `edge_ser.schema.Checker` `c`)."""
    block = c.get(manifest, BLOCK, "", dict, required=False)
    if block is None:
        return
    c.mapping(block, BLOCK, required=("keep_s",), optional=("measured_on",))
    if "keep_s" in block:
        c.number(block["keep_s"], f"{BLOCK}.keep_s", lo=0, hi=MAX_KEEP_S, unit="s")


__all__ = [
    "BLOCK",
    "EDGE_RANGE_DB",
    "SPEECH_RANGE_DB",
    "bundle_keep",
    "check_block",
    "keep_seconds",
    "speech_span",
    "trim_pauses",
]
