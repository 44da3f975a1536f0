"""LAQ, layer-wise adaptive quantization: per-layer importance, ranking and the greedy bit search.

The paper's method (name "laq-paper"), exactly as ../shared/DESIGN.md states it:
  NP_l = params_l / params_total
  NE_l = entropy of W_l's histogram (bits) / 32 (the model's bit precision)
  NV_l = log(e - 1 + var(W_l) / max_k var(W_k))
  Imp_l = wP*NP_l + wE*(1 - NE_l) + wV*NV_l        (wP, wE, wV = 0.11, 0.01, 0.88)
  Rank by Imp (highest first); for each layer try b = 1..8 and keep the first whose validation accuracy
  drop (vs float) is <= T_margin(l) = T_margin * Imp_l / Imp_prev (Imp_prev: the previous layer in the
  ranking; the first layer uses T_margin). Decided layers keep their bits; later layers are still float.
The histogram has `bins` (256) equal-width bins over [min W, max W]; the paper does not state a count.

Beyond the paper, each by name next to the faithful one:
  "laq-qat"    the same ranking and margins, but each candidate is scored after a short QAT fine-tune
               (QAT inside the search), so a layer is judged by what training can recover, not by rounding.
  "sensitivity" measured sensitivity instead of NP/NE/NV: every layer starts at 8 bits; repeatedly lower
               by one bit the layer whose loss on the training set rises least per bit saved, until the
               average reaches a budget (default 1.75 bits, `LaqConfig.budget`); then spend any budget left over where one more
               bit lowers the loss most. Sweeping the budget gives a Pareto curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from converters.quant.bitplan import BitPlan, quantizable_layers
from converters.train import Inputs, predict
from edge_ser.errors import ConfigError

METHODS = ("laq-paper", "laq-qat", "sensitivity")


@dataclass(frozen=True)
class LaqWeights:
    """Importance weights of the paper (wP, wE, wV)."""

    wP: float = 0.11
    wE: float = 0.01
    wV: float = 0.88


def entropy_bits(w: np.ndarray, bins: int = 256) -> float:
    """Shannon entropy (bits) of the histogram of w's values over [min, max] in `bins` equal bins."""
    w = np.asarray(w, dtype=np.float64).ravel()
    if w.size == 0 or w.min() == w.max():
        return 0.0
    counts, _ = np.histogram(w, bins=bins, range=(float(w.min()), float(w.max())))
    p = counts[counts > 0] / w.size
    return float(-(p * np.log2(p)).sum())


def layer_metrics(
    weights: dict[str, np.ndarray], lw: LaqWeights = LaqWeights(), *, bins: int = 256, precision: int = 32
) -> dict[str, dict[str, float]]:
    """NP, NE, NV and importance of each named weight tensor, as defined by the paper."""
    if not weights:
        raise ConfigError("no layers to score")
    total = sum(w.size for w in weights.values())
    var = {n: float(np.var(np.asarray(w, dtype=np.float64))) for n, w in weights.items()}
    vmax = max(var.values())
    out = {}
    for n, w in weights.items():
        NP = w.size / total
        NE = entropy_bits(w, bins) / precision
        NV = math.log(math.e - 1 + (var[n] / vmax if vmax > 0 else 0.0))
        out[n] = {"NP": NP, "NE": NE, "NV": NV, "importance": lw.wP * NP + lw.wE * (1 - NE) + lw.wV * NV}
    return out


