"""A bundle that verifies is safe to run: bounded manifest values, manifest-first reading, an integrity check of
the manifest itself, no compressed tars, and no NaN/inf ever shown as a probability (issue 16).

Every case starts from a shipped bundle and edits real bytes on disk, as a damaged card, a careless user or an
attacker would; the manifest's checksum is rewritten where the point is to reach the checks behind it.
"""

from __future__ import annotations

import bz2
import copy
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import socket
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_ser.bundle import load_bundle, manifest_sum_line
from edge_ser.engines import load_engine
from edge_ser.errors import BundleError, InferenceError
from edge_ser.limits import MAX_LABELS, MAX_WEIGHT_VALUES
from edge_ser.packed import Tensor, write_esq

ROOT = Path(__file__).resolve().parents[1]
LAQ = ROOT / "bundles" / "laq_mlp_emodb"
LMS = ROOT / "bundles" / "tiny_transformer_emodb"
AV = ROOT / "bundles" / "av_cnn"


def copy_of(tmp_path: Path, src: Path, name: str = "b") -> Path:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def write_manifest(bundle: Path, manifest: Any, *, seal: bool = True) -> None:
    data = json.dumps(manifest, indent=1).encode()
    (bundle / "manifest.json").write_bytes(data)
    if seal:
        (bundle / "manifest.sha256").write_bytes(manifest_sum_line(data))


def edited(tmp_path: Path, src: Path, edit: Callable[[dict], Any]) -> Path:
    """A copy of `src` whose manifest `edit` changed (checksum rewritten, so the field checks are reached)."""
    b = copy_of(tmp_path, src)
    m = json.loads((b / "manifest.json").read_text())
    edit(m)
    write_manifest(b, m)
    return b


def refused(path: Path, *fragments: str, **kw: Any) -> str:
    with pytest.raises(BundleError) as ei:
        load_bundle(path, **kw)
    msg = str(ei.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


# --------------------------------------------------------------------------------------------------------------
# manifest values are bounded at load, naming the field
# --------------------------------------------------------------------------------------------------------------

FEATURE_CASES = [
    ({"n_fft": 1 << 30}, "feature_spec: FeatureSpec: n_fft: must be between 16 and 16384"),
    ({"n_fft": 2048.0}, "n_fft: must be an integer"),
    ({"n_fft": True}, "n_fft: must be an integer"),
    ({"hop_length": 1, "n_fft": 16384}, "hop_length: 1 with n_fft 16384"),
    ({"hop_length": 10**9}, "hop_length: must be between 1 and 16384"),
    ({"sample_rate": 10**9}, "sample_rate: must be between 1000 and 192000"),
    ({"sample_rate": 0}, "sample_rate: must be between"),
    ({"window": "kaiser"}, "window: 'kaiser' must be one of"),
    ({"window": ["hann"]}, "window:"),
    ({"pad_mode": "wrap"}, "pad_mode:"),
    ({"n_mels": 100000}, "n_mels: must be between 1 and"),
    ({"n_mfcc": 1000}, "n_mfcc: must be between 0 and 128"),
    ({"n_chroma": 10**6}, "n_chroma: must be between 0 and 96"),
    ({"fmax": 1e300}, "fmax: must be between 0 and"),
    ({"fmin": -5.0}, "fmin: must be between 0 and"),
    ({"top_db": 1e308}, "top_db: must be between 0 and 300"),
    ({"lifter": 1e12}, "lifter: must be between 0 and 1000"),
    ({"tuning": 3.0}, "tuning: must be between -0.5 and 0.5"),
    ({"center": "yes"}, "center: must be true or false"),
    ({"win_length": 1 << 20}, "win_length: must be between 1 and 2048"),
]


@pytest.mark.parametrize(("change", "message"), FEATURE_CASES, ids=[str(c[0]) for c in FEATURE_CASES])
def test_feature_spec_is_bounded(tmp_path: Path, change: dict, message: str) -> None:
    b = edited(tmp_path, LAQ, lambda m: m["feature_spec"].update(change))
    msg = refused(b, message)
    assert "manifest.json: feature_spec" in msg


def test_infinite_number_in_the_manifest_is_refused(tmp_path: Path) -> None:
    """JSON has no inf, but 1e999 parses to one: it must not slip through a `>= 0` check."""
    b = copy_of(tmp_path, LAQ)
    text = (b / "manifest.json").read_text().replace('"top_db": 80.0', '"top_db": 1e999')
    assert "1e999" in text
    (b / "manifest.json").write_text(text)
    (b / "manifest.sha256").write_bytes(manifest_sum_line(text.encode()))
    refused(b, "top_db: must be a finite number")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"segment_frames": 10**7}, "lms_input: LMSSpec: segment_frames: must be between 1 and 4096"),
        ({"hop_length": 1, "n_fft": 4096, "win_length": 4096}, "LMSSpec: hop_length: 1 with n_fft 4096"),
        ({"n_mels": 4096}, "n_mels: must be between 1 and 512"),
        ({"win_length": 1 << 24}, "win_length: must be between 16 and 16384"),
        ({"segment_hop": 0}, "segment_hop: must be between 1 and 4096"),
    ],
)
def test_log_mel_block_is_bounded(tmp_path: Path, change: dict, message: str) -> None:
    refused(edited(tmp_path, LMS, lambda m: m["lms_input"].update(change)), message)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"face_size": 1 << 16}, "av_input: AVInputSpec: face_size: must be between 8 and 256"),
        ({"frames": 10**6}, "frames: must be between 1 and 64"),
        ({"segments": 0}, "segments: must be between 1 and 64"),
    ],
)
def test_av_block_is_bounded(tmp_path: Path, change: dict, message: str) -> None:
    refused(edited(tmp_path, AV, lambda m: m["av_input"].update(change)), message)


