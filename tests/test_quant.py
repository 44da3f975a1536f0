"""Quantizers, BitPlan and the LAQ metrics, on small hand-computed tensors."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="quantization is host-side (torch)")

from converters.models import laq_mlp  # noqa: E402
from converters.quant import BitPlan, LaqWeights, entropy_bits, fake_quant, freeze, layer_metrics, quantize  # noqa: E402
from converters.quant.laq import greedy_margin_search, sensitivity_allocation  # noqa: E402
from converters.quant.quantizers import dequantize  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402


def test_two_bit_is_ternary_with_max_scale() -> None:
    w = torch.tensor([[0.6, -1.0, 0.2, 0.9], [0.1, 0.05, -0.2, 0.0]])
    q, s = quantize(w, 2)
    assert q.dtype == torch.int8
    assert q.tolist() == [[1, -1, 0, 1], [0, 0, -1, 0]]  # qmax = 1, s = max|w|
    np.testing.assert_allclose(s.numpy(), [1.0, 0.2], rtol=1e-7)


def test_four_and_eight_bit_codes_and_error() -> None:
    w = torch.tensor([[0.7, -0.35, 0.1, 0.0]])
    q, s = quantize(w, 4)  # qmax 7, s = 0.1
    assert q.tolist() == [[7, -4, 1, 0]] and abs(float(s[0]) - 0.1) < 1e-7  # -3.5 rounds to even (-4)
    g = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    errs = [float((g - dequantize(*quantize(g, b))).norm() / g.norm()) for b in (2, 4, 8)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.01
    q8, _ = quantize(g, 8)
    assert q8.abs().max() == 127 and q8.min() >= -127  # -128 is never used (symmetric)


def test_one_bit_is_sign_times_mean_abs() -> None:
    w = torch.tensor([[0.5, -1.0, 0.0, -0.3], [2.0, 2.0, -2.0, 2.0]])
    q, s = quantize(w, 1)
    assert q.tolist() == [[1, -1, 1, -1], [1, 1, -1, 1]]  # sign(0) -> +1
    np.testing.assert_allclose(s.numpy(), [0.45, 2.0], rtol=1e-7)


def test_zero_channel_gets_a_positive_scale_and_bad_bits_are_refused() -> None:
    q, s = quantize(torch.zeros(2, 3), 3)
    assert (s > 0).all() and (q == 0).all()
    for bits in (0, 9, 2.5):
        with pytest.raises(ConfigError):
            quantize(torch.ones(1, 1), bits)


def test_fake_quant_is_straight_through() -> None:
    w = torch.randn(8, 5, requires_grad=True)
    y = fake_quant(w, 2)
    assert torch.equal(y.detach(), dequantize(*quantize(w, 2)))
    y.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_fake_quant_forward_is_the_grid_at_every_width() -> None:
    """The forward pass of QAT is the grid `freeze` exports: exactly at 2-8 bits (only 2 was tested); at 1 bit
    within 1 float32 ulp of the sum's larger term (it rounds where |w| and the scale are far apart: a review
    measured 1,108 of 19,200 weights 1 ulp off; fake_quant's docstring says why it stays)."""
    w = torch.randn(64, 300, generator=torch.Generator().manual_seed(0))
    for bits in range(2, 9):
        assert torch.equal(fake_quant(w, bits), dequantize(*quantize(w, bits))), bits
    g = dequantize(*quantize(w, 1))
    ulp = torch.finfo(torch.float32).eps * torch.maximum(w.abs(), g.abs())  # of the sum's larger term
    assert bool(((fake_quant(w, 1) - g).abs() <= ulp).all())


def test_entropy_and_metrics_by_hand() -> None:
    w1 = np.array([[1.0, -1.0], [1.0, -1.0]])  # 4 params, var 1, two equal bins: 1 bit
    w2 = np.array([[0.0] * 4, [0.0, 0.0, 0.0, 4.0]])  # 8 params, var 1.75, bins 7/8 and 1/8
    assert entropy_bits(w1, bins=2) == pytest.approx(1.0)
    h2 = -(7 / 8 * math.log2(7 / 8) + 1 / 8 * math.log2(1 / 8))
    assert entropy_bits(w2, bins=2) == pytest.approx(h2)  # 0.5436 bits
    assert entropy_bits(np.full(5, 3.0)) == 0.0
    m = layer_metrics({"a": w1, "b": w2}, LaqWeights(), bins=2)
    assert m["a"]["NP"] == pytest.approx(1 / 3) and m["b"]["NP"] == pytest.approx(2 / 3)
    assert m["a"]["NE"] == pytest.approx(1 / 32) and m["b"]["NE"] == pytest.approx(h2 / 32)
    assert m["a"]["NV"] == pytest.approx(math.log(math.e - 1 + 1 / 1.75)) and m["b"]["NV"] == pytest.approx(
        1.0
    )
    imp_a = 0.11 * (1 / 3) + 0.01 * (1 - 1 / 32) + 0.88 * math.log(math.e - 1 + 1 / 1.75)
    imp_b = 0.11 * (2 / 3) + 0.01 * (1 - h2 / 32) + 0.88
    assert m["a"]["importance"] == pytest.approx(imp_a) == pytest.approx(0.775368, abs=1e-6)
    assert m["b"]["importance"] == pytest.approx(imp_b) == pytest.approx(0.963163, abs=1e-6)


