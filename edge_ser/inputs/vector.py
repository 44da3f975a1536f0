"""The clip vector: one feature vector per clip (the LAQ paper's 180-d mean MFCC40 + Mel128 + Chroma12).

The default kind: a manifest with no kind block holds a vector model, whose input is [batch, feature_spec.dim]
and whose features are `edge_ser.features` with the manifest's FeatureSpec. Live, the frames are streamed
(`StreamingFeatures`), so each window costs only the frames of its newest hop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.features.spec import FeatureSpec
from edge_ser.inputs.base import InputKind, Inputs, LiveFrontEnd, softmax_row

if TYPE_CHECKING:
    from edge_ser.schema import Checker


class VectorKind(InputKind):
    """One input [batch, dim]: the clip vector of `spec`."""

    name = "vector"
    blocks = ()

    def __init__(
        self, spec: FeatureSpec, input_name: str = "features", input_shape: Sequence[Any] = ()
    ) -> None:
        self.spec = spec
        self.input_names = (input_name,)
        self._shape = [d if isinstance(d, int) else None for d in input_shape] or [None, spec.dim]

    @classmethod
    def check_manifest(cls, c: Checker, manifest: Mapping[str, Any], inputs: list[dict[str, Any]]) -> None:
        dim = FeatureSpec.from_dict(manifest["feature_spec"]).dim
        for i, io_ in enumerate(inputs):
            shp = io_["shape"]
            if len(shp) == 2 and shp[-1] != dim:
                c.problem(
                    f"model.inputs[{i}].shape",
                    f"a feature-vector input of {shp[-1]!r} values, but feature_spec gives {dim}-d vectors",
                )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> VectorKind:
        first = manifest["model"]["inputs"][0]
        return cls(FeatureSpec.from_dict(manifest["feature_spec"]), first["name"], first["shape"])

    def manifest_blocks(self) -> dict[str, Any]:
        return {}

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.spec

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {self.input_names[0]: (self.spec.dim,)}

    def _check_model(self) -> None:
        if self._shape != [None, self.spec.dim]:
            raise ConfigError(
                f"input {self.input_names[0]!r} is {self._shape}: a clip-vector model takes [batch, "
                f"{self.spec.dim}] (this bundle has no input-kind block, e.g. lms_input or av_input)"
            )

    def window_inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        from edge_ser.features.vector import feature_vector

        self._check_model()
        y = np.asarray(window, dtype=np.float32)
        return {self.input_names[0]: feature_vector(y, sr=self.sample_rate, spec=self.spec)[None]}

    def live(self, window_seconds: float) -> LiveFrontEnd:
        self._check_model()
        return _StreamingVector(self, window_seconds)

    def combine(self, logits: np.ndarray) -> np.ndarray:
        return softmax_row(logits)

    def describe(self) -> list[str]:
        fs = self.spec
        return [
            f"features: {fs.dim}-d clip vector (MFCC {fs.n_mfcc} + mel {fs.n_mels} + chroma {fs.n_chroma}) at "
            f"{fs.sample_rate} Hz (mel {fs.fmin:g}-{fs.fmax_hz:g} Hz), n_fft {fs.n_fft}, hop {fs.hop_length}"
            + (", DC removed" if fs.remove_dc else "")
            + (f", level set to {fs.level_dbfs:g} dBFS" if fs.level_dbfs is not None else "")
        ]


class _StreamingVector(LiveFrontEnd):
    """Streams the feature frames of the live audio; a window's vector is the mean over its newest frames."""

    def __init__(self, kind: VectorKind, window_seconds: float) -> None:
        from edge_ser.features.streaming import StreamingFeatures

        super().__init__(kind)
        self.spec = kind.spec
        self._stream = StreamingFeatures(self.spec, "frames")
        self._frames: deque[np.ndarray] = deque()
        self._max_frames = int(round(window_seconds * kind.sample_rate / self.spec.hop_length)) + 1
        self._whole_windows = self.spec.remove_dc or self.spec.level_dbfs is not None
        """A conditioned spec needs each window's own mean and level first: windows are framed whole."""

    def feed(self, chunk: np.ndarray) -> None:
        if chunk.size == 0 or self._whole_windows:
            return
        for row in self._stream.accept_waveform(np.asarray(chunk, dtype=np.float32)):
            self._frames.append(row)
        while len(self._frames) > self._max_frames:
            self._frames.popleft()

    def inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        from edge_ser.features.vector import vector_from_frames

        if not self._frames:  # nothing streamed (a caller that only passes windows): frame the window itself
            return self.kind.window_inputs(window, faces)
        frames = np.stack(self._frames)
        mel, chroma = frames[:, : self.spec.n_mels], frames[:, self.spec.n_mels :]
        return {self.kind.input_names[0]: vector_from_frames(mel, chroma, self.spec)[None].astype(np.float32)}


KIND = VectorKind

__all__ = ["KIND", "VectorKind"]