def test_tens_of_thousands_of_labels_are_refused_by_count(tmp_path: Path) -> None:
    """50,000 labels (and a model that would output them) are refused on their count, before any per-label
    check, so no check over them can be slow."""

    def edit(m: dict) -> None:
        m["labels"] = [f"l{i}" for i in range(50_000)]
        m["model"]["outputs"][0]["shape"] = [None, 50_000]

    refused(edited(tmp_path, LAQ, edit), f"labels: must list 1 to {MAX_LABELS} labels, got 50000")


def test_labels_long_or_repeated(tmp_path: Path) -> None:
    refused(edited(tmp_path, LAQ, lambda m: m["labels"].__setitem__(0, "x" * 5000)), "labels[0]: is longer")
    labels = json.loads((LAQ / "manifest.json").read_text())["labels"]
    refused(
        edited(tmp_path / "2", LAQ, lambda m: m.update(labels=[labels[1]] * len(labels))),
        "labels: must be unique",
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["model"]["inputs"][0].update(shape=[None, 1 << 40]), "model.inputs[0].shape[1]"),
        (lambda m: m["model"]["inputs"][0].update(shape=[4096, 4096, 4096]), "values per row"),
        (lambda m: m.update(layers=[{"name": "x"}] * 5000), "layers: 5,000 layers; at most 4,096"),
        (lambda m: m["files"].update({f"f{i}": m["files"]["model.onnx"] for i in range(40)}), "at most 32"),
        (lambda m: m["files"]["weights.esq"].update(bytes=1 << 40), "files['weights.esq'].bytes"),
        (lambda m: m["normalization"].update(mean=[0.0] * 180, std=[0.0] * 180), "normalization.std[0]"),
    ],
    ids=["input-axis", "input-values", "layers", "files", "file-bytes", "std-zero"],
)
def test_other_sizes_are_bounded(tmp_path: Path, edit: Callable[[dict], Any], message: str) -> None:
    refused(edited(tmp_path, LAQ, edit), message)


def test_limits_are_documented() -> None:
    """Every limit in edge_ser.limits appears in docs/bundle.md by name."""
    import edge_ser.limits as lim

    doc = (ROOT / "docs" / "bundle.md").read_text()
    names = [n for n in dir(lim) if n.startswith(("MAX_", "MIN_"))]
    assert len(names) > 15
    missing = [n for n in names if n not in doc]
    assert not missing, f"docs/bundle.md does not state {missing}"


# --------------------------------------------------------------------------------------------------------------
# the manifest's own integrity
# --------------------------------------------------------------------------------------------------------------


def test_manifest_edit_is_caught(tmp_path: Path) -> None:
    """Two labels swapped by hand: every listed file still verifies, but the manifest's checksum does not."""
    b = copy_of(tmp_path, LAQ)
    m = json.loads((b / "manifest.json").read_text())
    m["labels"][0], m["labels"][1] = m["labels"][1], m["labels"][0]
    write_manifest(b, m, seal=False)
    refused(b, "manifest.json: sha256 mismatch", "modified or damaged")


def test_one_flipped_byte_in_the_manifest_is_caught(tmp_path: Path) -> None:
    b = copy_of(tmp_path, LAQ)
    data = bytearray((b / "manifest.json").read_bytes())
    i = data.index(b'"test"')
    data[i + 1] ^= 0x20  # "test" -> "Test": still valid JSON, silently different
    (b / "manifest.json").write_bytes(bytes(data))
    refused(b, "sha256 mismatch")