def test_greedy_margin_search_follows_the_paper() -> None:
    """First layer's margin is T; the next is T * Imp/Imp_prev; first b within the margin wins."""
    plan = BitPlan({"a": 32, "b": 32}, {"a": 100, "b": 300})
    drops = {("b", 1): 0.10, ("b", 2): 0.03, ("b", 3): 0.01, ("a", 1): 0.04, ("a", 2): 0.02}

    def score(p: BitPlan) -> float:
        changed = [(n, b) for n, b in p.bits.items() if b != 32]
        return 0.8 - max(drops.get(c, 0.0) for c in changed)

    imp = {"a": 0.5, "b": 1.0}
    out, trace = greedy_margin_search(plan, ["b", "a"], imp, score, 0.8, 0.04)
    # b: margin 0.04 -> 1 bit drops 0.10, 2 bits drops 0.03 <= 0.04 -> 2 bits
    # a: margin 0.04 * 0.5 / 1.0 = 0.02; with b at 2 bits the drop is max(0.03, a's) -> never <= 0.02 -> 8 bits
    assert out.bits == {"b": 2, "a": 8}
    assert trace[0]["margin"] == pytest.approx(0.04) and trace[2]["margin"] == pytest.approx(0.02)
    assert out.average_bits == pytest.approx((300 * 2 + 100 * 8) / 400)


def test_sensitivity_allocation_meets_the_budget() -> None:
    plan = BitPlan({"big": 32, "small": 32}, {"big": 900, "small": 100})
    # the small layer hurts 10x more per bit lost
    loss = lambda p: sum((8 - b) * (0.01 if n == "big" else 0.1) for n, b in p.bits.items())  # noqa: E731
    said: list[str] = []
    out, _ = sensitivity_allocation(plan, loss, budget=2.0, log=said.append)
    assert out.average_bits <= 2.0 and out.bits["big"] < out.bits["small"]
    # under laq's "[3/5] bit allocation: ..." (the demo's "[3/8]") as its other steps' second lines, 6 columns in
    # (it stood at 2)
    assert len(said) == 1 and said[0].startswith("      allocation at budget 2.0: big:"), said


def test_bitplan_json_and_freeze_is_exact(tmp_path) -> None:
    model = laq_mlp(180, 7)
    plan = BitPlan(
        {"features.0": 1, "features.3": 2, "features.6": 4, "classifier": 8},
        {n: m.weight.numel() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)},
        method="manual",
    )
    assert plan.average_bits == pytest.approx((92160 * 1 + 65536 * 2 + 8192 * 4 + 448 * 8) / 166336)
    again = BitPlan.load(plan.save(tmp_path / "plan.json"))
    assert again.bits == plan.bits and again.average_bits == plan.average_bits
    frozen, codes = freeze(model, plan)
    for name, m in frozen.named_modules():
        if name in codes:
            q, s = codes[name]
            assert np.array_equal(m.weight.detach().numpy(), q.astype(np.float32) * s[:, None])
            qmax = 1 if plan.bits[name] == 1 else 2 ** (plan.bits[name] - 1) - 1
            assert np.abs(q).max() <= qmax
    with pytest.raises(ConfigError):
        BitPlan({"a": 9}, {"a": 1})
    with pytest.raises(ConfigError):
        BitPlan.from_dict({"bits": {"a": 2}})


