"""TFLite variants of the shipped bundles through the ONNX-graph route: int8 calibration, saturation on
held-out-like captures, int8 and fp32 agreement on every clip.

    EDGE_SER_DATA=/work/shared/datasets python benchmarks/tflite_calibration.py [--write] [--clips 40]

For each bundle (`BUNDLES`: bundle -> the data set it was trained on):
1. calibration rows: its training clips through the device path (`tflite_bundle.device_rows`: features after
   `edge_ser.features.condition`'s DC / level conditioning, speaker prior, standardisation, OOD clamp);
   patch models capped at `--max-rows` (+ the rows holding every feature's extremes); `tflite_bundle.
   calibration_set`: functionals bundles take the int8 input range from the training rows plus augmented
   copies (`AUGMENTS`), face bundles calibrate on FER-2013 train images (`--face-rows`) and are measured on
   PublicTest (no captures: the saturation column is PublicTest's);
2. fp32, fp16 and int8 from the bundle's ONNX graph (`onnx_tflite`, fp32 checked against onnxruntime);
   audio bundles also as phased int8 where the graph allows (`tflite_phases`, `tflite_bundle.default_phasing`,
   `--phases`),
   measured beside the plain int8 of the same calibration; `--write` adds them to the bundle (the phased int8
   when there is one; model.onnx / weights.esq unchanged);
3. on EVERY clip of the data set (clean, as recorded): top-1 of int8 vs fp32 and fp32 vs onnxruntime
   (per clip: the input kind's `combine` of its rows, so a patch model votes as on the device), max relative
   logit difference;
4. held-out-like captures (`capture_invariance.captures()`: 8-48 kHz, white noise at -60 dBFS, +-20 dB, DC,
   a dead stereo channel) of `--clips` clips spread over the speakers: the share of int8 input values the
   engine saturates (< 1 % wanted) and int8-vs-fp32 top-1 under each capture.

Writes benchmarks/results/tflite_calibration.{md,json}.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import pin_single_thread, require_datasets, run_main, write_results  # noqa: E402
from benchmarks.capture_invariance import captures  # noqa: E402
from converters.export import tflite_bundle as tb  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.engines import load_engine  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = {
    "ser_emodb": "emodb",
    "ser_ravdess": "ravdess",
    "av_fn_audio": "ravdess",
    "tiny_transformer_emodb": "emodb",
    "laq_mlp_emodb": "emodb",
    "av_cnn_audio": "ravdess",
    "face_fer": "fer2013",
}
"""bundle -> the data set it was trained on (a face bundle: FER-2013, rows measured on PublicTest)."""


def _clip_rows(bundle, clips) -> list[dict[str, np.ndarray]]:
    return [tb.device_rows(bundle, [c]) for c in clips]


def _top1(
    bundle, engine, per_clip: list[dict[str, np.ndarray]], raw: bool = False
) -> tuple[np.ndarray, list]:
    """Per clip the combined top-1 and its logits; `raw`: the engine standardises itself (onnxruntime is fed
    rows already standardised here, so it gets them un-standardised back)."""
    kind = bundle.input_kind
    norm, name = bundle.normalization, bundle.normalized_input
    tops, logits = [], []
    for x in per_clip:
        if raw and norm is not None:
            mean, std = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
            x = {**x, name: (mean + x[name] * std).astype(np.float32)}
        y = engine.predict(x)
        logits.append(y)
        tops.append(int(np.argmax(kind.combine(y))))
    return np.asarray(tops), logits


def _rel(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    d = max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))
    return d / max(float(np.abs(np.concatenate(b)).max()), 1e-9)


def _float_engine(bundle, variant: str):
    """The TFLite engine fed standardised rows (the bundle's own normalisation switched off)."""
    from edge_ser.engines.tflite import TFLiteEngine

    e = TFLiteEngine(bundle, variant, threads=1)
    e.adapt.norm_input, e.adapt.norm, e.adapt.range_input = None, None, None
    return e


def run_bundle(name: str, data: str, args) -> dict:
    path = ROOT / "bundles" / name
    b = load_bundle(path)
    t0 = time.perf_counter()
    train = tb.training_paths(b, data)
    phasing = tb.default_phasing(b) if args.phases is None else tb.parse_phases(args.phases)
    c = tb.calibration_set(b, data, None, args.max_rows, args.augment, tb.augment_quantile(phasing))
    rows, cal = c.rows, c.calibration
    t_rows = time.perf_counter() - t0
    t0 = time.perf_counter()
    models = tb.convert_bundle(b, cal, input_ranges=c.input_ranges)
    t_conv = time.perf_counter() - t0
    plain = models["int8"]
    if phasing is not None:
        try:
            models = {**models, "int8": tb.phased(plain, phasing)}
        except ConfigError:
            if args.phases is not None:
                raise
            phasing = None  # a graph phasing cannot take: plain int8
    if args.write:
        tb.add_to_bundle(path, models)
    b2 = load_bundle(path) if args.write else _with_models(b, models)
    m8 = models["int8"]
    (inp,) = m8.inputs
    k_in = (m8.input_phases or {}).get(inp, 1)
    sat_train = tb.saturation(rows[inp], *m8.input_quant[inp], k_in)

    from converters.data.loaders import load_dataset

    records = list(load_dataset(data))
    per_clip = _clip_rows(b2, [r.source for r in records])
    ort = load_engine(b2, "onnxruntime", threads=1)
    e32, e16, e8 = (_float_engine(b2, v) for v in ("fp32", "fp16", "int8"))
    e8p = _float_engine(_with_models(b, {"int8": plain}), "int8") if phasing is not None else None
    t_ort, l_ort = _top1(b2, ort, per_clip, raw=True)
    t32, l32 = _top1(b2, e32, per_clip)
    t16, l16 = _top1(b2, e16, per_clip)
    t8, l8 = _top1(b2, e8, per_clip)
    t8p, _ = _top1(b2, e8p, per_clip) if e8p is not None else (t8, None)

    rng = np.random.default_rng(0)
    pick = records[:: max(1, len(records) // args.clips)][: args.clips]
    caps = []
    from edge_ser.audio import load

    clean = [load(r.source, sr=16000, mono=True)[0] for r in pick]
    for cap in captures():
        clips = []
        for y in clean:
            yc, sr = cap.apply(y, rng)
            clips.append((yc.mean(axis=1) if yc.ndim == 2 else yc, sr))
        pc = _clip_rows(b2, clips)
        stacked = np.concatenate([x[inp] for x in pc])
        c32, _ = _top1(b2, e32, pc)
        c8, _ = _top1(b2, e8, pc)
        c8p, _ = _top1(b2, e8p, pc) if e8p is not None else (c8, None)
        caps.append({"capture": cap.name, "saturated": tb.saturation(stacked, *m8.input_quant[inp], k_in),
                     "int8_vs_fp32": float(np.mean(c8 == c32)),
                     "plain_int8_vs_fp32": float(np.mean(c8p == c32))})  # fmt: skip
    return {
        "bundle": name,
        "data": data,
        "train_clips": len(train),
        "calibration_rows": int(len(next(iter(cal.values())))),
        "train_rows": int(len(rows[inp])),
        "augmented_rows": 0 if c.augmented is None else int(len(c.augmented[inp])),
        "int8_input_range": None if c.input_ranges is None else list(c.input_ranges[inp]),
        "seconds_rows": round(t_rows, 1),
        "seconds_convert": round(t_conv, 1),
        "sizes": {v: len(m.data) for v, m in models.items()},
        "int8_input": list(m8.input_quant[inp]),
        "int8_output": list(m8.output_quant),
        "saturated_train": sat_train,
        "clips": len(records),
        "fp32_vs_onnxruntime": float(np.mean(t32 == t_ort)),
        "fp32_rel_diff": _rel(l32, l_ort),
        "fp16_vs_fp32": float(np.mean(t16 == t32)),
        "fp16_rel_diff": _rel(l16, l32),
        "int8_vs_fp32": float(np.mean(t8 == t32)),
        "int8_rel_diff": _rel(l8, l32),
        "int8_phases": None if phasing is None else [phasing.input, phasing.hidden, phasing.output],
        "plain_int8_bytes": len(plain.data),
        "int8_sha256": hashlib.sha256(m8.data).hexdigest(),  # = the bundle's file when it made it
        "plain_int8_vs_fp32": float(np.mean(t8p == t32)),
        "captures": caps,
        "max_saturated_capture": max(c["saturated"] for c in caps),
    }


def _batched(engine, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([engine.predict(x[i : i + batch]) for i in range(0, len(x), batch)])


def run_face(name: str, data: str, args) -> dict:
    """A face bundle: calibrated on FER-2013 train images (`tflite_bundle.face_rows`), every PublicTest image
    (validation, one crop each) through onnxruntime and the three variants; saturation on PublicTest."""
    path = ROOT / "bundles" / name
    b = load_bundle(path)
    t0 = time.perf_counter()
    cal = tb.calibration_set(b, data, None, args.face_rows).calibration
    t_rows = time.perf_counter() - t0
    t0 = time.perf_counter()
    models = tb.convert_bundle(b, cal)
    t_conv = time.perf_counter() - t0
    if args.write:
        tb.add_to_bundle(path, models)
    b2 = load_bundle(path) if args.write else _with_models(b, models)
    m8 = models["int8"]
    test, labels = tb.face_rows(data, None, "validation")
    x = test["face"]
    ort = load_engine(b2, "onnxruntime", threads=1)
    e32, e16, e8 = (_float_engine(b2, v) for v in ("fp32", "fp16", "int8"))
    l_ort, l32, l16, l8 = (_batched(e, x) for e in (ort, e32, e16, e8))
    t_ort, t32, t16, t8 = (y.argmax(1) for y in (l_ort, l32, l16, l8))
    sat = tb.saturation(x, *m8.input_quant["face"])
    return {
        "bundle": name,
        "data": data + " (calibration: train; measured: PublicTest)",
        "train_clips": int(len(cal["face"])),
        "calibration_rows": int(len(cal["face"])),
        "train_rows": int(len(cal["face"])),
        "seconds_rows": round(t_rows, 1),
        "seconds_convert": round(t_conv, 1),
        "sizes": {v: len(m.data) for v, m in models.items()},
        "int8_input": list(m8.input_quant["face"]),
        "int8_output": list(m8.output_quant),
        "saturated_train": tb.saturation(cal["face"], *m8.input_quant["face"]),
        "clips": int(len(x)),
        "fp32_vs_onnxruntime": float(np.mean(t32 == t_ort)),
        "fp32_rel_diff": _rel([l32], [l_ort]),
        "fp16_vs_fp32": float(np.mean(t16 == t32)),
        "fp16_rel_diff": _rel([l16], [l32]),
        "int8_vs_fp32": float(np.mean(t8 == t32)),
        "int8_rel_diff": _rel([l8], [l32]),
        "accuracy": {
            v: float(np.mean(t == labels))
            for v, t in (("onnxruntime", t_ort), ("fp32", t32), ("fp16", t16), ("int8", t8))
        },  # fmt: skip
        "captures": [],
        "max_saturated_capture": sat,
    }


def _with_models(b, models):
    """The bundle in memory with the TFLite variants added (nothing written)."""
    from edge_ser.bundle import Bundle

    block, files = tb.tflite_block(models)
    return Bundle(b.root, {**b.manifest, "tflite": block}, b.labels, b.feature_spec, {**b.files, **files})


def markdown(rows: list[dict]) -> str:
    out = [
        "# TFLite through the ONNX-graph route: calibration and agreement",
        "",
        "int8 calibrated on the training clips through the device path (conditioning, speaker prior, "
        "standardisation). Agreement = same top-1 per clip over EVERY clip of the data set (patch models: "
        "the mean-probability vote of the clip's patches). Saturated = share of int8 input values clipped.",
        "",
        "int8 = the int8 variant the bundle ships: phased int8 (`tflite_phases`: copies of input, hidden, logits) "
        "for the functionals bundles, plain int8 otherwise; plain int8 of the same calibration beside it.",
        "",
        "| bundle | data | clips | fp32 / fp16 / int8 bytes | fp32 vs ORT top-1 (rel. diff) | fp16 vs fp32 | "
        "int8 vs fp32 top-1 (rel. diff) | int8 phases | plain int8 vs fp32 (bytes) | "
        "saturated: train / worst capture |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["sizes"]
        out.append(
            f"| {r['bundle']} | {r['data']} | {r['clips']} | {s['fp32']:,} / {s['fp16']:,} / {s['int8']:,} | "
            f"{r['fp32_vs_onnxruntime']:.2%} ({r['fp32_rel_diff']:.1e}) | {r['fp16_vs_fp32']:.2%} | "
            f"{r['int8_vs_fp32']:.2%} ({r['int8_rel_diff']:.3f}) | "
            f"{'x'.join(map(str, r['int8_phases'])) if r.get('int8_phases') else '-'} | "
            + (f"{r['plain_int8_vs_fp32']:.2%} ({r['plain_int8_bytes']:,})" if r.get("int8_phases") else "-")
            + f" | {r['saturated_train']:.3%} / {r['max_saturated_capture']:.3%} |"
        )
    faces = [r for r in rows if "accuracy" in r]
    if faces:
        out += ["", "Face bundles: the worst-capture column is PublicTest itself (images / 255); accuracy on "
                "PublicTest (top-1 vs the labels):", "",
                "| bundle | onnxruntime | fp32 | fp16 | int8 |", "|---|---|---|---|---|"]  # fmt: skip
        for r in faces:
            a = r["accuracy"]
            out.append(f"| {r['bundle']} | {a['onnxruntime']:.2%} | {a['fp32']:.2%} | {a['fp16']:.2%} | "
                       f"{a['int8']:.2%} |")  # fmt: skip
    rows = [r for r in rows if r["captures"]]
    if not rows:
        return "\n".join(out)
    out += ["", "Per capture (saturated share of int8 input values; int8 vs fp32 top-1, plain int8 in brackets "
            "where the bundle ships phased int8):", ""]  # fmt: skip
    caps = [c["capture"] for c in rows[0]["captures"]]
    out.append("| capture | " + " | ".join(r["bundle"] for r in rows) + " |")
    out.append("|---|" + "---|" * len(rows))
    for i, c in enumerate(caps):
        cells = [
            f"{r['captures'][i]['saturated']:.3%} / {r['captures'][i]['int8_vs_fp32']:.0%}"
            + (f" ({r['captures'][i]['plain_int8_vs_fp32']:.0%})" if r.get("int8_phases") else "")
            for r in rows
        ]
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundles", default=",".join(BUNDLES))
    p.add_argument("--clips", type=int, default=40, help="clips per capture for the saturation check")
    p.add_argument("--max-rows", type=int, default=3000, help="calibration rows at most (+ extremes)")
    p.add_argument(
        "--face-rows", type=int, default=tb.FACE_ROWS, help="FER-2013 train images to calibrate on"
    )
    p.add_argument("--write", action="store_true", help="add the variants to the bundles")
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="int8 input range from the training rows plus augmented copies (default: tflite_bundle.default_augment)",
    )
    p.add_argument(
        "--phases",
        default=None,
        help="phased int8 IN,HIDDEN,OUT for functionals bundles (default: the bundle's)",
    )
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    names = [b for b in args.bundles.split(",") if b]
    unknown = [b for b in names if b not in BUNDLES]
    if unknown or not names:
        # an unknown name was a KeyError traceback
        p.error(f"--bundles: {', '.join(unknown) or 'none given'}: choose from {', '.join(BUNDLES)}")
    require_datasets(*(BUNDLES[b] for b in names))
    pin_single_thread()
    rows = []
    for name in names:
        run = run_face if BUNDLES[name] == "fer2013" else run_bundle
        rows.append(run(name, BUNDLES[name], args))
        print(f"{name}: done {rows[-1]['int8_vs_fp32']:.4f}", file=sys.stderr)
    md = markdown(rows)
    write_results("tflite_calibration" + (f"_{args.tag}" if args.tag else ""), {"bundles": rows}, md)
    print(md)
    return 0


if __name__ == "__main__":
    run_main(main)