def model_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The float weights of the quantizable layers, by layer name."""
    return {n: m.weight.detach().cpu().numpy() for n, m in quantizable_layers(model).items()}


def greedy_margin_search(
    plan: BitPlan,
    ranking: list[str],
    importance: dict[str, float],
    score: Callable[[BitPlan], float],
    baseline: float,
    t_margin: float,
    *,
    log: Callable[[str], None] | None = None,
) -> tuple[BitPlan, list[dict]]:
    """The paper's search: per ranked layer, the smallest b in 1..8 whose score drop <= the layer's margin."""
    trace: list[dict] = []
    prev = None
    for name in ranking:
        margin = t_margin * importance[name] / (importance[prev] if prev else importance[name])
        chosen, acc = 8, None
        for b in range(1, 9):
            acc = score(plan.with_bits(name, b))
            trace.append({"layer": name, "bits": b, "score": acc, "drop": baseline - acc, "margin": margin})
            if baseline - acc <= margin:
                chosen = b
                break
        plan = plan.with_bits(name, chosen)
        if log:
            log(
                f"      {name}: {chosen} bits (score {acc:.3f}, drop {baseline - acc:+.3f}, margin {margin:.3f})"
            )
        prev = name
    return plan, trace


def _exact_cheapest(
    plan: BitPlan, loss_of: Callable[[BitPlan], float], current: float, min_bits: int
) -> tuple[float, str, BitPlan, float] | None:
    """The exact greedy step: score every layer one bit lower, keep the cheapest (cost, name, plan, loss)."""
    best = None
    for name, b in plan.bits.items():
        if b <= min_bits:
            continue
        cand = plan.with_bits(name, b - 1)
        loss = loss_of(cand)
        cost = (loss - current) / plan.params[name]
        if best is None or cost < best[0]:
            best = (cost, name, cand, loss)
    return best


def _lazy_cheapest(
    plan: BitPlan,
    loss_of: Callable[[BitPlan], float],
    current: float,
    min_bits: int,
    stale: dict[str, tuple[float, int]],
    step: int,
) -> tuple[float, str, BitPlan, float] | None:
    """The lazy greedy step: re-score the cheapest remembered cost (updating `stale`) until it is fresh."""
    while True:
        live = [n for n, b in plan.bits.items() if b > min_bits]
        if not live:
            return None
        for n in live:
            if n not in stale:
                cand = plan.with_bits(n, plan.bits[n] - 1)
                stale[n] = ((loss_of(cand) - current) / plan.params[n], step)
        name = min(live, key=lambda n: stale[n][0])
        cand = plan.with_bits(name, plan.bits[name] - 1)
        if stale[name][1] == step:
            loss = current + stale[name][0] * plan.params[name]
            return (stale[name][0], name, cand, loss)
        stale[name] = ((loss_of(cand) - current) / plan.params[name], step)


def _best_fill_up(
    plan: BitPlan, loss_of: Callable[[BitPlan], float], current: float, budget: float
) -> tuple[float, str, BitPlan, float] | None:
    """The fill-up step: the one-bit raise within budget that lowers the loss most per weight (gain, ...)."""
    best = None
    for name, b in plan.bits.items():
        cand = plan.with_bits(name, b + 1) if b < 8 else None
        if cand is None or cand.average_bits > budget + 1e-9:
            continue
        loss = loss_of(cand)
        gain = (current - loss) / plan.params[name]
        if loss < current and (best is None or gain > best[0]):
            best = (gain, name, cand, loss)
    return best


def sensitivity_allocation(
    plan: BitPlan,
    loss_of: Callable[[BitPlan], float],
    budget: float,
    *,
    min_bits: int = 1,
    lazy: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[BitPlan, list[dict]]:
    """Greedy budgeted allocation: from 8 bits everywhere, lower the cheapest layer (loss rise per bit-weight
    saved) one bit at a time until average_bits <= budget.

    The exact greedy scores every layer at every step (layers x steps loss evaluations: fine for a 5-layer
    MLP, hours for a 26-layer SqueezeNet). `lazy=True` is the lazy greedy of submodular maximisation: each
    layer's cost is remembered from when it was last scored and only the cheapest stale one is re-scored
    until the cheapest is fresh, so a step usually costs a few evaluations. It picks the same layer whenever
    lowering other layers never makes a layer cheaper to lower (costs only rise), approximately otherwise."""
    plan = BitPlan({n: 8 for n in plan.bits}, plan.params, plan.method, plan.info)
    trace: list[dict] = []
    current = loss_of(plan)
    stale: dict[str, tuple[float, int]] = {}  # lazy: layer -> (cost when last scored, step it was scored at)
    step = 0
    while plan.average_bits > budget + 1e-9:
        if lazy:
            best = _lazy_cheapest(plan, loss_of, current, min_bits, stale, step)
        else:
            best = _exact_cheapest(plan, loss_of, current, min_bits)
        if best is None:
            break
        _, name, plan, current = best
        step += 1
        stale.pop(name, None)  # its next bit is a different step: score it afresh
        trace.append(
            {"layer": name, "bits": plan.bits[name], "loss": current, "average_bits": plan.average_bits}
        )
    # Fill-up: a big layer's last step can land well under the budget; spend what is left, one bit at a
    # time, where it lowers the loss most per weight.
    while True:
        best = _best_fill_up(plan, loss_of, current, budget)
        if best is None:
            break
        _, name, plan, current = best
        trace.append(
            {
                "layer": name,
                "bits": plan.bits[name],
                "loss": current,
                "average_bits": plan.average_bits,
                "fill_up": True,
            }
        )
    if log:
        bits = ", ".join(f"{n}:{b}" for n, b in plan.bits.items())
        log(f"      allocation at budget {budget}: {bits} (avg {plan.average_bits:.3f} bits)")
    return plan, trace


def cross_entropy(model: nn.Module, X: Inputs, y: np.ndarray) -> float:
    """Mean cross-entropy of a model on (X, y), eval mode; X as `converters.train.predict` takes it."""
    logits = torch.as_tensor(predict(model, X))
    return float(nn.functional.cross_entropy(logits, torch.as_tensor(np.asarray(y, dtype=np.int64))))