@pytest.mark.parametrize("bits", [1, 4])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_freeze_refuses_a_non_finite_weight(bits: int, bad: float) -> None:
    """A NaN / inf weight gave code 0 and a NaN / inf scale without a word; export then blamed 'model not frozen?'."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight[1, 2] = bad
    with pytest.raises(ConfigError, match=r"^0: the weight has 1 non-finite value"):
        freeze(model, BitPlan({"0": bits}, {"0": 6}))
    frozen, _ = freeze(model, BitPlan({"0": 32}, {"0": 6}))  # a float layer is not quantized: left as it is
    assert torch.isnan(frozen[0].weight).any() or torch.isinf(frozen[0].weight).any()


def test_freeze_leaves_the_fake_quantized_model_usable() -> None:
    """freeze() deep-copies and strips the parametrizations from the copy only; the QAT model still runs."""
    import torch

    from converters.models import laq_mlp
    from converters.quant.bitplan import BitPlan
    from converters.quant.qat import attach, freeze

    torch.manual_seed(0)
    model = attach(laq_mlp(12, 3), BitPlan.uniform(laq_mlp(12, 3), 2)).eval()
    x = torch.randn(4, 12)
    before = model(x).detach()
    frozen, codes = freeze(model, BitPlan.uniform(model, 2))
    assert torch.allclose(model(x), before) and torch.allclose(frozen(x), before, atol=1e-5)
    assert codes and not any(hasattr(m, "parametrizations") for m in frozen.modules())


def test_check_bits_refuses_a_bool() -> None:
    """`True` is 1 in Python: a flag passed where a bit width goes was taken as 1 bit (`edge_ser.packed` refuses
    bools already). Widths 1..8 and 32 pass; a bool is a ConfigError."""
    from converters.quant.quantizers import check_bits
    from edge_ser.errors import ConfigError

    assert [check_bits(b) for b in (1, 8, 32)] == [1, 8, 32]
    for bad in (True, False, 0, 9, 2.0):
        with pytest.raises(ConfigError, match="bits must be an integer"):
            check_bits(bad)


def test_learned_fake_quant_starts_on_the_rules_grid_and_quantize_follows_given_scales() -> None:
    """LSQ's forward is the exported grid exactly: at the rule's scales it is the rule's grid (so QAT with learned
    scales starts where the recipe starts), and at other scales it is quantize(w, bits, scales)'s grid."""
    from converters.quant.quantizers import learned_fake_quant

    w = torch.randn(16, 40, generator=torch.Generator().manual_seed(1))
    for bits in range(1, 9):
        q, s = quantize(w, bits)
        assert torch.equal(learned_fake_quant(w, s, bits), dequantize(q, s)), bits
        other = s * 0.7
        q2, s2 = quantize(w, bits, other)
        assert torch.equal(s2, other) and torch.equal(
            learned_fake_quant(w, other, bits), dequantize(q2, s2)
        ), bits
    # a smaller scale clips: at 2 bits every code stays in {-1, 0, 1}, more of them non-zero than the rule's
    q2, _ = quantize(w, 2, quantize(w, 2)[1] * 0.4)
    assert q2.abs().max() == 1 and (q2 != 0).sum() > (quantize(w, 2)[0] != 0).sum()
    with pytest.raises(ConfigError, match="3 scales for a weight of 16 output channels"):
        quantize(w, 4, torch.ones(3))


def test_learned_fake_quant_gradients_are_lsqs() -> None:
    """The weight's gradient passes where the grid does not clip it and is zero where it does; the scale's is
    sum(grad x (q - w/s)) inside, grad x q where clipped (q at 1 bit), times 1/sqrt(n x qmax) (Esser et al. 2020)."""
    from converters.quant.quantizers import learned_fake_quant

    w = torch.tensor([[0.05, -0.4, 0.9, -2.0], [0.3, 0.31, -0.1, 0.0]], requires_grad=True)
    s = torch.tensor([0.5, 0.2], requires_grad=True)
    gout = torch.tensor([[1.0, 2.0, -1.0, 0.5], [-1.0, 1.0, 3.0, 2.0]])
    (learned_fake_quant(w, s, 3) * gout).sum().backward()  # qmax 3
    v = (w / s[:, None]).detach()
    clipped = v.abs() > 3
    assert clipped.tolist() == [[False, False, False, True], [False, False, False, False]]
    assert torch.equal(w.grad, torch.where(clipped, 0.0, gout))
    q = torch.clamp(torch.round(v), -3, 3)
    per = torch.where(clipped, q, q - v) * gout
    torch.testing.assert_close(s.grad, per.sum(1) / math.sqrt(4 * 3))
    w1 = w.detach().clone().requires_grad_(True)
    s1 = torch.tensor([0.5, 0.2], requires_grad=True)
    (learned_fake_quant(w1, s1, 1) * gout).sum().backward()
    sign = torch.where(w1.detach() >= 0, 1.0, -1.0)
    torch.testing.assert_close(s1.grad, (sign * gout).sum(1) / 2.0)
    assert torch.equal(w1.grad, gout * s1.detach()[:, None])


