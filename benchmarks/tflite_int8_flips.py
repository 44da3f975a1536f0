"""Which int8 quantizer flips the top-1 of a functionals MLP's int8 TFLite against fp32, and whether a training
change removes the flips (issue 20: ser_ravdess at 98.89 %, 8 of 720 clips).

    EDGE_SER_DATA=/work/shared/datasets python benchmarks/tflite_int8_flips.py [--bundles ser_emodb,ser_ravdess]
        [--phases 200] [--seeds 10]

1. Every clip of the data set through the device path (`tflite_bundle.device_rows`); the bundle's int8 file
   run by the TFLite engine, and simulated (`simulate`): the bundle's float weights (the LAQ grid, equal to
   the int8 file's), each int8 quantizer (input, hidden 1, hidden 2, logits) on or off at the file's scales
   and zero points.
2. Flips expected over grid phases: each grid shifted by a random fraction of its step (the same steps, other
   rounding boundaries: an equally valid calibration), so one file's count is seen against its spread.
3. Per flip of the file: the fp32 top-2 gap, whether the int8 top-2 tie, which quantizer alone flips it.
4. `--seeds N`: the bundle's recipe (`ship_ser.refit` at its chosen epochs, bits and noisy copies) at N seeds:
   as shipped; with input, hidden and logits fake-quantized during QAT at the ranges the calibration picks
   (`act_qat`); with a z-loss (`ZLOSS` x logsumexp^2, float and QAT: pins the per-row logit level that
   softmax ignores, so the int8 output range narrows, the LAQ codes being learnt with it). Each model is
   calibrated as `tflite_bundle` would (`calibrate`, simulated) and its expected flips counted.

5. Phased int8 (`converters.export.tflite_phases`, `PHASINGS`): the expected flips with each grid carried as
   phased copies, and the multiply-adds that costs; chose the shipped 4 x 2 x 8. Since then the bundles' int8
   file is phased, so "TFLite flips" counts the phased file's, while the simulated grids are its plain ones.

Writes benchmarks/results/NAME.{md,json} (`--name`, default tflite_int8_flips).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, require_datasets, run_main, write_results  # noqa: E402

pin_single_thread()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from converters.export import onnx_tflite as ot  # noqa: E402
from converters.export import tflite_bundle as tb  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.bundle.manifest import phase_offsets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = {"ser_emodb": "emodb", "ser_ravdess": "ravdess"}
STAGES = ("input", "hidden 1", "hidden 2", "logits")
PHASINGS = ((1, 1, 1), (2, 2, 2), (4, 1, 4), (4, 2, 2), (4, 2, 8), (4, 4, 4), (8, 4, 8))
"""Phased int8 settings simulated (copies of input, hidden, logits; `converters.export.tflite_phases`)."""
ZLOSS = 0.01
"""z-loss weight (of 0.01 and 0.1, the one with fewer expected flips on EMODB; RAVDESS confirms)."""

Layer = tuple[np.ndarray, np.ndarray, bool]  # weight [out, in], bias, ReLU after
Quant = tuple[float, int]  # int8 scale, zero point


def fake_int8(x: torch.Tensor, q: Quant, phase: float = 0.0, finer: int = 1, copies: int = 1) -> torch.Tensor:
    """x on the int8 grid of q (clipped to its range), the grid shifted by `phase` steps; `finer` = k: k times
    as many steps over the same range (what-if: 2 = 9 bit); `copies` = k: phased int8 (`tflite_phases`), the mean
    of k copies on grids shifted by `phase_offsets(k)`, the whole set shifted by phase / k (its period);
    straight-through gradients inside the range."""
    if copies > 1:
        offs = phase_offsets(copies) + np.float32(phase / copies)
        return sum(fake_int8(x, q, float(o), finer) for o in offs) / copies
    s, zp = float(q[0]) / finer, finer * (int(q[1]) + 128)
    return torch.fake_quantize_per_tensor_affine(x - phase * s, s, zp, 0, 255 * finer) + phase * s


@torch.no_grad()
def simulate(
    layers: list[Layer],
    qs: list[Quant],
    X: np.ndarray,
    on=(1, 1, 1, 1),
    phases=(0, 0, 0, 0),
    finer: int = 1,
    copies=(1, 1, 1, 1),
) -> np.ndarray:
    """Logits of the MLP with each int8 quantizer (input, then each layer's output) on or off; `copies`: phased
    int8 copies per quantizer."""
    x = torch.tensor(np.asarray(X, np.float32))
    if on[0]:
        x = fake_int8(x, qs[0], phases[0], finer, copies[0])
    for k, (w, b, relu) in enumerate(layers):
        x = x @ torch.tensor(w).T + torch.tensor(b)
        if relu:
            x = torch.relu(x)
        if on[k + 1]:
            x = fake_int8(x, qs[k + 1], phases[k + 1], finer, copies[k + 1])
    return x.numpy()


def _output_range(lo: float, hi: float, top: float, runner_up: float) -> tuple[float, float]:
    """The int8 output range `onnx_tflite.convert` sets: the converter's [lo, hi] narrowed to [min top logit -
    OUTPUT_MARGIN, max runner-up + CEILING_MARGIN] (`_narrow_output`), 0 inside."""
    floor, ceiling = top - ot.OUTPUT_MARGIN, runner_up + ot.CEILING_MARGIN
    return min(max(lo, floor), 0.0), max(min(hi, ceiling), 0.0)


def _quant(lo: float, hi: float) -> Quant:
    s = (hi - lo) / 255.0
    return s, int(np.clip(round(-128 - lo / s), -128, 127))


def calibrate(layers: list[Layer], rows: np.ndarray, q_in: Quant) -> list[Quant]:
    """The int8 grids `tflite_bundle` would give this MLP (simulated): input `q_in` (set from the data, not the
    model), hidden min / max over the calibration rows (`calibration_rows`), the output as `_output_range`."""
    x = torch.as_tensor(tb.calibration_rows({"functionals": rows})["functionals"])
    qs = [q_in]
    for w, b, relu in layers:
        x = x @ torch.tensor(w).T + torch.tensor(b)
        if relu:
            x = torch.relu(x)
            qs.append(_quant(min(float(x.min()), 0.0), float(x.max())))
        else:
            t2 = torch.sort(x, 1).values[:, -2:]
            qs.append(
                _quant(
                    *_output_range(
                        float(x.min()), float(x.max()), float(t2[:, 1].min()), float(t2[:, 0].max())
                    )
                )
            )
    return qs


def file_model(b) -> tuple[list[Layer], list[Quant]]:
    """The bundle's layers (float weights: the LAQ grid the int8 file holds) and the int8 file's grids."""
    from edge_ser.engines.tflite import import_interpreter

    Interpreter, _ = import_interpreter()
    it = Interpreter(model_content=b.files[b.manifest["tflite"]["variants"]["int8"]["file"]])
    it.allocate_tensors()
    det = {d["index"]: d for d in it.get_tensor_details()}
    p = b.dequantized()
    relu_of = {n["inputs"][0] for n in b.graph["nodes"] if n["op"] == "Relu"}
    gemm_out = {
        n["inputs"][1][: -len(".weight")]: n["outputs"][0] for n in b.graph["nodes"] if n["op"] == "Gemm"
    }
    layers, qs = [], []
    for op in it._get_ops_details():
        if op["op_name"] != "FULLY_CONNECTED":
            continue
        if not qs:
            qs.append(tuple(det[int(op["inputs"][0])]["quantization"]))
        name = det[int(op["inputs"][1])]["name"][: -len(".weight")]
        layers.append((p[f"{name}.weight"], p[f"{name}.bias"], gemm_out[name] in relu_of))
        qs.append(tuple(det[int(op["outputs"][0])]["quantization"]))
    return layers, qs


def _flips(
    layers, qs, X, top, on=(1, 1, 1, 1), phases=(0, 0, 0, 0), finer: int = 1, copies=(1, 1, 1, 1)
) -> np.ndarray:
    return np.flatnonzero(simulate(layers, qs, X, on, phases, finer, copies).argmax(1) != top)


def expected_flips(
    layers, qs, X, top, n: int, on=(1, 1, 1, 1), seed: int = 0, finer: int = 1, copies=(1, 1, 1, 1)
) -> dict:
    """Flips over `n` random grid phases: mean, sd, 10th / 90th percentile."""
    rng = np.random.default_rng(seed)
    c = np.array(
        [len(_flips(layers, qs, X, top, on, rng.uniform(-0.5, 0.5, 4), finer, copies)) for _ in range(n)]
    )
    return {"mean": float(c.mean()), "sd": float(c.std()), "p10": float(np.percentile(c, 10)),
            "p90": float(np.percentile(c, 90)), "share_at_most_1pct": float(np.mean(c <= int(0.01 * len(X))))}  # fmt: skip


def diagnose(name: str, data: str, phases: int) -> tuple[dict, np.ndarray]:
    from benchmarks.tflite_calibration import _float_engine
    from converters.data.loaders import load_dataset

    b = load_bundle(ROOT / "bundles" / name)
    records = list(load_dataset(data))
    X = tb.device_rows(b, [r.source for r in records])["functionals"]
    layers, qs = file_model(b)
    f = simulate(layers, qs, X, (0, 0, 0, 0))
    top = f.argmax(1)
    srt = np.sort(f, 1)
    gap = srt[:, -1] - srt[:, -2]
    l32, l8 = (_float_engine(b, v).predict(X) for v in ("fp32", "int8"))
    tfl = np.flatnonzero(l8.argmax(1) != l32.argmax(1))
    sim = _flips(layers, qs, X, top)
    alone = {
        s: _flips(layers, qs, X, top, tuple(int(j == k) for j in range(4))) for k, s in enumerate(STAGES)
    }
    per_flip = []
    for i in tfl:
        a, c = np.argsort(-l32[i])[:2]
        per_flip.append({"clip": int(i), "speaker": str(records[i].speaker), "fp32_gap": float(gap[i]),
                         "int8_tie": bool(l8[i, a] == l8[i, c]),
                         "alone": [s for s in STAGES if i in alone[s]]})  # fmt: skip
    expected = {"all": expected_flips(layers, qs, X, top, phases)}
    for k, s in enumerate(STAGES):
        expected[s] = expected_flips(layers, qs, X, top, phases, tuple(int(j == k) for j in range(4)))
    expected["all but input"] = expected_flips(layers, qs, X, top, phases, (0, 1, 1, 1))
    for k, bits in ((2, 9), (4, 10)):  # what-if: every grid k times finer over the same ranges
        expected[f"all, {bits}-bit grids"] = expected_flips(layers, qs, X, top, phases, finer=k)
    for i, h, o in PHASINGS:  # phased int8: copies of the input, each hidden activation, the logits
        ks = (i, h, h, o)
        macs = sum(ks[j] * ks[j + 1] * w.size for j, (w, _, _) in enumerate(layers))
        expected[f"phased {i}x{h}x{o}"] = {
            **expected_flips(layers, qs, X, top, phases, copies=ks),
            "flips_phase0": len(_flips(layers, qs, X, top, copies=ks)),
            "macs": int(macs),
        }
    return {
        "bundle": name,
        "clips": len(X),
        "grids": [list(q) for q in qs],
        "grids_recalibrated": [list(q) for q in calibrate(layers, X, qs[0])],
        "tflite_flips": len(tfl),
        "sim_flips": len(sim),
        "sim_and_tflite": len(set(sim) & set(tfl)),
        "alone_flips": {s: len(v) for s, v in alone.items()},
        "median_gap": float(np.median(gap)),
        "gaps_below_0.1": int((gap < 0.1).sum()),
        "per_flip": per_flip,
        "expected": expected,
    }, X


# ---------------------------------------------------------------------------------------------------------------
# the recipe at several seeds: as shipped, activation fake-quant in QAT, z-loss
# ---------------------------------------------------------------------------------------------------------------


def act_qat(q_in: Quant, window: int):
    """`ship_ser.refit` hook: in QAT, fake-quantize the input at `q_in`, each ReLU output and the logits at the
    ranges the calibration would pick, observed over the last `window` training batches."""

    def prepare(net, stage: str) -> None:
        if stage != "qat":
            return
        net.features[0].register_forward_pre_hook(lambda m, a: (fake_int8(a[0], q_in),))
        for m in net.features:
            if isinstance(m, torch.nn.ReLU):
                seen = collections.deque(maxlen=window)

                def hidden(m, a, out, seen=seen):
                    if m.training or not seen:
                        seen.append(float(out.detach().max()))
                    return fake_int8(out, _quant(0.0, max(max(seen), 1e-6)))

                m.register_forward_hook(hidden)
        seen = collections.deque(maxlen=window)

        def logits(m, a, out):
            if m.training or not seen:
                t2 = torch.sort(out.detach(), 1).values[:, -2:]
                seen.append(
                    (float(out.min()), float(out.max()), float(t2[:, 1].min()), float(t2[:, 0].max()))
                )
            lo, hi, top, ru = (f(v[i] for v in seen) for i, f in enumerate((min, max, min, max)))
            return fake_int8(out, _quant(*_output_range(lo, hi, top, ru)))

        net.classifier.register_forward_hook(logits)

    return prepare


def zloss(weight: float = ZLOSS):
    """`ship_ser.refit` hook: the gradient of weight x mean(logsumexp(logits)^2) added to the logits' gradient
    (the training loss gains the z-loss; the float and the QAT stage)."""

    def prepare(net, stage: str) -> None:
        if stage != "float":
            return  # qat() deep-copies the float model, this hook included

        def hook(m, a, out):
            if out.requires_grad:
                lse = torch.logsumexp(out.detach(), 1, keepdim=True)
                extra = weight * 2.0 * lse * torch.softmax(out.detach(), 1) / len(out)
                out.register_hook(lambda g: g + extra)

        net.classifier.register_forward_hook(hook)

    return prepare


def recipe_runs(name: str, data: str, X_dev: np.ndarray, seeds: int, phases: int) -> list[dict]:
    """Refits of the bundle's recipe at `seeds` seeds, three variants each; expected flips on the device rows."""
    from ship_ser import FEATURES, NOISY_COPIES, refit, training_matrix

    b = load_bundle(ROOT / "bundles" / name)
    acc = b.manifest["accuracy"]
    extended = bool(b.manifest["functionals_input"].get("extended", False))
    fit = training_matrix(data, FEATURES["extended" if extended else "egemaps"])
    _, _, Z, y, _, copy_of, _ = fit
    keep = (copy_of <= int(acc["noise_copies"])) | ((copy_of > NOISY_COPIES) & bool(acc.get("speed_copies")))
    Z, y = Z[keep], y[keep]

    class Plan:  # refit / qat read .bits
        bits = dict(b.manifest["bitplan"]["bits"])

    epochs = acc["split"]["chosen_epochs"]
    _, qs_file = file_model(b)
    norm = b.normalization
    raw = X_dev * np.asarray(norm["std"], np.float32) + np.asarray(norm["mean"], np.float32)
    variants = {"recipe": None, "act_qat": act_qat(qs_file[0], len(Z) // 32 + 1), "zloss": zloss()}
    out = []
    for seed in range(seeds):
        for v, prep in variants.items():
            model, _ = refit(Z.shape[1], int(y.max()) + 1, Z, y, Plan, epochs, seed=seed, prepare=prep)
            sd = {k: t.detach().numpy() for k, t in model.state_dict().items()}
            X = (raw - sd["mean"]) / sd["std"]  # the device rows as this model standardises them
            layers = [
                (sd[f"{n}.weight"], sd[f"{n}.bias"], n != "classifier")
                for n in ("features.0", "features.3", "classifier")
            ]
            qs = calibrate(layers, X, qs_file[0])
            f = simulate(layers, qs, X, (0, 0, 0, 0))
            top = f.argmax(1)
            srt = np.sort(f, 1)
            e = expected_flips(layers, qs, X, top, phases)
            out.append({"bundle": name, "seed": seed, "variant": v, "flips_phase0": len(_flips(layers, qs, X, top)),
                        "expected": e["mean"], "gaps_below_0.1": int((srt[:, -1] - srt[:, -2] < 0.1).sum()),
                        "output_step": qs[-1][0], "input_step": qs[0][0]})  # fmt: skip
            print(f"{name} seed {seed} {v}: expected flips {e['mean']:.2f}", file=sys.stderr, flush=True)
    return out


def markdown(diag: list[dict], runs: list[dict]) -> str:
    out = ["# int8 vs fp32 flips of the functionals MLPs: which quantizer, and what training changes", "",
           "Simulation: the bundle's LAQ-grid weights in float32, each int8 grid (input, hidden 1, hidden 2, logits) "
           "on or off at the int8 file's scales / zero points. Expected flips: mean over random grid phases (each "
           "grid shifted by a uniform fraction of its step, an equally valid calibration).", ""]  # fmt: skip
    for d in diag:
        e = d["expected"]
        out += [f"## {d['bundle']} ({d['clips']} clips)", "",
                f"TFLite flips {d['tflite_flips']}; simulation {d['sim_flips']} ({d['sim_and_tflite']} the same clips). "
                f"Grids (scale, zp) input / h1 / h2 / logits: {', '.join(f'({s:.4f}, {z})' for s, z in d['grids'])}; "
                f"recalibrated by `calibrate`: {', '.join(f'({s:.4f}, {z})' for s, z in d['grids_recalibrated'])}. "
                f"fp32 top-2 gap: median {d['median_gap']:.2f} logits, {d['gaps_below_0.1']} clips below 0.1.", "",
                "| quantizers on | flips of the file's grids | expected over phases (sd; p10 - p90) | P(<= 1 % of clips) |",
                "|---|---|---|---|"]  # fmt: skip
        rows = [("all", d["sim_flips"])] + [(s, d["alone_flips"][s]) for s in STAGES]
        rows += [(k, "-") for k in ("all but input", "all, 9-bit grids", "all, 10-bit grids")]
        for k, n in rows:
            x = e[k]
            out.append(f"| {k} | {n} | {x['mean']:.2f} ({x['sd']:.2f}; {x['p10']:.0f} - {x['p90']:.0f}) | "
                       f"{x['share_at_most_1pct']:.2f} |")  # fmt: skip
        out += [
            "",
            "| TFLite flip (clip, speaker) | fp32 top-2 gap | int8 top-2 tie | flips alone |",
            "|---|---|---|---|",
        ]
        for p in d["per_flip"]:
            out.append(f"| {p['clip']} ({p['speaker']}) | {p['fp32_gap']:.3f} | {'yes' if p['int8_tie'] else 'no'} | "
                       f"{', '.join(p['alone']) or 'none (combined)'} |")  # fmt: skip
        out.append("")
        ph = [k for k in e if k.startswith("phased ")]
        if ph:
            out += ["Phased int8 (`tflite_phases`: copies of input x hidden x logits), simulated on the same grids:", "",
                    "| phased | multiply-adds | flips, phase 0 | expected over phases (sd; p10 - p90) | P(<= 1 % of clips) |",
                    "|---|---|---|---|---|"]  # fmt: skip
            for k in ph:
                x = e[k]
                out.append(f"| {k[len('phased '):]} | {x['macs']:,} | {x['flips_phase0']} | {x['mean']:.2f} ({x['sd']:.2f}; "
                           f"{x['p10']:.0f} - {x['p90']:.0f}) | {x['share_at_most_1pct']:.2f} |")  # fmt: skip
            out.append("")
    if runs:
        out += ["## The recipe at several seeds (expected flips over grid phases; flips of the phase-0 grid)", "",
                "| bundle | variant | seeds | expected flips: mean (sd over seeds) | min - max | minus the recipe's, same "
                "seed: mean (s.e.) | phase-0 flips: mean | clips with gap < 0.1: mean | int8 output step: mean |",
                "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name in dict.fromkeys(r["bundle"] for r in runs):
            for v in dict.fromkeys(r["variant"] for r in runs):
                rs = [r for r in runs if r["bundle"] == name and r["variant"] == v]
                e = np.array([r["expected"] for r in rs])
                base = {
                    r["seed"]: r["expected"] for r in runs if r["bundle"] == name and r["variant"] == "recipe"
                }
                d = np.array([r["expected"] - base[r["seed"]] for r in rs])
                se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
                out.append(f"| {name} | {v} | {len(rs)} | {e.mean():.2f} ({e.std():.2f}) | {e.min():.2f} - {e.max():.2f} | "
                           f"{d.mean():+.2f} ({se:.2f}) | "
                           f"{np.mean([r['flips_phase0'] for r in rs]):.1f} | {np.mean([r['gaps_below_0.1'] for r in rs]):.1f} | "
                           f"{np.mean([r['output_step'] for r in rs]):.4f} |")  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundles", default=",".join(BUNDLES))
    p.add_argument("--phases", type=int, default=200, help="random grid phases for the expected flips")
    p.add_argument("--seeds", type=int, default=0, help="refit the recipe at this many seeds (0: none)")
    p.add_argument(
        "--name", default="tflite_int8_flips", help="results file name (benchmarks/results/NAME.md)"
    )
    args = p.parse_args(argv)
    require_datasets(*(BUNDLES[n] for n in args.bundles.split(",") if n))
    torch.set_num_threads(1)
    diag, runs = [], []
    for name in [n for n in args.bundles.split(",") if n]:
        d, X = diagnose(name, BUNDLES[name], args.phases)
        diag.append(d)
        print(
            f"{name}: {d['tflite_flips']} TFLite flips, expected {d['expected']['all']['mean']:.2f}",
            file=sys.stderr,
        )
        if args.seeds:
            runs += recipe_runs(name, BUNDLES[name], X, args.seeds, args.phases)
    md = markdown(diag, runs)
    write_results(args.name, {"bundles": diag, "recipe_runs": runs}, md)
    print(md)
    return 0


if __name__ == "__main__":
    run_main(main)