def test_missing_or_malformed_manifest_sum(tmp_path: Path) -> None:
    b = copy_of(tmp_path, LAQ)
    (b / "manifest.sha256").unlink()
    refused(b, "manifest.sha256 is missing", "sha256sum manifest.json > manifest.sha256")
    (b / "manifest.sha256").write_text("not a checksum\n")
    refused(b, "manifest.sha256: not one line")
    (b / "manifest.sha256").write_bytes(b"0" * 2_000_000)
    refused(b, "manifest.sha256")
    # the fix the message suggests works (coreutils format)
    digest = hashlib.sha256((b / "manifest.json").read_bytes()).hexdigest()
    (b / "manifest.sha256").write_text(f"{digest}  manifest.json\n")
    assert load_bundle(b).name == "laq_mlp"


def test_shipped_bundles_carry_a_matching_manifest_sum() -> None:
    for b in sorted(p for p in (ROOT / "bundles").iterdir() if p.is_dir()):
        assert (b / "manifest.sha256").read_bytes() == manifest_sum_line(
            (b / "manifest.json").read_bytes()
        ), b
        load_bundle(b)


# --------------------------------------------------------------------------------------------------------------
# reading: manifest first, only listed files, sizes before bytes, no compressed tars
# --------------------------------------------------------------------------------------------------------------


def test_unlisted_file_in_a_folder_is_refused(tmp_path: Path) -> None:
    b = copy_of(tmp_path, LAQ)
    (b / "notes.txt").write_text("hello")
    refused(b, "['notes.txt'] not listed in manifest.json")


def test_fifo_and_socket_in_a_folder_never_hang(tmp_path: Path) -> None:
    """A FIFO under a listed name is refused from its lstat (never opened: opening it would block)."""
    b = copy_of(tmp_path, LAQ)
    (b / "model_fp16.tflite").unlink()
    os.mkfifo(b / "model_fp16.tflite")
    refused(b, "model_fp16.tflite: is not a regular file")
    b2 = copy_of(tmp_path, LAQ, "b2")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(b2 / "sock"))
        refused(b2, "['sock'] not listed")


def test_size_is_compared_before_reading(tmp_path: Path) -> None:
    b = copy_of(tmp_path, LAQ)
    with open(b / "model_fp32.tflite", "ab") as f:
        f.truncate(300 << 20)  # sparse: 300 MB on paper, nothing read
    refused(b, "model_fp32.tflite: size mismatch (manifest 670156 bytes, file 314572800 bytes)")


