"""The fusion input kind: a bundle that composes branch bundles (an audio one, a face one, ...) by late fusion.

A fusion bundle (`edge_ser.bundle.fusion`, docs/fusion.md) has no graph of its own: its model input is one row
per clip, `clip`, holding each branch's own inputs (made by that branch's kind) or None where the branch has
nothing to see. The branch that takes faces gets only the crops in which a face was found: with no face in
view it is None, and the fusion rule (`edge_ser.fusion`) leaves its term out, which is how the live runtime
"degrades to audio alone" without a separate path. Its engine (`edge_ser.engines.fusion`) returns log fused
probabilities, so `combine` is a softmax.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.audio.level import loudest_db
from edge_ser.audio.stream import FILE_WINDOW_SECONDS, LONG_FILE_SECONDS
from edge_ser.errors import ConfigError, InputWarning, VideoFormatError
from edge_ser.fileio import check_regular_file
from edge_ser.fusion import FusionRule
from edge_ser.inputs.base import (
    AUDIO_EXTENSIONS,
    FileWindow,
    InputKind,
    Inputs,
    LiveFrontEnd,
    clip_voiced,
    face_found,
    faces_in_view,
    has_voice,
    softmax_row,
)
from edge_ser.vision.video import VIDEO_EXTENSIONS, NoVideoStreamError

if TYPE_CHECKING:
    from edge_ser.features.spec import FeatureSpec
    from edge_ser.schema import Checker
    from edge_ser.vision.face import FaceCropSpec

BLOCK = "fusion"
CLIP_INPUT = "clip"


def clip_row(parts: Mapping[str, Inputs | None]) -> Inputs:
    """One clip's fusion input: {"clip": object array [1]} holding {branch name: its inputs or None}."""
    row = np.empty(1, dtype=object)
    row[0] = dict(parts)
    return {CLIP_INPUT: row}


