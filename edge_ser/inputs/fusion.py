"""The fusion input kind: a bundle that composes branch bundles (an audio one, a face one, ...) by late fusion.

A fusion bundle (`edge_ser.bundle.fusion`, docs/fusion.md) has no graph of its own: its model input is one row
per clip, `clip`, holding each branch's own inputs (made by that branch's kind) or None where the branch has
nothing to see. The branch that takes faces gets only the crops in which a face was found: with no face in
view it is None, and the fusion rule (`edge_ser.fusion`) leaves its term out, which is how the live runtime
"degrades to audio alone" without a separate path. Its engine (`edge_ser.engines.fusion`) returns log fused
probabilities, so `combine` is a softmax.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.audio.level import loudest_db
from edge_ser.audio.stream import FILE_WINDOW_SECONDS, LONG_FILE_SECONDS
from edge_ser.errors import ConfigError
from edge_ser.fusion import FusionRule
from edge_ser.inputs.base import (
    AUDIO_EXTENSIONS,
    FileWindow,
    InputKind,
    Inputs,
    LiveFrontEnd,
    face_found,
    softmax_row,
)
from edge_ser.vision.video import VIDEO_EXTENSIONS

if TYPE_CHECKING:
    from edge_ser.features.spec import FeatureSpec
    from edge_ser.schema import Checker
    from edge_ser.vision.face import FaceCropSpec

BLOCK = "fusion"
CLIP_INPUT = "clip"


def faces_in_view(faces: Sequence[Any] | None) -> list[Any]:
    """The crops that show a face: FaceCrops with `found`, or images given as they are (a caller's own crops)."""
    return [f for f in (faces or []) if getattr(f, "found", True)]


def clip_row(parts: Mapping[str, Inputs | None]) -> Inputs:
    """One clip's fusion input: {"clip": object array [1]} holding {branch name: its inputs or None}."""
    row = np.empty(1, dtype=object)
    row[0] = dict(parts)
    return {CLIP_INPUT: row}


class FusionKind(InputKind):
    """Late fusion of branch bundles (block `fusion`): one `clip` row per clip (see the module doc)."""

    name = "fusion"
    blocks = (BLOCK,)
    input_names = (CLIP_INPUT,)

    def __init__(self, rule: FusionRule, branches: Mapping[str, InputKind]) -> None:
        self.rule = rule
        self.branches = dict(branches)
        if set(self.branches) != set(rule.names):
            raise ConfigError(
                f"fusion: branches {sorted(self.branches)} but the rule names {list(rule.names)}"
            )
        listening = [k for k in self.branches.values() if not k.faces] or list(self.branches.values())
        self.audio = listening[0]
        rates = {k.sample_rate for k in self.branches.values() if not k.faces}
        if len(rates) > 1:
            raise ConfigError(f"fusion: the audio branches analyse different rates {sorted(rates)} Hz")
        crops = {k.face_crop for k in self.branches.values() if k.faces}
        if len(crops) > 1:
            raise ConfigError(
                "fusion: the face branches want different face crops; one camera crop serves all"
            )

    # -- the manifest ----------------------------------------------------------------------------------------

    @classmethod
    def check_manifest(cls, c: Checker, manifest: Mapping[str, Any], inputs: list[dict[str, Any]]) -> None:
        """The `fusion` block: the rule over the manifest's labels (the branches are checked on loading)."""
        block = c.get(manifest, BLOCK, "", dict)
        labels = manifest.get("labels")
        if block is not None and isinstance(labels, list):
            c.build(BLOCK, FusionRule.from_dict, block, labels)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> FusionKind:
        raise ConfigError(
            "a fusion kind is made from its loaded branch bundles: load the bundle with edge_ser.bundle.load_bundle"
        )

    def manifest_blocks(self) -> dict[str, Any]:
        return {BLOCK: self.rule.to_dict()}

    # -- what the device needs -------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.audio.feature_spec

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {CLIP_INPUT: ()}

    @property
    def standardized_input(self) -> str | None:
        return None

    @property
    def min_samples(self) -> int:
        return self.audio.min_samples

    @property
    def faces(self) -> int:
        return max((k.faces for k in self.branches.values()), default=0)

    @property
    def hears(self) -> bool:
        return any(k.hears for k in self.branches.values())

    @property
    def face_crop(self) -> FaceCropSpec | None:
        return next((k.face_crop for k in self.branches.values() if k.faces), None)

    @property
    def mode(self) -> str:
        return "fused"

    @property
    def file_extensions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e for k in self.branches.values() for e in k.file_extensions))

    def enough_faces(self, faces: Sequence[Any] | None, min_share: float) -> bool:
        """Always: a window without a face is normal here (the face branch's term is left out)."""
        return True

    def window_inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        """Every audio branch gets the window; a face branch the crops that show a face, or nothing."""
        seen = faces_in_view(faces)
        parts: dict[str, Inputs | None] = {}
        for name, k in self.branches.items():
            parts[name] = (
                (k.window_inputs(window, seen) if seen else None) if k.faces else k.window_inputs(window)
            )
        return clip_row(parts)

    def file_inputs(self, path: str | os.PathLike[str]) -> Inputs:
        """Each branch that reads this kind of file (a face branch a video, an audio branch audio) as one clip;
        a video's audio track goes to the audio branches (a video without one leaves them out, as a clip
        without a face leaves the face branch out)."""
        return self._file_clip(path).inputs

    def _file_clip(self, path: str | os.PathLike[str]) -> FileWindow:
        """`file_inputs` as a whole-file window, with the level and rate of the audio the audio branches got and
        whether a face was found. As in the live loop, a face branch gets only the crops that show a face and is
        left out without one; with nothing heard either (an image, a silent video), it gets the fallback centre
        crops, as the face bundle alone would, rather than no answer at all."""
        ext = Path(path).suffix.lower()
        track = self._video_track(path) if ext in VIDEO_EXTENSIONS else None
        parts: dict[str, Inputs | None] = {}
        for n, k in self.branches.items():
            if k.faces:
                continue
            if ext in k.file_extensions:
                parts[n] = k.file_inputs(path)
            elif track is not None and k.hears:
                k.check_clip(track[0].size, str(path))
                parts[n] = k.window_inputs(track[0])
            else:
                parts[n] = None
        heard = any(v is not None for v in parts.values())
        found: bool | None = None
        for n, k in self.branches.items():
            if not k.faces:
                continue
            if ext not in k.file_extensions:
                parts[n] = None
            elif hasattr(k, "file_crops"):
                crops = k.file_crops(path)
                found = bool(found) or bool(face_found(crops)) if crops else found
                seen = faces_in_view(crops) or ([] if heard else crops)
                parts[n] = k.window_inputs(np.zeros(0, np.float32), seen) if seen else None
            else:
                parts[n] = k.file_inputs(path)
        if all(v is None for v in parts.values()):
            raise ConfigError(
                f"{path}: no branch of this fusion bundle reads {ext or 'extension-less'} files"
            )
        end = 0.0
        if ext in VIDEO_EXTENSIONS:
            from edge_ser.vision.video import probe_video

            end = probe_video(path).duration
        level = None if track is None else loudest_db(track[0], self.sample_rate)
        rate = None if track is None else track[1]
        parts = {n: parts[n] for n in self.branches}  # the rule's branch order
        return FileWindow(0.0, end, clip_row(parts), True, rate, level, face_found=found)

    def _video_track(self, path: str | os.PathLike[str]) -> tuple[np.ndarray, int] | None:
        """A video's audio track at the audio branches' rate and the rate it was recorded at; None when no audio
        branch needs it or the video has no audio stream."""
        ext = Path(path).suffix.lower()
        if not any(k.hears and ext not in k.file_extensions for k in self.branches.values()):
            return None
        from edge_ser.audio import resample
        from edge_ser.audio.container import NoAudioStreamError, load_container_audio

        try:
            y, rate = load_container_audio(path)
        except NoAudioStreamError:
            return None
        return (y if rate == self.sample_rate else resample(y, rate, self.sample_rate)), rate

    def file_windows(
        self,
        path: str | os.PathLike[str],
        *,
        window_seconds: float = FILE_WINDOW_SECONDS,
        long_seconds: float = LONG_FILE_SECONDS,
    ) -> Iterator[FileWindow]:
        """An audio file window by window (as every audio kind); a video as one clip (`file_inputs`, its audio
        track's level and rate with it); an image as one clip of the branches that read images (a face alone:
        the audio branch's term left out)."""
        if Path(path).suffix.lower() in AUDIO_EXTENSIONS:
            yield from super().file_windows(path, window_seconds=window_seconds, long_seconds=long_seconds)
            return
        yield self._file_clip(path)

    def live(self, window_seconds: float) -> LiveFrontEnd:
        return FusionFrontEnd(self, window_seconds)

    def combine(self, logits: np.ndarray) -> np.ndarray:
        return softmax_row(logits)

    def describe(self) -> list[str]:
        lines = []
        for b in self.rule.branches:
            k = self.branches[b.name]
            when = "when a face is in view" if k.faces else "every window"
            lines.append(
                f"branch {b.name} ({k.name}, {when}): temperature {b.temperature:.3g}, weight {b.weight:g}"
            )
            lines += [f"  {line}" for line in k.describe()]
        lines.append(
            "fused: weighted product of the calibrated posteriors with the class prior divided out; a missing "
            "branch's term is left out"
        )
        return lines


