"""The shipped bundles' TFLite variants (made by `converters.export.tflite_bundle` from their ONNX graphs):
every bundle carries fp32 / fp16 / int8, and the int8 variant keeps fp32's top-1 on real clips through the
device path. Needs only a TFLite interpreter (ai-edge-litert), not tensorflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_ser.bundle import load_bundle
from edge_ser.engines import bundle_engines
from edge_ser.engines.tflite import unavailable

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
SHIPPED = ("laq_mlp_emodb", "ser_emodb", "ser_ravdess", "tiny_transformer_emodb", "av_cnn", "av_cnn_audio")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_bundle_carries_tflite(name: str) -> None:
    b = load_bundle(BUNDLES / name)
    assert {"tflite-fp32", "tflite-fp16", "tflite-int8"} <= set(bundle_engines(b))
    assert "onnxruntime" in bundle_engines(b)


def _clip_top1(rec, paths) -> list[str]:
    return [p.label for p in rec.predict_files(paths)]


@pytest.mark.parametrize(
    ("name", "corpus"),
    [("ser_emodb", "emodb"), ("ser_ravdess", "ravdess_speech"), ("tiny_transformer_emodb", "emodb")],
)
@pytest.mark.skipif(unavailable() is not None, reason=f"no TFLite interpreter: {unavailable()}")
def test_shipped_int8_keeps_fp32_top1_on_real_clips(datasets: Path, name: str, corpus: str) -> None:
    """The shipped int8 variant (calibrated on the training clips) against fp32 on 24 real clips spread over
    the speakers, through the device path (`Recognizer`, speaker prior)."""
    from edge_ser.recognizer import Recognizer

    root = datasets / corpus
    if not root.is_dir():
        pytest.skip(f"{corpus} not found at {root}")
    files = sorted(root.rglob("*.wav"))
    paths = files[:: max(1, len(files) // 24)][:24]
    r32 = Recognizer(BUNDLES / name, "tflite-fp32", adapt=False)
    r8 = Recognizer(BUNDLES / name, "tflite-int8", adapt=False)
    a, c = _clip_top1(r32, paths), _clip_top1(r8, paths)
    assert sum(x == y for x, y in zip(a, c, strict=True)) >= len(paths) - 1
