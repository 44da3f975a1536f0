"""Audio-visual training arrays from the built-in synthetic sets, through the device's own pre-processing.

Clip k of class c pairs the k-th synthetic speech clip of c (converters.data.synthetic) with the k-th drawn
face clip of c (converters.data.synthetic_av); both carry class information, so fusion can be tested for
real. Every clip goes through `edge_ser.av_input.clip_inputs` with the shared Haar face crop, exactly as
the live runtime will.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converters.data.synthetic import SyntheticSpec, generate
from converters.data.synthetic_av import SyntheticAVSpec, generate_faces
from edge_ser.av_input import AVInputSpec, clip_inputs


@dataclass
class AVArrays:
    """Model inputs for N clips: faces [N, 6, 64, 64] in [0, 1], audio [N, 6, n_mfcc], labels and speakers."""

    faces: np.ndarray
    audio: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    speakers: list[str]
    faces_found: float
    """Fraction of sampled frames in which the Haar cascade found a face (the rest used the fallback)."""


def synthetic_av_arrays(n_per_class: int = 20, seed: int = 0, spec: AVInputSpec | None = None) -> AVArrays:
    """The synthetic audio-visual set as arrays, deterministic for a seed."""
    from edge_ser.vision.face import FaceCropper, FaceCropSpec

    spec = spec or AVInputSpec()
    sr = spec.feature_spec.sample_rate
    speech = generate(SyntheticSpec(n_per_class=n_per_class, sr=sr, seed=seed))
    faces = generate_faces(SyntheticAVSpec(n_per_class=n_per_class, frames=spec.frames, seed=seed))
    classes = tuple(dict.fromkeys(label for _, label, _ in speech))
    by_class: dict[str, list] = {c: [f for f, label in faces if label == c] for c in classes}
    cropper = FaceCropper(FaceCropSpec(size=spec.face_size))
    found = total = 0

    def crop(frame):
        nonlocal found, total
        out = cropper.crop_or_center(frame)
        found += out.found
        total += 1
        return out

    F, A, y, speakers, seen = [], [], [], [], {c: 0 for c in classes}
    for wave, label, speaker in speech:
        frames = by_class[label][seen[label]]
        seen[label] += 1
        f, a = clip_inputs(list(frames), wave, sr, spec, crop)
        F.append(f)
        A.append(a)
        y.append(classes.index(label))
        speakers.append(speaker)
    return AVArrays(np.stack(F), np.stack(A), np.array(y), classes, speakers, found / max(total, 1))
