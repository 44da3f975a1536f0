#!/usr/bin/env python3
"""Logits of the shipped bundles on fixed samples, for the arm64 emulation proof (scripts/arm64_proof.sh).

Device dependencies only (numpy, onnxruntime, opencv-python-headless): no torch, tensorflow or librosa, so the
same file runs inside the emulated arm64 Debian root and on the x86 host.

    arm64_predict.py samples --out DIR [--data ../shared/datasets]   # x86 side, once: the fixed inputs
    arm64_predict.py run --samples DIR --out X.json BUNDLE...          # both sides: logits per bundle/engine
    arm64_predict.py compare --x86 A.json --arm64 B.json --timings T.json --json R.json --md R.md

The samples are written once (on x86) and copied into the root, so both sides read the same bytes (their
sha256 is in every result): a synthetic 16 kHz WAV made from integers (no transcendental functions, so it is
bit-identical wherever it is generated), an EMODB utterance when the data set is present, and 6 video frames
(a FER-2013 face pasted on a plain background, or a drawn face when FER-2013 is absent) for the AV bundle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

SR = 16000
EMODB_CLIP = "03a01Fa.wav"  # speaker 03, text a01, happiness (F = Freude), version a
FER_FACE = ("happy", "Training_10070997.jpg")
FRAME_SHAPE = (240, 320)
FORBIDDEN = ("torch", "tensorflow", "librosa", "onnx")  # never imported on the device (`onnx`, the package)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _synthetic_wav() -> np.ndarray:
    """2 s of int16 at 16 kHz from integer arithmetic only: a triangle-wave 'voice' whose pitch steps every
    0.25 s, an amplitude envelope and LCG noise. Bit-identical on every platform."""
    n = 2 * SR
    t = np.arange(n, dtype=np.int64)
    periods = np.array([80, 72, 64, 90, 100, 60, 70, 85], dtype=np.int64)  # 200..267 Hz at 16 kHz
    p = periods[(t // (SR // 4)) % len(periods)]
    phase = t % p
    tri = (np.abs(2 * phase - p) * 2 * 8000) // p - 8000  # [-8000, 8000]
    tri2 = ((np.abs(2 * ((3 * t) % p) - p) * 2 * 3000) // p) - 3000  # a third harmonic-ish partial
    env = np.minimum(t, n - t)
    env = np.minimum(env, 4000) * 1024 // 4000  # 0.25 s fade in/out, 10-bit
    x = np.empty(n, dtype=np.int64)
    s = 12345
    for i in range(n):  # LCG (Numerical Recipes), top bits -> +-512
        s = (1664525 * s + 1013904223) & 0xFFFFFFFF
        x[i] = (s >> 22) - 512
    y = ((tri + tri2) * env) // 1024 + x
    return np.clip(y, -32768, 32767).astype(np.int16)


def _drawn_face() -> np.ndarray:
    """A 144x144 uint8 schematic face (integer geometry), the fallback when FER-2013 is absent."""
    yy, xx = np.mgrid[0:144, 0:144]
    img = np.full((144, 144), 60, dtype=np.uint8)
    img[((xx - 72) ** 2) * 100 + ((yy - 72) ** 2) * 64 <= 64 * 100 * 60 * 60 // 100] = 190
    for cx in (50, 94):
        img[(xx - cx) ** 2 + (yy - 58) ** 2 <= 64] = 30
    img[(np.abs(xx - 72) < 22) & (np.abs(yy - 104) < 4)] = 40
    return img


def cmd_samples(args: argparse.Namespace) -> int:
    from edge_ser.audio import write_wav

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info: dict[str, object] = {}
    write_wav(out / "synthetic.wav", _synthetic_wav(), SR)
    info["synthetic.wav"] = "2 s synthetic 16 kHz int16 (integer arithmetic)"
    data = Path(args.data) if args.data else None
    emodb = data / "emodb" / "wav" / EMODB_CLIP if data else None
    if emodb is not None and emodb.is_file():
        shutil.copyfile(emodb, out / f"emodb_{EMODB_CLIP}")
        info[f"emodb_{EMODB_CLIP}"] = f"EMODB {EMODB_CLIP} (22.05 kHz: exercises the resampler)"
    fer = data / "fer2013" / "train" / FER_FACE[0] / FER_FACE[1] if data else None
    if fer is not None and fer.is_file():
        import cv2

        face48 = cv2.imread(str(fer), cv2.IMREAD_GRAYSCALE)
        face = np.kron(face48, np.ones((3, 3), dtype=np.uint8))  # 144x144, nearest, numpy only
        src = f"FER-2013 train/{FER_FACE[0]}/{FER_FACE[1]} upscaled x3"
    else:
        face = _drawn_face()
        src = "drawn schematic face (FER-2013 absent)"
    frames = np.full((6, *FRAME_SHAPE), 128, dtype=np.uint8)
    for k in range(6):  # the face drifts a little from frame to frame
        y0, x0 = 40 + 3 * k, 80 + 6 * k
        frames[k, y0 : y0 + face.shape[0], x0 : x0 + face.shape[1]] = face
    np.save(out / "frames.npy", frames)
    info["frames.npy"] = f"6 grey {FRAME_SHAPE[1]}x{FRAME_SHAPE[0]} frames: {src}"
    (out / "samples.json").write_text(json.dumps(info, indent=2) + "\n")
    for name in sorted(info):
        print(f"  {name}: {sha256(out / name)[:16]}  {info[name]}")
    return 0


def _versions() -> dict[str, object]:
    import numpy

    v: dict[str, object] = {
        "machine": platform.machine(),
        "uname": " ".join(platform.uname()),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
    }
    try:
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__

        v["numpy_simd_baseline"] = list(__cpu_baseline__)
        v["numpy_simd_found"] = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    except ImportError:
        pass
    try:
        import onnxruntime

        v["onnxruntime"] = onnxruntime.__version__
        v["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError as e:
        v["onnxruntime"] = f"missing: {e}"
    try:
        import cv2

        v["opencv"] = cv2.__version__
    except ImportError as e:
        v["opencv"] = f"missing: {e}"
    try:
        from importlib.metadata import version

        v["edge_ser"] = version("edge-ser")
    except Exception:  # noqa: BLE001 - informative only
        v["edge_ser"] = "?"
    return v


def _inputs(bundle, samples: Path, wav: Path) -> tuple[object, dict[str, object]]:
    """Model inputs for one bundle and one sample (made by the bundle's input kind, as on the device), plus
    what to record about them: the audio features, and for a model that takes faces the 6 crops' boxes."""
    from edge_ser.audio import load

    kind = bundle.input_kind
    rec: dict[str, object] = {}
    crops = None
    if kind.faces:
        from edge_ser.vision.face import FaceCropper

        frames = np.load(samples / "frames.npy")
        cropper = FaceCropper(kind.face_crop)
        crops = [cropper.crop_or_center(f) for f in frames]
        rec["faces_found"] = [bool(c.found) for c in crops]
        rec["face_boxes"] = [list(map(int, c.box)) if c.found else None for c in crops]
        rec["faces_sha256"] = hashlib.sha256(np.stack([c.image for c in crops]).tobytes()).hexdigest()
    y, sr = load(wav)
    x = kind.audio_inputs(y, sr, crops)
    rec["features"] = np.concatenate([v.ravel() for k, v in x.items() if k != "faces"]).tolist()
    return x, rec


def cmd_run(args: argparse.Namespace) -> int:
    from edge_ser.bundle import load_bundle
    from edge_ser.engines import load_engine

    samples = Path(args.samples)
    wavs = sorted(p for p in samples.glob("*.wav"))
    out: dict[str, object] = {"versions": _versions(), "samples": {}, "results": []}
    for p in sorted(samples.iterdir()):
        if p.suffix in (".wav", ".npy"):
            out["samples"][p.name] = sha256(p)  # type: ignore[index]
    out["errors"] = {}
    for bpath in args.bundles:
        try:
            _run_bundle(bpath, samples, wavs, args, out, load_bundle, load_engine)
        except Exception as e:  # noqa: BLE001 - one bundle failing (e.g. OpenCV) is recorded, not fatal
            out["errors"][Path(bpath).name] = f"{type(e).__name__}: {e}"  # type: ignore[index]
            print(f"{Path(bpath).name}: FAILED {type(e).__name__}: {e}", flush=True)
    bad = sorted(m for m in FORBIDDEN if m in sys.modules)
    out["forbidden_imports"] = bad
    if bad:
        raise SystemExit(f"device-only run imported {bad}")
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


def _run_bundle(bpath, samples, wavs, args, out, load_bundle, load_engine) -> None:
    t0 = time.perf_counter()
    bundle = load_bundle(bpath)  # verifies every file's sha256 and the packed weights
    t_load = time.perf_counter() - t0
    name = Path(bpath).name
    print(f"{name}: {bundle.input_names}, verified in {t_load:.2f} s", flush=True)
    for wav in wavs:
        t0 = time.perf_counter()
        x, rec = _inputs(bundle, samples, wav)
        t_feat = time.perf_counter() - t0
        for eng in args.engines:
            t0 = time.perf_counter()
            engine = load_engine(bundle, eng, threads=args.threads)
            t_build = time.perf_counter() - t0
            logits = engine.predict(x)
            t_run = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                again = engine.predict(x)
                t_run.append(time.perf_counter() - t0)
                if not np.array_equal(again, logits):
                    raise SystemExit(f"{name}/{eng}: predict is not repeatable")
            row = np.asarray(logits, dtype=np.float32).ravel()  # every row (a patch model has one per patch)
            top = int(np.argmax(bundle.input_kind.combine(logits)))
            out["results"].append(  # type: ignore[union-attr]
                {
                    "bundle": name,
                    "sample": wav.name,
                    "engine": eng,
                    "describe": engine.describe(),
                    "logits": row.tolist(),
                    "top1": bundle.labels[top],
                    "bundle_verify_s": round(t_load, 4),
                    "features_s": round(t_feat, 4),
                    "engine_build_s": round(t_build, 4),
                    "predict_ms_median": round(float(np.median(t_run)) * 1e3, 3),
                    **rec,
                }
            )
            print(
                f"  {wav.name} {eng:12s} top1={bundle.labels[top]:8s} "
                f"predict {np.median(t_run) * 1e3:.2f} ms  logits {np.round(row, 4).tolist()}",
                flush=True,
            )


def _fmt(x: float) -> str:
    return f"{x:.1e}" if x else "0"


def cmd_compare(args: argparse.Namespace) -> int:
    a = json.loads(Path(args.x86).read_text())
    b = json.loads(Path(args.arm64).read_text())
    timings = json.loads(Path(args.timings).read_text()) if args.timings else {}
    if a["samples"] != b["samples"]:
        raise SystemExit(f"the two runs read different samples: {a['samples']} vs {b['samples']}")
    bk = {(r["bundle"], r["sample"], r["engine"]): r for r in b["results"]}
    rows = []
    for ra in a["results"]:
        key = (ra["bundle"], ra["sample"], ra["engine"])
        rb = bk.pop(key, None)
        if rb is None:
            rows.append({"bundle": key[0], "sample": key[1], "engine": key[2], "arm64": "did not run"})
            continue
        la, lb = np.asarray(ra["logits"]), np.asarray(rb["logits"])
        fa, fb = np.asarray(ra["features"]), np.asarray(rb["features"])
        row = {
            "bundle": key[0],
            "sample": key[1],
            "engine": key[2],
            "top1_x86": ra["top1"],
            "top1_arm64": rb["top1"],
            "top1_agree": ra["top1"] == rb["top1"],
            "max_abs_logit_diff": float(np.max(np.abs(la - lb))),
            "max_rel_logit_diff": float(np.max(np.abs(la - lb)) / max(float(np.max(np.abs(la))), 1e-6)),
            "logits_bit_identical": bool(np.array_equal(la, lb)),
            "max_abs_feature_diff": float(np.max(np.abs(fa - fb))),
            "max_rel_feature_diff": float(np.max(np.abs(fa - fb) / np.maximum(np.abs(fa), 1e-3))),
            "predict_ms_x86": ra["predict_ms_median"],
            "predict_ms_arm64_emulated": rb["predict_ms_median"],
            "features_s_x86": ra["features_s"],
            "features_s_arm64_emulated": rb["features_s"],
            "logits_x86": ra["logits"],
            "logits_arm64": rb["logits"],
        }
        if "faces_sha256" in ra:
            row["face_crops_identical"] = ra["faces_sha256"] == rb["faces_sha256"]
            row["faces_found_x86"] = ra["faces_found"]
            row["faces_found_arm64"] = rb["faces_found"]
        rows.append(row)
    for key in bk:
        rows.append({"bundle": key[0], "sample": key[1], "engine": key[2], "x86": "did not run"})
    ok = [r for r in rows if "top1_agree" in r]
    summary = {
        "errors_x86": a.get("errors", {}),
        "errors_arm64": b.get("errors", {}),
        "compared": len(ok),
        "top1_agree": sum(r["top1_agree"] for r in ok),
        "max_abs_logit_diff": max((r["max_abs_logit_diff"] for r in ok), default=None),
        "missing": [r for r in rows if "top1_agree" not in r],
    }
    result = {
        "what": "shipped bundles run in an emulated arm64 Debian bookworm root (qemu-user) vs x86_64, same "
        "samples, same pinned device wheels; see deploy/arm64_proof.md",
        "summary": summary,
        "x86": a["versions"],
        "arm64": b["versions"],
        "samples": a["samples"],
        "timings_s": timings,
        "rows": rows,
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.md:
        Path(args.md).write_text(_markdown(result, args.notes))
    print(
        f"compared {summary['compared']}: top-1 agree {summary['top1_agree']}/{summary['compared']}, "
        f"max |logit diff| {summary['max_abs_logit_diff']}"
    )
    for r in ok:
        print(
            f"  {r['bundle']:14s} {r['sample']:20s} {r['engine']:12s} {r['top1_x86']:8s} "
            f"{r['top1_arm64']:8s} {_fmt(r['max_abs_logit_diff'])}"
        )
    good = ok and summary["top1_agree"] == len(ok) and not summary["missing"]
    return 0 if good and not summary["errors_arm64"] and not summary["errors_x86"] else 1


def _markdown(res: dict, notes: str | None) -> str:
    s, x, a, t = res["summary"], res["x86"], res["arm64"], res["timings_s"]
    L = [
        "# arm64 proof: the shipped bundles on emulated arm64 (no hardware)",
        "",
        "Generated by `scripts/arm64_proof.sh` (result: `deploy/arm64_proof.json`). An arm64 Debian bookworm root "
        "(Python 3.11, as Raspberry Pi OS Bookworm) is built with `debootstrap` and run through `qemu-user-static`; "
        "the pinned device wheels (`requirements/device.txt`, aarch64 manylinux builds) and an edge-ser wheel built "
        "from this checkout are installed offline into a venv inside it; `scripts/arm64_predict.py` then writes the "
        "logits of each shipped bundle on fixed samples with the numpy and onnxruntime engines, inside the root and "
        "on the x86 host (same pins), and the two are compared.",
        "",
        f"**Result: top-1 agrees in {s['top1_agree']}/{s['compared']} bundle x sample x engine runs; largest "
        f"|logit difference| arm64 vs x86 = {_fmt(s['max_abs_logit_diff'] or 0)}.**"
        + (f" Not run: {s['missing']}." if s["missing"] else "")
        + (f" Errors on arm64: {s['errors_arm64']}." if s["errors_arm64"] else "")
        + (f" Errors on x86: {s['errors_x86']}." if s["errors_x86"] else ""),
        "",
        "| bundle | sample | engine | top-1 x86 | top-1 arm64 | agree | max abs logit diff | relative to max "
        "abs logit | bit-identical | max abs feature diff | predict ms x86 | predict ms arm64 (emulated) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        if "top1_agree" not in r:
            L.append(
                f"| {r['bundle']} | {r['sample']} | {r['engine']} | did not run on both | | | | | | | | |"
            )
            continue
        L.append(
            f"| {r['bundle']} | {r['sample']} | {r['engine']} | {r['top1_x86']} | {r['top1_arm64']} | "
            f"{'yes' if r['top1_agree'] else '**NO**'} | {_fmt(r['max_abs_logit_diff'])} | "
            f"{_fmt(r['max_rel_logit_diff'])} | "
            f"{'yes' if r['logits_bit_identical'] else 'no'} | {_fmt(r['max_abs_feature_diff'])} | "
            f"{r['predict_ms_x86']:.3f} | {r['predict_ms_arm64_emulated']:.3f} |"
        )
    face = [r for r in res["rows"] if "face_crops_identical" in r]
    if face:
        r = face[0]
        L += [
            "",
            f"AV bundle face crops (OpenCV Haar cascade, aarch64 wheel under qemu): faces found x86 "
            f"{sum(r['faces_found_x86'])}/6, arm64 {sum(r['faces_found_arm64'])}/6; the 6 uint8 crops are "
            f"{'byte-identical' if r['face_crops_identical'] else 'NOT byte-identical'} across the two.",
        ]
    L += ["", "## Versions", "", "| | x86 host | arm64 root (emulated) |", "|---|---|---|"]
    for k in ("machine", "uname", "python", "numpy", "onnxruntime", "opencv", "edge_ser"):
        L.append(f"| {k} | {x.get(k, '')} | {a.get(k, '')} |")
    L.append(
        f"| onnxruntime providers | {x.get('onnxruntime_providers')} | {a.get('onnxruntime_providers')} |"
    )
    L.append(
        f"| numpy SIMD in use | {', '.join(x.get('numpy_simd_found', []))} | "
        f"{', '.join(a.get('numpy_simd_found', []))} |"
    )
    if t:
        L += [
            "",
            "## Wall times of the proof (seconds)",
            "",
            "'this run' is the run that wrote this file (cached steps are skipped on reruns); 'uncached' is the "
            "last run that really did the step (first build of the root, venvs, installs), on this 2-core host.",
            "",
            "| step | this run | uncached |",
            "|---|---|---|",
        ]
        for k, v in t.items():
            v = v if isinstance(v, dict) else {"this_run": v}
            c = v.get("last_uncached")
            L.append(f"| {k} | {v.get('this_run')} | {'' if c is None else c} |")
    L += ["", "Samples (sha256, the same bytes on both sides):", ""]
    L += [f"- `{k}` {v[:16]}..." for k, v in res["samples"].items()]
    L += [
        "",
        "## What this proves",
        "",
        "- The pinned device set installs on arm64 Debian bookworm / CPython 3.11 from aarch64 wheels alone "
        "(`pip install --no-index`), with no compiler and no torch / tensorflow / librosa; edge-ser imports none "
        "of them (checked in the run).",
        "- Bundle verification (sha256, packed sub-byte weights), the numpy feature front end (STFT, mel, MFCC, "
        "chroma, resampling), the pure-numpy graph engine, onnxruntime's aarch64 CPU kernels and OpenCV's Haar "
        "face crop give the same decisions on arm64 as on x86, with logits equal to float32 rounding.",
        "",
        "## What emulation cannot prove",
        "",
        "- **Real-time performance.** qemu-user translates every aarch64 instruction; the arm64 timings above are "
        "emulation times on an x86 host and say nothing about a Pi 4/5 or a Jetson. Use `edge-ser bench` on the "
        "device against `firmware_profiles/`.",
        "- **NEON / SVE speed or kernel selection on real cores.** qemu reports whatever CPU features it "
        "emulates; onnxruntime and numpy may pick different kernels (e.g. dot-product / i8mm / SVE paths, "
        "thread counts) on a Cortex-A72/A76 or Orin's A78AE, so last-ulp differences there may differ from "
        "these.",
        "- **Camera and microphone drivers.** No V4L2 / libcamera, ALSA / PortAudio devices exist in the root "
        "(libportaudio2 is not even installed); sounddevice and live capture are not exercised.",
        "- **GPU / accelerators.** No CUDA / TensorRT (Jetson) or any NPU: only onnxruntime's "
        "CPUExecutionProvider ran. TFLite engines were not part of this proof.",
        "- **Raspberry Pi OS specifics** (its kernel, its own Python build, piwheels, memory of a 1-4 GB board, "
        "thermal throttling): the root is plain Debian bookworm arm64.",
    ]
    if notes:
        L += ["", "## Notes on how it ran", "", notes.strip()]
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("samples", help="write the fixed samples (x86 side)")
    s.add_argument("--out", required=True)
    s.add_argument("--data", default=os.environ.get("EDGE_SER_DATA"), help="datasets root (optional)")
    s.set_defaults(func=cmd_samples)
    r = sub.add_parser("run", help="logits of bundles on the samples")
    r.add_argument("bundles", nargs="+")
    r.add_argument("--samples", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--engines", nargs="+", default=["numpy", "onnxruntime"])
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--repeat", type=int, default=3, help="timed predict calls after the first (default 3)")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("compare", help="compare an x86 and an arm64 run")
    c.add_argument("--x86", required=True)
    c.add_argument("--arm64", required=True)
    c.add_argument("--timings", default=None)
    c.add_argument("--json", required=True)
    c.add_argument("--md", default=None)
    c.add_argument("--notes", default=None, help="Markdown appended to the report")
    c.set_defaults(func=cmd_compare)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
