"""Same clip, different capture: the conditioned clip-vector bundle gives the same top-1 whatever the microphone
did to the clip (rate, gain, DC offset, a dead stereo channel, full-band noise at -60 dBFS). The shipped log-Mel
and AV bundles predate the conditioning and are measured, not asserted, in benchmarks/capture_invariance.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_ser.audio.polyphase import resample
from edge_ser.audio.wav import write_wav
from edge_ser.recognizer import Recognizer

ROOT = Path(__file__).resolve().parents[1]
EMODB = ROOT.parent / "shared" / "datasets" / "emodb" / "wav"


def _captures(y16: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(0)
    out = {f"{r} Hz": (resample(y16, 16000, r), r) for r in (16000, 22050, 44100, 48000)}
    y48 = resample(y16, 16000, 48000)
    out["48 kHz + noise -60 dBFS"] = (y48 + rng.normal(0, 1e-3, y48.shape).astype(np.float32), 48000)
    out["-20 dB"] = (y16 * 0.1, 16000)
    out["+20 dB"] = (y16 * 10, 16000)
    out["DC 0.1"] = (y16 + 0.1, 16000)
    out["stereo, dead channel"] = (np.stack([y16, np.zeros_like(y16)], axis=1), 16000)
    return out


def _clips() -> list[np.ndarray]:
    from edge_ser.audio import load

    return [
        load(f, sr=16000, mono=True)[0] for f in sorted(EMODB.glob("*.wav"))[::67]
    ]  # 8 clips, all speakers


@pytest.mark.skipif(
    not EMODB.is_dir(), reason="EMODB not found at ../shared/datasets/emodb (needs real speech clips)"
)
@pytest.mark.filterwarnings(
    "ignore::edge_ser.errors.InputWarning"
)  # +20 dB float clips peak above 1 on purpose
@pytest.mark.parametrize("engine", ["onnxruntime", "numpy"])
def test_same_top1_under_every_capture(tmp_path: Path, engine: str) -> None:
    rec = Recognizer(ROOT / "bundles" / "laq_mlp_emodb", engine)
    for i, y in enumerate(_clips()):
        ref = rec.predict_audio(y.astype(np.float32), 16000).label
        paths = []
        for name, (z, sr) in _captures(y.astype(np.float32)).items():
            p = tmp_path / f"{i}_{name.replace(' ', '_')}.wav"
            write_wav(p, z.astype(np.float32), sr, subtype="FLOAT")
            paths.append((name, p))
        got = {
            name: r.label
            for (name, _), r in zip(paths, rec.predict_files([p for _, p in paths]), strict=True)
        }
        assert all(v == ref for v in got.values()), f"clip {i}: {ref} clean, {got}"