def test_qat_with_learned_scales_trains_them_and_freeze_exports_that_grid() -> None:
    """QAT with scales="learned" moves the scales off the rule's values; the frozen model is the QAT model's grid
    bit for bit (the codes are on the learned scales, which the packed file stores); a bad name is refused."""
    from converters.quant.qat import LearnedScaleQuant, attach, learned_scales, qat
    from converters.train import TrainConfig

    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 12)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
    torch.manual_seed(0)
    model = laq_mlp(12, 3)
    plan = BitPlan.uniform(model, 2)
    cfg = TrainConfig(epochs=5, lr=1e-2, weight_decay=0.0, seed=0, batch_size=32, keep_last=True)
    frozen, codes, result = qat(model, plan, X, y, X, y, cfg, scales="learned")
    assert result.model is frozen
    for name, (q, s) in codes.items():
        rule = quantize(torch.as_tensor(dict(model.named_modules())[name].weight), 2)[1].numpy()
        assert not np.allclose(s, rule), (
            name
        )  # trained away from the rule's start (and from the float model's)
        assert set(np.unique(q)) <= {-1, 0, 1}
    torch.manual_seed(1)
    fresh = laq_mlp(12, 3)
    attached = attach(copy.deepcopy(fresh), plan, "learned").eval()
    x = torch.randn(5, 12)
    # untrained, the learned scales are the rule's (up to the float rounding of their log): the recipe's start
    torch.testing.assert_close(attached(x), attach(fresh, plan).eval()(x), rtol=1e-5, atol=1e-6)
    layer = next(m for m in attached.modules() if hasattr(m, "parametrizations"))
    assert isinstance(layer.parametrizations.weight[0], LearnedScaleQuant)
    with torch.no_grad():
        layer.parametrizations.weight[0].log_scale.add_(math.log(0.6))
    out, (fz, _) = attached(x), freeze(attached, plan)
    assert torch.equal(fz(x), out)
    assert torch.equal(learned_scales(layer), layer.parametrizations.weight[0].scale.detach())
    with pytest.raises(ConfigError, match="QAT scales must be one of rule, learned, got 'max'"):
        attach(laq_mlp(12, 3), plan, "max")
    from converters.compress import compress

    with pytest.raises(ConfigError, match="qat_scales must be one of rule, learned"):
        compress("sensitivity@2.0", model, X, y, X, y, qat_scales="max")  # before the allocation's minutes


@pytest.mark.parametrize("bits", [1, 4])
@pytest.mark.parametrize("log_scale", [float("nan"), float("inf"), 200.0])
def test_freeze_refuses_a_non_finite_learned_scale(bits: int, log_scale: float) -> None:
    """A learned scale that training drove to NaN or past float32 (exp of a log-scale > 88.7) was frozen as it was:
    codes 0 and a NaN / inf scale, a NaN model, and the export blamed 'model not frozen?'. Now a ConfigError names
    the layer and the channel; quantize refuses such given scales (and negative ones, which it took as 1e-12)."""
    from converters.quant.qat import attach

    torch.manual_seed(0)
    model = laq_mlp(12, 3)
    plan = BitPlan.uniform(model, bits)
    attach(model, plan, "learned")
    with torch.no_grad():
        model.features[3].parametrizations.weight[0].log_scale[5] = log_scale
    with pytest.raises(ConfigError, match=r"^features\.3: the scale of output channel 5 is (nan|inf)"):
        freeze(model, plan)
    w = torch.randn(4, 3)
    for bad in (float("nan"), float("inf"), -0.5):
        with pytest.raises(ConfigError, match="the scale of output channel 2 is"):
            quantize(w, bits, torch.tensor([0.1, 0.1, bad, 0.1]))
    # 0 (a log-scale's exp underflowing) is MIN_SCALE, as in the QAT forward and the rule's zero channel
    assert quantize(w, bits, torch.tensor([0.1, 0.1, 0.0, 0.1]))[1][2] > 0


def test_compress_refuses_learned_scales_for_a_recipe_without_qat() -> None:
    """compress("ptq-4" or "fp32", qat_scales="learned") trains nothing, so no scale was learned: the option was
    ignored without a word and the result was the rule's rounding, taken for an LSQ run."""
    from converters.compress import compress

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 12)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = laq_mlp(12, 2)
    for recipe in ("fp32", "ptq-4"):
        with pytest.raises(ConfigError, match=f"recipe {recipe!r} has no QAT: qat_scales='learned'"):
            compress(recipe, model, X, y, X, y, qat_scales="learned")
        assert compress(recipe, model, X, y, X, y).recipe == recipe


def test_freeze_refuses_learned_scales_of_another_width() -> None:
    """Scales learned for a 2-bit grid (about max|w|) frozen at 4 bits gave codes in {-1, 0, 1} stored as 4-bit, a
    grid no one evaluated, without a word; the rule's scales follow the plan's width, learned ones cannot."""
    from converters.quant.qat import attach

    torch.manual_seed(0)
    model = attach(laq_mlp(12, 3), BitPlan.uniform(laq_mlp(12, 3), 2), "learned")
    with pytest.raises(
        ConfigError, match=r"^features\.0: its scales were learned for 2 bits, the plan gives it 4"
    ):
        freeze(model, BitPlan.uniform(model, 4))
    assert freeze(model, BitPlan.uniform(model, 2))[1]
    assert not freeze(model, BitPlan.uniform(model, 32))[1]  # float: the latent weights, no grid