def _tar(files: dict[str, bytes], extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _files(src: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(src.iterdir())}


def test_unlisted_tar_member_is_refused(tmp_path: Path) -> None:
    """An extra member is refused from its header (the scan reads headers only; nothing unlisted is read)."""
    info = tarfile.TarInfo("zz_extra.bin")
    info.size = 5 << 20
    p = tmp_path / "x.tar"
    p.write_bytes(_tar(_files(LAQ), [(info, bytes(info.size))]))
    refused(p, "['zz_extra.bin'] not listed in manifest.json")


@pytest.mark.parametrize(
    ("kind", "compress"),
    [("gzip", gzip.compress), ("bzip2", bz2.compress), ("xz", lzma.compress)],
)
def test_compressed_tar_is_refused(tmp_path: Path, kind: str, compress: Callable[[bytes], bytes]) -> None:
    """A 1 GB member compresses to ~1 MB: a compressed bundle is refused from its first bytes."""
    p = tmp_path / "b.tar.x"
    p.write_bytes(compress(_tar(_files(LAQ))))
    refused(p, f"a {kind}-compressed archive", "decompress it first")


def test_tar_file_larger_than_any_bundle_is_refused_unread(tmp_path: Path) -> None:
    p = tmp_path / "big.tar"
    p.write_bytes(_tar(_files(LAQ)))
    with open(p, "ab") as f:
        f.truncate(200 << 20)
    refused(p, "is more than a bundle may hold")


def test_plain_tar_bundle_still_loads(tmp_path: Path) -> None:
    p = tmp_path / "ok.tar"
    p.write_bytes(_tar(_files(LAQ)))
    assert load_bundle(p).labels == load_bundle(LAQ).labels


def test_weights_that_would_take_gigabytes_as_float32_are_refused(tmp_path: Path) -> None:
    """A 1-bit tensor of 33 M weights is a 4 MB file but 128 MiB of float32: refused before dequantizing."""
    b = copy_of(tmp_path, LAQ)
    n = MAX_WEIGHT_VALUES + 1024
    t = Tensor.quantized("big", np.ones((1024, n // 1024), np.int8), np.ones(1024, np.float32), bits=1)
    write_esq(b / "weights.esq", [t])
    data = (b / "weights.esq").read_bytes()
    m = json.loads((b / "manifest.json").read_text())
    m["files"]["weights.esq"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    write_manifest(b, m)
    refused(b, "weights.esq", "MiB as float32", "at most")


# --------------------------------------------------------------------------------------------------------------
# NaN and inf never become probabilities
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["numpy", "onnxruntime", "tflite-fp32"])
def test_non_finite_input_is_refused(engine: str) -> None:
    e = load_engine(load_bundle(LAQ), engine)
    x = np.zeros((3, 180), np.float32)
    x[1, 5] = np.nan
    with pytest.raises(InferenceError, match=r"input 'features': NaN or infinite values in 1 of 3"):
        e.predict(x)


@pytest.mark.parametrize("engine", ["numpy", "onnxruntime"])
def test_inputs_near_float32_max_are_clamped_not_overflowed(engine: str) -> None:
    """Finite but huge inputs would overflow float32 inside the model; they are clamped to +-OOD_Z training
    standard deviations first (and flagged), so the logits stay finite."""
    b = load_bundle(LAQ)
    e = load_engine(b, engine)
    x = np.full((2, 180), 3e37, np.float32)
    x[1] = -x[1]
    got = e.predict(x)
    assert np.isfinite(got).all()
    assert e.adapt.last_ood.all()
    # clamped means: the answer for the training mean +-20 standard deviations (from the manifest), which is
    # itself in range
    mean, std = (np.asarray(b.manifest["normalization"][k], np.float32) for k in ("mean", "std"))
    edge = np.stack([mean + np.float32(20) * std, mean - np.float32(20) * std])
    np.testing.assert_allclose(got, e.predict(edge), rtol=1e-6, atol=1e-6)
    assert not e.adapt.last_ood.any()


def test_weights_that_overflow_are_reported(tmp_path: Path) -> None:
    """Scales of 1e20 are finite (the bundle verifies) but make every logit overflow: refused at predict."""
    from edge_ser.packed import read_esq_bytes

    b = copy_of(tmp_path, LAQ)
    esq = read_esq_bytes((b / "weights.esq").read_bytes())
    big = []
    for t in esq.tensors.values():
        if t.codes is not None:
            t = Tensor.quantized(t.name, t.codes, np.full_like(t.scales, 1e20), t.bits)
        big.append(t)
    write_esq(b / "weights.esq", big, metadata=esq.metadata)
    data = (b / "weights.esq").read_bytes()
    m = json.loads((b / "manifest.json").read_text())
    m["files"]["weights.esq"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    for v in list(m.get("tflite", {}).get("variants", {})):
        m["files"].pop(m["tflite"]["variants"][v]["file"])
        (b / m["tflite"]["variants"][v]["file"]).unlink()
    m.pop("tflite", None)
    write_manifest(b, m)
    bundle = load_bundle(b)
    x = np.random.default_rng(0).normal(size=(4, 180)).astype(np.float32)
    for name in ("numpy", "onnxruntime"):
        with pytest.raises(InferenceError, match="logits"):
            load_engine(bundle, name).predict(x)
    # through the Recognizer (what `edge-ser predict` uses): the error names the file
    import wave

    from edge_ser.recognizer import Recognizer

    wav = tmp_path / "clip.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(16000) * 0.05) * 8000).astype("<i2").tobytes())
    with pytest.raises(InferenceError, match=r"clip\.wav: bundle .*logits"):
        Recognizer(b, "numpy").predict_files([wav])


def test_live_window_the_model_cannot_answer_is_reported_not_shown() -> None:
    from edge_ser.live.pipeline import LivePipeline
    from edge_ser.live.result import NO_RESULT

    bundle = load_bundle(LAQ)
    pipe = LivePipeline(bundle, load_engine(bundle, "numpy"))
    sr = bundle.input_kind.sample_rate
    t = np.arange(2 * sr) / sr
    loud = sum(0.2 / k * np.sin(2 * np.pi * 150 * k * t) for k in range(1, 6)).astype(np.float32)  # voiced
    ok = pipe.step(2.0, loud)
    assert ok.probs and ok.label in bundle.labels
    bad = loud.copy()
    bad[100] = np.inf
    r = pipe.step(4.0, bad)
    assert r.label == NO_RESULT and r.probs == () and r.smoothed == () and r.confidence == 0.0
    assert any("window skipped" in n and "NaN or inf" in n for n in r.notes)
    assert copy.deepcopy(r.to_dict())["label"] == NO_RESULT