def _reads_video_itself(kind: InputKind, path: Any) -> bool:
    """An audio-visual branch (av_cnn's kind) that reads a video file whole, sound and frames, by its own rules
    (a face kind reads videos too, but gives its crops to the fusion: `file_crops`)."""
    return Path(path).suffix.lower() in kind.file_extensions and not hasattr(kind, "file_crops")


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

    def cropper(self) -> Any:
        """The face branch's crop (`FaceCropper.crop_or_center` with the one `face_crop` the face branches share):
        what the crops given to `predict_audio(y, sr, faces)` are made with, as for a face or AV bundle. Its
        error on a wrong crop names `recognizer.kind.cropper()`, which a fusion kind did not have. ConfigError
        when no branch takes faces."""
        face = next((k for k in self.branches.values() if k.faces), None)
        if face is None:
            raise ConfigError("fusion: no branch of this bundle takes faces, so it has no face crop")
        return face.cropper()

    @property
    def mode(self) -> str:
        return "fused"

    @property
    def file_extensions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e for k in self.branches.values() for e in k.file_extensions))

    def enough_faces(self, faces: Sequence[Any] | None, min_share: float) -> bool:
        """Always: a window without a face is normal here (the face branch's term is left out)."""
        return True

    def audio_inputs(self, y: np.ndarray, sr: int, faces: Sequence[Any] | None = None) -> Inputs:
        """`InputKind.audio_inputs`; with faces, audio with no voice in it (digital silence, room noise, hiss) is
        no audio, as a video's sound track is (`_video_clip`): the faces alone answer. `predict_audio` of a clear
        happy face over one second of digital silence read "fear 0.86" (the audio branch's answer to silence),
        where a video of the same gets the face's "happy"."""
        y = np.asarray(y, dtype=np.float32)
        if not faces or y.ndim != 1 or not y.size:
            return super().audio_inputs(y, sr, faces)  # its checks of the shape and length
        if int(sr) != self.sample_rate:
            from edge_ser.audio import resample

            y = resample(y, int(sr), self.sample_rate)
        if clip_voiced(y, self.sample_rate, loudest_db(y, self.sample_rate)):
            return super().audio_inputs(y, self.sample_rate, faces)
        parts, _ = self._row(None, faces)
        return clip_row({n: parts[n] for n in self.branches})

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
        """`file_inputs` as a whole-file window: an audio file or an image for the branches that read it; a video
        through `_video_clip`."""
        ext = Path(path).suffix.lower()
        if ext in VIDEO_EXTENSIONS:
            return self._video_clip(path)
        parts = {
            n: (k.file_inputs(path) if ext in k.file_extensions else None) for n, k in self.branches.items()
        }
        if all(
            v is None for v in parts.values()
        ):  # a file of the batch predict skips, as the face bundle does
            check_regular_file(
                path, error=VideoFormatError
            )  # a missing file is that first, whatever its extension
            raise VideoFormatError(
                f"{path}: no branch of this fusion bundle reads {ext or 'extension-less'} files"
            )
        found = None
        if ext not in AUDIO_EXTENSIONS:  # an image: the face branch's crop, found or the centre
            crops = self._file_crops(path)
            found = face_found(crops) if crops is not None else None
        return FileWindow(0.0, 0.0, clip_row(parts), True, face_found=found)

    def _video_clip(self, path: str | os.PathLike[str]) -> FileWindow:
        """A short video as one clip: its sound track for the audio branches (when there is one with sound in it)
        and its sampled frames' face crops for the face branch (`_row`)."""
        from edge_ser.vision.video import probe_video

        try:
            info = probe_video(path)
        except NoVideoStreamError as e:  # a sound track alone: the audio branches answer, no face found
            return self._sound_only_clip(path, e)
        track = self._video_track(path)
        level = None if track is None else loudest_db(track[0], self.sample_rate)
        # a track of digital silence, or of room noise with no voice in it, is no audio: faint noise outvoted a
        # clearly visible face (a happy face over -71 dBFS pink noise read "sad 0.99")
        heard = track is not None and level > -math.inf and has_voice(track[0], self.sample_rate)
        if heard:
            for k in self.branches.values():
                if k.hears and not k.faces:
                    k.check_clip(track[0].size, str(path))
        own = {n for n, k in self.branches.items() if _reads_video_itself(k, path)}
        parts, found = self._row(track[0] if heard else None, self._file_crops(path), skip=own)
        parts |= {
            n: self.branches[n].file_inputs(path) for n in own
        }  # an audio-visual kind reads the video itself
        rate = None if track is None else track[1]
        inputs = clip_row({n: parts[n] for n in self.branches})
        return FileWindow(0.0, info.duration, inputs, True, rate, level, face_found=found)

    def _sound_only(
        self, path: str | os.PathLike[str], error: NoVideoStreamError, **windows: float
    ) -> Iterator[FileWindow]:
        """A "video" file of a sound track alone (no video stream) as the audio branches hear an audio file, window
        by window, with no face found (as a video in which no face is in view); `error` when no branch hears."""
        if not any(k.hears and not k.faces for k in self.branches.values()):
            raise error
        for w in super().file_windows(path, **windows):
            yield replace(w, face_found=False)

    def _sound_only_clip(self, path: str | os.PathLike[str], error: NoVideoStreamError) -> FileWindow:
        """`_sound_only` as one clip of the whole track (`file_inputs`)."""
        from edge_ser.audio.stream import AudioWindow

        track = self._video_track(path)
        if track is None:
            raise error
        y, rate = track
        whole = AudioWindow(0.0, y.size / self.sample_rate, y, True, rate)
        return replace(next(self.windows_inputs([whole], str(path))), face_found=False)

    def _row(
        self, samples: np.ndarray | None, crops: Sequence[Any] | None, skip: set[str] = frozenset()
    ) -> tuple[dict[str, Inputs | None], bool | None]:
        """One clip's branch inputs from audio at the kind's rate (None: nothing heard) and face crops (None: no
        frame), and whether a face was found; the branches in `skip` are left to the caller. As in the live loop, a
        face branch gets only the crops that show a face and is left out without one; with nothing heard either,
        it gets the fallback centre crops, as the face bundle alone would, rather than no answer at all."""
        parts: dict[str, Inputs | None] = {
            n: (k.window_inputs(samples) if samples is not None and k.hears else None)
            for n, k in self.branches.items()
            if not k.faces and n not in skip
        }
        heard = any(v is not None for v in parts.values()) or bool(skip)
        crops = list(crops or [])
        seen = faces_in_view(crops) or ([] if heard else crops)
        empty = np.zeros(0, np.float32)
        for n, k in self.branches.items():
            if k.faces and n not in skip:
                window = samples if k.hears and samples is not None else empty
                parts[n] = k.window_inputs(window, seen) if seen else None
        if not skip and all(v is None for v in parts.values()):
            raise ConfigError("a fusion clip with no audio and no frame: nothing to classify")
        return parts, face_found(crops)

    def _file_crops(self, path: str | os.PathLike[str]) -> list[Any] | None:
        """The face crops a face branch takes from an image or a short video (its sampled frames); None when no face
        branch reads this file."""
        ext = Path(path).suffix.lower()
        for k in self.branches.values():
            if k.faces and hasattr(k, "file_crops") and ext in k.file_extensions:
                return k.file_crops(path)
        return None

    def _video_track(self, path: str | os.PathLike[str]) -> tuple[np.ndarray, int] | None:
        """A short video's sound track at the audio branches' rate and the rate it was recorded at; None when no
        audio branch needs it, the video has no sound track, or there is no ffmpeg to read one (said in a warning:
        the face alone answers, as before the track was read)."""
        if not any(k.hears and not k.faces for k in self.branches.values()):
            return None
        from edge_ser.audio import resample
        from edge_ser.audio.container import NoAudioStreamError, load_container_audio
        from edge_ser.errors import MissingDependencyError

        try:
            y, rate = load_container_audio(path)
        except NoAudioStreamError:
            return None
        except MissingDependencyError as e:
            warnings.warn(f"{path}: the sound track is not used: {e}", InputWarning, stacklevel=3)
            return None
        return (y if rate == self.sample_rate else resample(y, rate, self.sample_rate)), rate

    def file_windows(
        self,
        path: str | os.PathLike[str],
        *,
        window_seconds: float = FILE_WINDOW_SECONDS,
        long_seconds: float = LONG_FILE_SECONDS,
    ) -> Iterator[FileWindow]:
        """An audio file window by window (as every audio kind); a video up to `long_seconds` as one clip, a longer
        one as `window_seconds` windows, each its stretch of the sound track (streamed, as an audio file's: a
        20-minute video held its whole track in memory, 6.4 GB) with the faces of the frames shown then; an image
        as one clip of the branches that read images."""
        ext = Path(path).suffix.lower()
        if ext in AUDIO_EXTENSIONS:
            yield from super().file_windows(path, window_seconds=window_seconds, long_seconds=long_seconds)
            return
        if ext not in VIDEO_EXTENSIONS:
            yield self._file_clip(path)
            return
        from edge_ser.vision.video import probe_video

        try:
            info = probe_video(path)
        except NoVideoStreamError as e:  # a sound track alone: the audio branches answer, no face found
            yield from self._sound_only(path, e, window_seconds=window_seconds, long_seconds=long_seconds)
            return
        if info.duration <= long_seconds:
            yield self._video_clip(path)
            return
        yield from self._long_video(path, info, window_seconds, long_seconds)

    def _long_video(
        self, path: Any, info: Any, window_seconds: float, long_seconds: float
    ) -> Iterator[FileWindow]:
        """A long video's windows: the sound track streamed window by window, the face crops of each window's
        frames (decoded once, in order); a video without a sound track (or without ffmpeg) by its frames alone."""
        from edge_ser.audio.stream import file_windows
        from edge_ser.inputs.av import _FramePicker
        from edge_ser.vision.video import iter_frames

        face = next((k for k in self.branches.values() if k.faces and hasattr(k, "cropper")), None)
        frames = (
            None if face is None else _FramePicker(iter_frames(path), info.fps, face.faces, face.cropper())
        )
        stretches: Iterator[Any] = iter(())
        if self._video_track_reader(path):
            stretches = file_windows(
                path, self.sample_rate, window_seconds=window_seconds, long_seconds=long_seconds
            )
        else:  # faces only: the frames make the windows
            n = math.ceil(info.duration / window_seconds - 1e-9)
            edges = [i * window_seconds for i in range(n)] + [info.duration]
            # a last stretch under half a window joins the window before it, as a sound track's does (`cut_windows`):
            # a 40 s video without a track ended in a 1 s window of its own
            if n > 1 and info.duration - edges[-2] < window_seconds / 2:
                del edges[-2]
            stretches = iter([(a, b, None) for a, b in itertools.pairwise(edges)])
        last = 0.0
        for w in stretches:
            start, end, samples = (w.start, w.end, w.samples) if hasattr(w, "samples") else w
            level = None if samples is None else loudest_db(samples, self.sample_rate)
            heard = samples is not None and level > -math.inf and has_voice(samples, self.sample_rate)
            crops = None if frames is None else frames.crops(start, end)
            last = end
            try:
                parts, found = self._row(samples if heard else None, crops)
            except ConfigError:
                continue  # nothing heard and no frame in this stretch (past the video's last frame)
            inputs = clip_row({n: parts[n] for n in self.branches})
            yield FileWindow(
                start, end, inputs, False, getattr(w, "source_rate", None), level, face_found=found
            )
        # a sound track shorter than the picture: the rest of the video by its frames alone (48 s of a 52 s video
        # with a 4 s track were left out, every face with them)
        while frames is not None and not frames.ended and info.duration - last >= window_seconds / 2:
            start, end = last, min(last + window_seconds, info.duration)
            last = end
            crops = frames.crops(start, end)
            if not crops:
                break
            parts, found = self._row(None, crops)
            yield FileWindow(
                start, end, clip_row({n: parts[n] for n in self.branches}), False, face_found=found
            )

    def _video_track_reader(self, path: Any) -> bool:
        """Whether the long video's sound track can be streamed to an audio branch (one needs it, the video has one
        and ffmpeg is there; a warning says so when ffmpeg is missing)."""
        if not any(k.hears and not k.faces for k in self.branches.values()):
            return False
        from edge_ser.audio.stream import has_sound_track
        from edge_ser.errors import MissingDependencyError

        try:
            return has_sound_track(path)
        except MissingDependencyError as e:
            warnings.warn(f"{path}: the sound track is not used: {e}", InputWarning, stacklevel=3)
            return False

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
