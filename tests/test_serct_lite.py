"""SERCT-lite (converters.models.serct_lite): the token count is the 20 ms frames, the graph runs on onnxruntime
and the numpy engine like torch, the raw windows line up with the MFCC windows, and a fold trains end to end
(float + 2-bit QAT) on synthetic speech."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _lms_models import one_thread  # noqa: F401

from converters.models.serct_lite import HOP, serct_lite
from converters.seq_train import TimNetTrainConfig, default_sequence_spec, train_timnet_fold, wave_windows
from edge_ser.inputs.sequence import clip_windows

SPEC = dataclasses.replace(default_sequence_spec(), frames=24)


def _model():
    torch.manual_seed(0)
    return serct_lite(3, frames=SPEC.frames, channels=8, dim=8, heads=2, layers=1).eval()


def test_every_stage_halves_so_tokens_are_frames():
    m = _model()
    x = torch.randn(2, SPEC.frames * HOP)
    h = m.encoder(x.reshape(2, 1, -1))
    assert h.shape == (2, 8, SPEC.frames)  # 24 tokens of 20 ms
    assert m(x).shape == (2, 3)
    with pytest.raises(ValueError, match="heads"):
        serct_lite(3, dim=10, heads=4)


def test_parameter_counts_of_the_docstring():
    """The module docstring said 35,591 at the defaults: the count without the positional embedding."""
    assert sum(p.numel() for p in serct_lite().parameters()) == 39_175
    assert serct_lite().pos.numel() == 112 * 32
    # the benchmarks' width (serct_lite_loso.md, si_table.md)
    assert sum(p.numel() for p in serct_lite(channels=16, dim=32).parameters()) == 25_991


def test_graph_runs_on_onnxruntime_and_numpy_engine_like_torch():
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort
    from _graph_engine import numpy_engine

    from converters.export.onnx_export import export_model, graph_json
    from edge_ser.engines.numpy_engine import SUPPORTED_OPS

    model = _model()
    model.set_normalization(0.0, 0.05)
    proto = export_model(model)
    ops = {n["op"] for n in graph_json(proto)["nodes"]}
    assert {"Conv", "LayerNormalization", "Sigmoid", "Softmax"} <= ops <= set(SUPPORTED_OPS)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    eng = numpy_engine(proto, 3, name="serct_lite")
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        x = (0.05 * rng.standard_normal((batch, SPEC.frames * HOP))).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.as_tensor(x)).numpy()
        assert np.abs(ref).max() > 1e-3
        np.testing.assert_allclose(sess.run(None, {"waveform": x})[0], ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(eng.run({"waveform": x})["logits"], ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seconds", [0.2, 0.48, 1.3])
def test_raw_windows_line_up_with_the_mfcc_windows(seconds: float):
    y = (0.1 * np.random.default_rng(1).standard_normal(int(seconds * 16000))).astype(np.float32)
    w = wave_windows(y, 16000, SPEC)
    assert w.shape == (len(clip_windows(y, 16000, SPEC)), SPEC.frames * HOP) and w.dtype == np.float32
    level = 20 * np.log10(np.sqrt(np.mean(w[w != 0] ** 2)))
    assert abs(level + 26) < 3  # conditioned: DC removed, about -26 dBFS


def test_a_fold_trains_and_compresses(tmp_path):
    from converters.data.synthetic import SyntheticSpec, write

    recs = write(
        SyntheticSpec(n_per_class=4, duration=0.6, n_speakers=3, labels=("neutral", "angry")), tmp_path / "s"
    )
    by = {s: [r for r in recs if r.speaker == s] for s in sorted({r.speaker for r in recs})}
    train, val, test = by.values()
    cfg = TimNetTrainConfig(
        spec=SPEC, model="serct_lite", serct_channels=4, speeds=(1.0,), epochs=2, qat_epochs=1, calibration=8
    )
    res = train_timnet_fold(train, val, test, cfg)
    assert res.quant is not None and res.bits <= 2.0 and res.packed_kb > 0
    assert res.float.n == len(test) and 0.0 <= res.quant.uar <= 1.0
    # compressed: every planned layer of the quantized model holds at most 2**bits values per output channel,
    # and the plan's weighted mean is the reported bit width
    layers = dict(res.compressed.model.named_modules())
    sizes = {name: layers[name].weight.numel() for name in res.plan}
    for name, bits in res.plan.items():
        rows = layers[name].weight.detach().numpy().reshape(layers[name].weight.shape[0], -1)
        assert max(np.unique(r).size for r in rows) <= 2**bits, (name, bits)
    assert res.bits == pytest.approx(sum(res.plan[n] * sizes[n] for n in sizes) / sum(sizes.values()))
    # the figures are those of the models' own test probabilities (record order), recounted here
    truth = np.array([res.classes.index(r.label) for r in test])
    for metrics, probs in ((res.float, res.probabilities["test"]), (res.quant, res.probabilities["q_test"])):
        pred = probs.argmax(1)
        recall = [np.mean(pred[truth == c] == c) for c in range(len(res.classes)) if np.any(truth == c)]
        assert metrics.uar == pytest.approx(np.mean(recall)) and metrics.accuracy == pytest.approx(
            np.mean(pred == truth)
        )
