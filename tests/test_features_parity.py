"""Parity of edge_ser.features with librosa 0.11 (a test dependency only).

Tolerances, and why (measured worst cases over this grid in brackets):
- float64 input: librosa builds its mel and chroma filter banks in float32 even for float64 audio, so the
  two agree to float32 rounding of the weights: mel power 1e-6 of the peak [7e-8], dB 1e-5 [5e-7],
  MFCC 1e-5 absolute [5.5e-7], chroma 1e-6 [6.5e-8].
- float32 input (the device default): both sides round to float32 at different points (librosa's DCT is a
  float32 FFT, ours a float64 matrix product), and librosa's own float32 MFCCs differ from its float64 ones
  by up to 1.2e-4 (c0 of silence is -1131). So MFCC 5e-4 absolute [6e-5], dB 1e-4 [7.6e-6], mel power 1e-5
  of the peak [3e-7], chroma 1e-5 [1.7e-6]. Both are well inside the 1e-3 MFCC target.
- The STFT is computed in float64 by both libraries (librosa's window is float64), so it agrees to 1e-12.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _signals import CLIPS, RATES, clip

import edge_ser.features as F
from edge_ser.errors import ConfigError

librosa = pytest.importorskip(
    "librosa", reason="librosa is the parity reference (pip install 'edge-ser[test]')"
)

TOL = {
    np.float64: dict(stft=1e-12, mel=1e-6, db=1e-5, mfcc=1e-5, chroma=1e-6),
    np.float32: dict(stft=1e-6, mel=1e-5, db=1e-4, mfcc=5e-4, chroma=1e-5),
}

PARAMS = {
    "defaults": dict(),
    "small-fft": dict(n_fft=512, hop_length=128, n_mels=40),
    "htk-band": dict(n_fft=1024, hop_length=256, n_mels=64, fmin=50.0, fmax=3500.0, htk=True),
    "uncentered": dict(n_fft=512, hop_length=160, n_mels=40, center=False),
    "reflect": dict(n_fft=1024, hop_length=256, n_mels=64, pad_mode="reflect"),
    "no-norm": dict(n_fft=400, hop_length=160, n_mels=40, norm=None),
    "edge-pad-l2norm": dict(n_fft=256, hop_length=64, n_mels=32, pad_mode="edge", norm=2.0),
}


def _close(ours: np.ndarray, ref: np.ndarray, tol: float, *, scale: float = 1.0, what: str = "") -> None:
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != librosa {ref.shape}"
    err = float(np.abs(ours - ref).max()) / scale if ref.size else 0.0
    assert err <= tol, f"{what}: max error {err:.3g} > tolerance {tol:.3g}"


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_fft too large" on short clips, empty-filter warnings
        yield


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", CLIPS)
@pytest.mark.parametrize("sr", RATES)
def test_parity_grid(sr: int, kind: str, dtype: type) -> None:
    y = clip(kind, sr).astype(dtype)
    tol = TOL[dtype]
    for name, p in PARAMS.items():
        p = dict(p)
        if p.get("fmax", 0) > sr / 2:
            p["fmax"] = 0.45 * sr
        if not p.get("center", True) and len(y) < p.get("n_fft", 2048):
            with pytest.raises(ConfigError):
                F.melspectrogram(y=y, sr=sr, **p)
            continue
        what = f"{name} sr={sr} {kind} {dtype.__name__}"
        ref = librosa.feature.melspectrogram(y=y, sr=sr, **p)
        ours = F.melspectrogram(y=y, sr=sr, **p)
        _close(ours, ref, tol["mel"], scale=max(float(ref.max()), 1e-30), what="mel " + what)
        for top_db in (80.0, 40.0, None):
            _close(
                F.power_to_db(ours, top_db=top_db),
                librosa.power_to_db(ref, top_db=top_db),
                tol["db"],
                what=f"dB(top_db={top_db}) " + what,
            )
        mf = {k: v for k, v in p.items() if k != "norm"}
        if "norm" in p:
            mf["mel_norm"] = p["norm"]
        n_mfcc = min(40, p.get("n_mels", 128))
        _close(
            F.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, **mf),
            librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, **mf),
            tol["mfcc"],
            what="mfcc " + what,
        )
        sp = {k: v for k, v in p.items() if k in ("n_fft", "hop_length", "center", "pad_mode")}
        _close(
            F.chroma_stft(y=y, sr=sr, **sp),
            librosa.feature.chroma_stft(y=y, sr=sr, tuning=0, **sp),
            tol["chroma"],
            what="chroma " + what,
        )
        ref_stft = librosa.stft(y, **sp)
        _close(
            F.stft(y, **sp),
            ref_stft,
            tol["stft"],
            scale=max(float(np.abs(ref_stft).max()), 1e-30),
            what="stft " + what,
        )


def test_stft_dtype_and_default_hop() -> None:
    y = clip("voiced", 16000).astype(np.float32)
    ours, ref = F.stft(y, n_fft=512), librosa.stft(y, n_fft=512)
    assert ours.dtype == ref.dtype == np.complex64
    assert ours.shape == ref.shape  # hop defaults to win_length // 4 in both


@pytest.mark.parametrize("htk", [False, True])
def test_mel_scale_and_filters(htk: bool) -> None:
    f = np.array([0.0, 50.0, 999.0, 1000.0, 1001.0, 4000.0, 11025.0])
    np.testing.assert_allclose(F.hz_to_mel(f, htk=htk), librosa.hz_to_mel(f, htk=htk), rtol=1e-12)
    m = np.linspace(0, 40, 9)
    np.testing.assert_allclose(F.mel_to_hz(m, htk=htk), librosa.mel_to_hz(m, htk=htk), rtol=1e-12)
    for sr, n_fft, n_mels in [(16000, 512, 40), (22050, 2048, 128), (48000, 1024, 80)]:
        np.testing.assert_allclose(
            F.mel_filter(sr=sr, n_fft=n_fft, n_mels=n_mels, htk=htk, dtype=np.float64),
            librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, htk=htk, dtype=np.float64),
            rtol=1e-10,
            atol=1e-14,
        )
        np.testing.assert_allclose(
            F.chroma_filter(sr=sr, n_fft=n_fft, dtype=np.float64),
            librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0.0, dtype=np.float64),
            rtol=1e-10,
            atol=1e-14,
        )


def test_chroma_tuning_and_lifter() -> None:
    sr = 22050
    y = clip("voiced", sr)
    for tuning in (-0.3, 0.25):
        np.testing.assert_allclose(
            F.chroma_stft(y=y, sr=sr, tuning=tuning),
            librosa.feature.chroma_stft(y=y, sr=sr, tuning=tuning),
            atol=1e-6,
        )
    np.testing.assert_allclose(
        F.mfcc(y=y, sr=sr, n_mfcc=20, lifter=22),
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, lifter=22),
        atol=1e-4,
    )
    with pytest.raises(ConfigError, match="tuning"):
        F.chroma_stft(y=y, sr=sr, tuning=None)


def test_spectrogram_input_S() -> None:
    """Passing S (as librosa users do for chroma with |STFT|) gives librosa's values too."""
    sr = 22050
    y = clip("voiced", sr)
    S = np.abs(librosa.stft(y))
    np.testing.assert_allclose(
        F.chroma_stft(S=S, sr=sr), librosa.feature.chroma_stft(S=S, sr=sr, tuning=0), atol=1e-6
    )
    P = S**2
    ref = librosa.feature.melspectrogram(S=P, sr=sr)
    np.testing.assert_allclose(F.melspectrogram(S=P, sr=sr), ref, atol=1e-6 * ref.max())
    D = librosa.power_to_db(ref)
    np.testing.assert_allclose(F.mfcc(S=D, n_mfcc=13), librosa.feature.mfcc(S=D, n_mfcc=13), atol=1e-5)


@pytest.mark.parametrize("sr", RATES)
def test_lap_vector_matches_librosa_recipe(sr: int) -> None:
    """The 180-d vector equals the LAQ paper's librosa code: mean MFCC40, mean mel, mean chroma of |STFT|."""
    y = clip("voiced", sr).astype(np.float32)
    spec = F.FeatureSpec(sample_rate=sr)
    stft_mag = np.abs(librosa.stft(y))
    ref = np.concatenate(
        [
            librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40).mean(axis=1),
            librosa.feature.melspectrogram(y=y, sr=sr).mean(axis=1),
            librosa.feature.chroma_stft(S=stft_mag, sr=sr, tuning=0).mean(axis=1),
        ]
    )
    ours = F.feature_vector(y, sr=sr, spec=spec)
    assert ours.shape == (180,) and ours.dtype == np.float32
    lay = spec.layout
    np.testing.assert_allclose(ours[lay["mfcc"]], ref[:40], atol=5e-4)
    np.testing.assert_allclose(ours[lay["mel"]], ref[40:168], rtol=1e-4, atol=1e-6 * ref[40:168].max())
    np.testing.assert_allclose(ours[lay["chroma"]], ref[168:], atol=1e-5)
