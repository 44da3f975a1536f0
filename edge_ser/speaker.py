"""Online speaker normalisation on the device: the bundle's `speaker_norm` block, run per session.

A model trained on per-speaker standardised inputs (each training speaker by its own statistics) needs its
user standardised the same way. The bundle records the training prior (`edge_ser.features.SpeakerNorm`:
the speakers' mean and within-speaker variance, counted as `prior_weight` clips) and the model input it
applies to; `SpeakerAdapter` keeps the running statistics of the session: every clip with speech updates
them, then is standardised with them. `reset()` starts a new speaker; `enroll()` feeds known clips of the
user first. The model's own in-graph standardisation then sees what it saw in training.

    "speaker_norm": {"input": "functionals", "prior_mean": [...], "prior_var": [...],
                     "prior_weight": 10, "var_floor": 1e-6}
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.features.speaker_norm import SpeakerNorm
from edge_ser.schema import Checker

BLOCK = "speaker_norm"
MIN_SPEECH_S = 1.0
"""Shortest speech that teaches a speaker's statistics: a whole clip (`edge_ser.recognizer.clip_teaches`) or a live
utterance (seconds of open gate, `edge_ser.live.pipeline`). The functionals of a word or a click are far from any
sentence's: one 0.2 s file pooled with 10 sentences moved their probabilities by up to 0.22 (a user review,
2026-12-06). Every EMODB clip here is 2.0 s, every RAVDESS clip 3.0-5.0 s."""


def check_block(c: Checker, manifest: Mapping[str, Any], inputs: list[dict[str, Any]]) -> None:
    """Check a manifest's optional `speaker_norm` block against the model's inputs (problems into `c`)."""
    block = c.get(manifest, BLOCK, "", dict, required=False)
    if block is None:
        return
    target = c.get(block, "input", BLOCK, str)
    names = [io_["name"] for io_ in inputs]
    if target not in names:
        c.problem(f"{BLOCK}.input", f"{target!r} is not a model input ({names})")
        return
    prior = {k: v for k, v in block.items() if k != "input"}
    norm = c.build(BLOCK, lambda: SpeakerNorm.from_dict(prior, BLOCK))
    last = inputs[names.index(target)]["shape"][-1]
    if norm is not None and norm.dim != last:
        c.problem(BLOCK, f"{norm.dim} values cannot standardise input {target!r} ({last} per row)")


class SpeakerAdapter:
    """The session's running speaker statistics for one bundle; a no-op for a bundle without the block.

    Args:
        manifest: the bundle's manifest (already validated).
        enabled: False keeps the prior for every clip (what a model without adaptation would get).
    """

    def __init__(self, manifest: Mapping[str, Any], *, enabled: bool = True) -> None:
        block = manifest.get(BLOCK)
        self.input: str | None = None if block is None else str(block["input"])
        self.norm = (
            None if block is None else SpeakerNorm.from_dict({k: v for k, v in block.items() if k != "input"})
        )
        self.enabled = bool(enabled)
        """The user's setting: clips classified join the statistics (outside a `held` block of the same thread)."""
        self._lock = threading.Lock()  # the running sums are shared by every thread that classifies
        self._local = threading.local()  # `held` blocks count per thread: one thread's hold is not another's
        self.resets = 0
        """How many times `reset` has started a new speaker: a live utterance begun before one is the last
        speaker's, and does not join the new one's statistics (`edge_ser.live.pipeline`)."""

    @property
    def learning(self) -> bool:
        """True when a clip classified now, in this thread, would join the statistics."""
        return self.enabled and self.norm is not None and not getattr(self._local, "holds", 0)

    @property
    def active(self) -> bool:
        """True when the bundle records a speaker normalisation."""
        return self.norm is not None

    @property
    def clips(self) -> int:
        """Clips of the current speaker the statistics have seen."""
        return 0 if self.norm is None else self.norm.count

    def reset(self) -> None:
        """A new speaker or session: back to the training prior."""
        if self.norm is not None:
            with self._lock:
                self.norm.reset()
                self.resets += 1

    def enroll(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Add a clip's model inputs (from `InputKind.audio_inputs` / `file_inputs`) to the statistics (a clip
        with a non-finite value is left out, as when classifying)."""
        if self.norm is not None:
            rows = self._rows(inputs)
            if np.all(np.isfinite(rows)):
                with self._lock:
                    self.norm.update(rows)

    def __call__(self, inputs: Mapping[str, np.ndarray], *, update: bool = True) -> dict[str, np.ndarray]:
        """One clip's model inputs with the speaker input standardised; with `update` (and adaptation on) the
        clip first joins the statistics."""
        if self.norm is None:
            return dict(inputs)
        rows = self._rows(inputs)
        with self._lock:  # the update and the statistics it standardises with, as one step
            if update and self.learning and np.all(np.isfinite(rows)):
                self.norm.update(rows)
            out = self.norm.apply(rows)
        return {**inputs, self.input: out.reshape(np.shape(inputs[self.input]))}

    def _rows(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.input not in inputs:
            raise ConfigError(f"speaker_norm: the clip has no input {self.input!r} (has {sorted(inputs)})")
        x = np.asarray(inputs[self.input])
        return x.reshape(-1, x.shape[-1])

    @property
    def prior_id(self) -> str:
        """A fingerprint of the training prior (mean, variance, weight, floor): saved statistics fit only a bundle
        with the same prior."""
        assert self.norm is not None
        h = hashlib.sha256(np.asarray(self.norm.prior_mean, "<f8").tobytes())
        h.update(np.asarray(self.norm.prior_var, "<f8").tobytes())
        h.update(np.asarray([self.norm.prior_weight, self.norm.var_floor], "<f8").tobytes())
        return h.hexdigest()[:16]

    def state(self) -> dict[str, Any] | None:
        """The session's speaker statistics with the prior's fingerprint (None for a bundle without the block)."""
        if self.norm is None:
            return None
        with self._lock:
            return {"input": self.input, "prior": self.prior_id, **self.norm.state()}

    def set_state(self, state: Mapping[str, Any], where: str = "speaker state") -> None:
        """Restore statistics saved by `state`; ConfigError when they were made with another prior."""
        if self.norm is None:
            raise ConfigError(f"{where}: this bundle has no speaker normalisation")
        if state.get("prior") != self.prior_id or state.get("input") != self.input:
            raise ConfigError(
                f"{where}: saved with another bundle's speaker prior (input {state.get('input')!r}, prior "
                f"{state.get('prior')!r}; this bundle: {self.input!r}, {self.prior_id!r})"
            )
        with self._lock:
            self.norm.set_state({k: v for k, v in state.items() if k not in ("input", "prior")}, where)

    def absorb(self, base: Mapping[str, Any], grown: Mapping[str, Any]) -> int:
        """`SpeakerNorm.absorb` on two saved states of this prior (`state()`): the clips added."""
        assert self.norm is not None
        strip = ("input", "prior")
        with self._lock:
            return self.norm.absorb(
                {k: v for k, v in base.items() if k not in strip},
                {k: v for k, v in grown.items() if k not in strip},
            )

    def describe(self) -> str:
        if self.norm is None:
            return "none"
        mode = "online" if self.enabled else "off (training prior only)"
        return (
            f"per-speaker standardisation of {self.input!r}, {mode}: running statistics from a prior of "
            f"{self.norm.prior_weight:g} clips; {self.norm.count} clip(s) of this speaker so far"
        )


def active_adapters(speaker: SpeakerAdapter, engine: Any) -> dict[str, SpeakerAdapter]:
    """The speaker statistics a session keeps, by name: "bundle" (`speaker`) and a fusion engine's branches,
    those with a speaker_norm block only."""
    found = {"bundle": speaker, **getattr(engine, "speakers", {})}
    return {name: a for name, a in found.items() if a.active}


def clips_held(adapters: Mapping[str, SpeakerAdapter]) -> int | None:
    """Clips of the speaker the statistics hold (the most of any adapter), None when none adapts."""
    return max((a.clips for a in adapters.values()), default=None)


@contextlib.contextmanager
def held(adapters: Iterable[SpeakerAdapter]) -> Iterator[None]:
    """Inside the block the adapters' statistics are used as they are, not updated by the clips this thread
    classifies. The hold is counted per thread and never touches `enabled`: it used to switch `enabled` off and
    restore it, so two threads' overlapping blocks restored each other's False and left adaptation off for good."""
    adapters = list(adapters)
    for a in adapters:
        a._local.holds = getattr(a._local, "holds", 0) + 1
    try:
        yield
    finally:
        for a in adapters:
            a._local.holds -= 1


def learn_inputs(speaker: SpeakerAdapter, engine: Any, x: Mapping[str, np.ndarray]) -> None:
    """Add one clip's model inputs to the statistics without classifying it: the bundle's (`speaker`) and a
    fusion engine's branches'."""
    speaker.enroll(x)
    if hasattr(engine, "enroll"):
        engine.enroll(x)


def joins_statistics(speaker: SpeakerAdapter, engine: Any, x: Mapping[str, np.ndarray]) -> bool:
    """Whether a clip's model inputs reach some speaker statistics that `learn_inputs` would add them to: the
    bundle's, or a fusion branch's that has input in the clip (an image gives a fusion bundle's audio branch
    none), so that a file is said to be learnt only when it is."""
    if speaker.active:
        return True
    reaches = getattr(engine, "reaches_statistics", None)
    return bool(reaches is not None and reaches(x))


def learn_clip(kind: Any, speaker: SpeakerAdapter, engine: Any, y: np.ndarray, sr: int) -> None:
    """Add one clip of the speaker (float samples at `sr` Hz) to the statistics, through the bundle's input kind."""
    learn_inputs(speaker, engine, kind.audio_inputs(np.asarray(y), int(sr), None))


__all__ = [
    "BLOCK",
    "SpeakerAdapter",
    "active_adapters",
    "check_block",
    "clips_held",
    "held",
    "learn_clip",
    "joins_statistics",
    "learn_inputs",
]
