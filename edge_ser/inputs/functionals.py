"""Prosodic and voice-quality functionals: one eGeMAPS-layout vector per clip (or live window).

The model input is `functionals` [batch, 88] (`edge_ser.features.egemaps`: F0, loudness, jitter, shimmer, HNR,
spectral balance, formants, MFCC 1-4, voiced/unvoiced segment statistics), or [batch, 327] when the spec is
`extended` (the 88, then 7 distribution and dynamics statistics of 25 of those descriptors and MFCC 5-12). The manifest block
`functionals_input` is the FunctionalsSpec; `feature_spec` records its STFT / mel part. Live, each window's
functionals are computed afresh (they describe the window as a whole: percentiles, segment lengths), except
pYIN's FFTs of the frames a window shares with the one before it, which are reused (`WindowLags`); long files
are cut into windows by the base class, as for the clip vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.features.egemaps import FunctionalsSpec, functionals
from edge_ser.features.pitch import WindowLags
from edge_ser.features.spec import FeatureSpec
from edge_ser.inputs.base import InputKind, Inputs, LiveFrontEnd, shape_of, softmax_row

if TYPE_CHECKING:
    from edge_ser.schema import Checker

INPUT = "functionals"
BLOCK = "functionals_input"


class FunctionalsKind(InputKind):
    """Input "functionals" [batch, 88 or 327]: a clip's eGeMAPS-layout functionals (manifest block
    `functionals_input`: the FunctionalsSpec fields); softmax over the one row."""

    name = "functionals"
    blocks = (BLOCK,)
    input_names = (INPUT,)

    def __init__(self, spec: FunctionalsSpec = FunctionalsSpec()) -> None:
        self.spec = spec

    @classmethod
    def check_manifest(cls, c: Checker, manifest: Mapping[str, Any], inputs: list[dict[str, Any]]) -> None:
        block = c.get(manifest, BLOCK, "", dict)
        if block is None:
            return
        spec = c.build(BLOCK, FunctionalsSpec.from_dict, dict(block))
        if spec is None:
            return
        # feature_spec records the STFT / mel part of this block: an edit of one alone (sample_rate 22050 here,
        # 16000 there) loaded and quietly moved every prediction
        recorded, derived = manifest.get("feature_spec"), spec.feature_spec().to_dict()
        if isinstance(recorded, Mapping):
            try:  # as the spec reads it: a default written out or left out is the same spec
                recorded = FeatureSpec.from_dict(dict(recorded)).to_dict()
            except Exception:  # noqa: BLE001 - a malformed block is the feature_spec check's to report
                recorded = None
        if isinstance(recorded, Mapping) and dict(recorded) != derived:
            diff = sorted(k for k in set(recorded) | set(derived) if recorded.get(k) != derived.get(k))
            shown = ", ".join(f"{k} {recorded.get(k)!r} against {derived.get(k)!r}" for k in diff[:3])
            c.problem("feature_spec", f"does not match {BLOCK} ({shown}): one of them was edited")
        got = shape_of(inputs, INPUT)
        if got is None:
            c.problem(BLOCK, f"the model has no {INPUT!r} input (inputs: {[x['name'] for x in inputs]})")
        elif got[1:] != [spec.dim]:
            i = [x["name"] for x in inputs].index(INPUT)
            c.problem(
                f"model.inputs[{i}].shape", f"{INPUT!r} is {got}, but {BLOCK} gives [batch, {spec.dim}]"
            )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> FunctionalsKind:
        return cls(FunctionalsSpec.from_dict(dict(manifest[BLOCK])))

    def manifest_blocks(self) -> dict[str, Any]:
        return {BLOCK: self.spec.to_dict()}

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.spec.feature_spec()

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {INPUT: (self.spec.dim,)}

    def window_inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        return self.inputs_of(window)

    def inputs_of(self, y: np.ndarray, lags: WindowLags | None = None) -> Inputs:
        """The model inputs of one clip or window [n] at `sample_rate` (`lags`: a live stream's, see `functionals`)."""
        row = functionals(np.asarray(y, dtype=np.float32), sr=self.sample_rate, spec=self.spec, lags=lags)
        return {INPUT: row[None]}

    def live(self, window_seconds: float) -> LiveFrontEnd:
        return _SlidingFunctionals(self)

    def combine(self, logits: np.ndarray) -> np.ndarray:
        return softmax_row(logits)

    def describe(self) -> list[str]:
        layout = "eGeMAPS-layout + extended statistics" if self.spec.extended else "eGeMAPS-layout"
        return [
            f"functionals: {self.spec.dim} {layout} prosodic / voice-quality values per clip, {self.spec}"
        ]


class _SlidingFunctionals(LiveFrontEnd):
    """Each live window's functionals, with pYIN's FFTs of the frames it shares with the last window reused:
    the values `window_inputs` gives up to rounding (docs/features.md), for ~a quarter less work per update."""

    kind: FunctionalsKind

    def __init__(self, kind: FunctionalsKind) -> None:
        super().__init__(kind)
        self.lags = kind.spec.window_lags()

    def feed(self, chunk: np.ndarray) -> None:
        self.lags.moved(chunk.shape[0])

    def inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        return self.kind.inputs_of(window, self.lags)

    def utterance_inputs(self, y: np.ndarray) -> Inputs:
        return self.kind.inputs_of(y, self.lags.for_clip())

    def frames_reused(self) -> tuple[int, int] | None:
        return self.lags.reused, self.lags.computed


KIND = FunctionalsKind

__all__ = ["BLOCK", "INPUT", "KIND", "FunctionalsKind"]