class FusionFrontEnd(LiveFrontEnd):
    """Each branch's own live front end; the face branch is asked only when a crop shows a face."""

    def __init__(self, kind: FusionKind, window_seconds: float) -> None:
        super().__init__(kind)
        self.fronts = {n: k.live(window_seconds) for n, k in kind.branches.items()}

    def feed(self, chunk: np.ndarray) -> None:
        for n, front in self.fronts.items():
            if not self.kind.branches[n].faces:
                front.feed(chunk)

    def frames_reused(self) -> tuple[int, int] | None:
        counts = [c for f in self.fronts.values() if (c := f.frames_reused()) is not None]
        return (sum(c[0] for c in counts), sum(c[1] for c in counts)) if counts else None

    def utterance_inputs(self, y: np.ndarray) -> Inputs:
        """Each audio branch's inputs of the clip; a face branch has none (as `FusionKind.window_inputs`)."""
        parts = {
            n: None if self.kind.branches[n].faces else f.utterance_inputs(y) for n, f in self.fronts.items()
        }
        return clip_row(parts)

    def inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        seen = faces_in_view(faces)
        parts: dict[str, Inputs | None] = {}
        for n, front in self.fronts.items():
            if self.kind.branches[n].faces:
                parts[n] = front.inputs(window, seen) if seen else None
            else:
                parts[n] = front.inputs(window, None)
        return clip_row(parts)


KIND = FusionKind

__all__ = ["BLOCK", "CLIP_INPUT", "KIND", "FusionFrontEnd", "FusionKind", "clip_row", "faces_in_view"]
