"""The engine of a fusion bundle (`edge_ser.bundle.fusion`): one engine per branch bundle, the fusion rule on top.

A fusion bundle's model input is one row per clip, `clip` (an object array), each row holding the branches'
own inputs by branch name, or None where that branch has nothing to see (no face in view). `predict` runs each
branch's engine on the clips it has (batched), turns each clip's output rows into the branch's posterior with
the branch's own input kind (`combine`: softmax, a vote over patches or face crops), maps them onto the fused
labels and fuses them (`edge_ser.fusion.FusionRule.fuse`). It returns log fused probabilities as the logits,
so the fusion kind's softmax gives the fused probabilities back. Branch speaker normalisation runs here, per
clip, as the Recognizer runs it for a single bundle (`Recognizer.reset_speaker` / `enroll` / `adapt` reach it
through `reset_speakers`, `enroll` and `set_adapt`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.inputs.fusion import CLIP_INPUT

if TYPE_CHECKING:
    from edge_ser.bundle.fusion import FusionBundle
    from edge_ser.inputs.base import InputKind, Inputs

LOG_FLOOR = 1e-30
"""Fused probabilities are floored here before the log that makes them logits (they stay finite)."""


class OodFlags:
    """Per input row of the last `predict`, whether some branch flagged it out of range (`Prediction.ood`)."""

    def __init__(self) -> None:
        self.last_ood = np.zeros(0, dtype=bool)


def branch_posteriors(engine: Any, kind: InputKind, clips: Sequence[Inputs]) -> tuple[np.ndarray, np.ndarray]:
    """Posteriors [clips, branch classes] of one branch over its own labels, and per clip whether the engine
    flagged any of its rows out of range: the clips' inputs are run as one batch, then split by rows and
    combined by the branch's kind."""
    if not clips:
        return np.zeros((0, 0)), np.zeros(0, dtype=bool)
    rows = [len(next(iter(c.values()))) for c in clips]
    x = {n: np.concatenate([c[n] for c in clips]) for n in kind.input_names}
    logits = engine.predict(x)
    flags = getattr(getattr(engine, "adapt", None), "last_ood", None)
    flags = np.asarray(flags, bool) if flags is not None and len(flags) == len(logits) else None
    out, ood, start = [], [], 0
    for n in rows:
        out.append(kind.combine(logits[start : start + n]))
        ood.append(bool(flags is not None and flags[start : start + n].any()))
        start += n
    return np.stack(out), np.asarray(ood, dtype=bool)


class FusionEngine:
    """The branches' engines and the fusion rule of a fusion bundle (see the module doc)."""

    def __init__(self, bundle: FusionBundle, engines: Mapping[str, Any]) -> None:
        from edge_ser.speaker import SpeakerAdapter

        self.bundle = bundle
        self.engines = dict(engines)
        self.rule = bundle.rule
        self.kinds = {name: b.input_kind for name, b in bundle.branches.items()}
        self.speakers = {name: SpeakerAdapter(b.manifest) for name, b in bundle.branches.items()}
        self.projections = {
            name: self.rule.branch(name).projection(b.labels, self.rule.labels)
            for name, b in bundle.branches.items()
        }
        first = next(iter(self.engines.values()))
        self.name = str(first.name)
        self.threads = getattr(first, "threads", 1)
        self.adapt = OodFlags()

    def branch_outputs(
        self, clips: Sequence[Mapping[str, Inputs | None]]
    ) -> dict[str, list[np.ndarray | None]]:
        """Per branch, per clip: its posterior over the fused labels (None where the clip has no input for it)."""
        out: dict[str, list[np.ndarray | None]] = {}
        ood = np.zeros(len(clips), dtype=bool)
        for name, engine in self.engines.items():
            have = [i for i, c in enumerate(clips) if c.get(name) is not None]
            col: list[np.ndarray | None] = [None] * len(clips)
            if have:
                inputs = [self.speakers[name](clips[i][name]) for i in have]
                p, flags = branch_posteriors(engine, self.kinds[name], inputs)
                fused = p @ self.projections[name]
                fused /= np.maximum(fused.sum(1, keepdims=True), 1e-300)  # dropped branch labels renormalised
                for j, i in enumerate(have):
                    col[i] = fused[j]
                ood[have] |= flags
            out[name] = col
        self.adapt.last_ood = ood
        return out

    def set_adapt(self, enabled: bool) -> None:
        """Whether the branches' speaker statistics learn from the clips they see (False: training priors)."""
        for adapter in self.speakers.values():
            adapter.enabled = bool(enabled)

    def reset_speakers(self) -> None:
        """A new speaker or session: every branch's speaker statistics go back to its training prior."""
        for adapter in self.speakers.values():
            adapter.reset()

    def enroll(self, x: np.ndarray | Mapping[str, np.ndarray]) -> None:
        """Add known clips of the user (fusion input rows) to the statistics of each branch that has input."""
        for c in self._clips(x):
            for name, adapter in self.speakers.items():
                if c.get(name) is not None:
                    adapter.enroll(c[name])

    def reaches_statistics(self, x: np.ndarray | Mapping[str, np.ndarray]) -> bool:
        """Whether some clip of `x` has input for a branch that keeps speaker statistics (`enroll` would add it)."""
        adapting = [name for name, a in self.speakers.items() if a.active]
        return any(c.get(name) is not None for c in self._clips(x) for name in adapting)

    @staticmethod
    def _clips(x: np.ndarray | Mapping[str, np.ndarray]) -> list[Mapping[str, Inputs | None]]:
        rows = x[CLIP_INPUT] if isinstance(x, Mapping) else x
        clips = list(np.asarray(rows, dtype=object).reshape(-1))
        for i, c in enumerate(clips):
            if not isinstance(c, Mapping):
                raise ConfigError(
                    f"fusion input row {i}: expected {{branch name: inputs or None}}, got {type(c).__name__}"
                )
        return clips

    def predict(self, x: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """Log fused probabilities [clips, classes] float32 (the fusion kind's softmax returns the probabilities)."""
        clips = self._clips(x)
        per_branch = self.branch_outputs(clips)
        fused = (
            np.stack([self.rule.fuse({n: per_branch[n][i] for n in per_branch}) for i in range(len(clips))])
            if clips
            else np.zeros((0, len(self.rule.labels)))
        )
        return np.log(np.maximum(fused, LOG_FLOOR)).astype(np.float32)

    def describe(self) -> str:
        parts = [f"{name}: {e.describe()}" for name, e in self.engines.items()]
        return f"fusion ({self.name}) of " + "; ".join(parts)


__all__ = ["CLIP_INPUT", "FusionEngine", "branch_posteriors"]
