"""Checks shared by the log-Mel patch model tests (small_cnn, tiny_transformer): float ONNX on onnxruntime and
the numpy engine against torch, and the 2-bit QAT -> freeze -> bundle -> engines round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Torch on one thread for the test (import it into a test module to apply it there)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def perturb_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics and BatchNorm / LayerNorm affine parameters (fresh ones are identities)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def engines_match_torch(model: torch.nn.Module, proto, name: str, patch: tuple[int, int]) -> None:
    """The float graph on onnxruntime and the numpy engine gives torch's logits at batch 1 and 5."""
    import onnxruntime as ort
    from _graph_engine import numpy_engine

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    eng = numpy_engine(proto, model.cfg.num_classes, name=name)
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        x = rng.normal(-40, 12, (batch, 1, *patch)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.as_tensor(x)).numpy()
        assert np.abs(ref).max() > 1e-2
        np.testing.assert_allclose(sess.run(None, {"lms": x})[0], ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(eng.run({"lms": x})["logits"], ref, rtol=1e-4, atol=1e-4)


def two_bit_bundle_round_trip(model: torch.nn.Module, tmp_path, spec):
    """Attach 2-bit fake quant, freeze, bundle, load; the QAT forward, the frozen model and both engines
    agree. Returns (bundle, frozen model)."""
    from converters.export.bundle import build_bundle
    from converters.quant import BitPlan, attach, freeze
    from edge_ser.bundle import load_bundle
    from edge_ser.engines import load_engine
    from edge_ser.inputs.patches import PatchesKind

    plan = BitPlan.uniform(model, 2)
    attach(model, plan)  # QAT form: the forward sees the 2-bit grid
    x = np.random.default_rng(0).normal(-40, 15, (5, *spec.patch_shape)).astype(np.float32)
    frozen, codes = freeze(model, plan)
    with torch.no_grad():
        qat_out = model(torch.as_tensor(x)).numpy()  # still usable after freeze
        ref = frozen(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(qat_out, ref, rtol=1e-5, atol=1e-5)
    labels = [f"c{i}" for i in range(model.cfg.num_classes)]
    b = load_bundle(
        build_bundle(
            tmp_path / "b", frozen, plan, codes, name="m", labels=labels, kind=PatchesKind(spec), accuracy={}
        )
    )
    assert b.input_names == ("lms",) and b.input_kind.spec == spec
    for engine in ("onnxruntime", "numpy"):
        got = load_engine(b, engine).predict({"lms": x})
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    return b, frozen
