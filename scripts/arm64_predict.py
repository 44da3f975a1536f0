#!/usr/bin/env python3
"""Logits of the shipped bundles on fixed samples, for the arm64 emulation proof (scripts/arm64_proof.sh).

Device dependencies only (numpy, onnxruntime, opencv-python-headless): no torch, tensorflow or librosa, so the
same file runs inside the emulated arm64 Debian root and on the x86 host.

    arm64_predict.py samples --out DIR [--data ../shared/datasets]   # x86 side, once: the fixed inputs
    arm64_predict.py run --samples DIR --out X.json BUNDLE...          # both sides: logits per bundle/engine
    arm64_predict.py compare --x86 A.json --arm64 B.json --timings T.json --json R.json --md R.md

The samples are written once (on x86) and copied into the root, so both sides read the same bytes (their
sha256 is in every result): a synthetic 16 kHz WAV made from integers (no transcendental functions, so it is
bit-identical wherever it is generated), an EMODB utterance and a FER-2013 validation image (a 48x48 grey
JPEG, decoded on each side) when the data sets are present, and 6 video frames (a FER-2013 face pasted on a
plain background, or a drawn face when FER-2013 is absent).

Each bundle takes every sample its input kind can take (`_cases`): audio alone (`Recognizer.predict_file` on
a WAV) when it hears and needs no face or is a fusion bundle, a WAV with the frames' face crops
(`Recognizer.predict_audio(y, sr, faces=...)`, the crops made by `FaceCropper` as the live loop makes them)
when it takes faces, the frames' crops alone for a face-only bundle, and the image (`predict_file`) when the
kind reads images. Every prediction goes through `edge_ser.Recognizer` (speaker statistics reset first, so a
bundle with speaker normalisation standardises with its training prior plus that one clip, as a fresh session
does); the logits recorded are what the Recognizer's engine returned, and the features the inputs it was given.
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
from functools import partial
from pathlib import Path

import numpy as np

SR = 16000
EMODB_CLIP = "03a01Fa.wav"  # speaker 03, text a01, happiness (F = Freude), version a
FER_FACE = ("happy", "Training_10070997.jpg")  # pasted into the video frames
FER_IMAGE = ("surprise", "PublicTest_10754294.jpg")  # the face-only image sample (FER-2013 validation)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
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
    image = data / "fer2013" / "validation" / FER_IMAGE[0] / FER_IMAGE[1] if data else None
    if image is not None and image.is_file():
        shutil.copyfile(image, out / f"fer_{FER_IMAGE[1]}")
        info[f"fer_{FER_IMAGE[1]}"] = f"FER-2013 validation/{FER_IMAGE[0]}/{FER_IMAGE[1]} (48x48 grey JPEG)"
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


def _cases(kind, samples: Path) -> list[tuple[str, Path | None, Path | None, bool]]:
    """The samples a bundle's input kind can take, as (row name, audio file, image file, with the frames):
    audio alone when it hears and needs no face (or fuses, so a face is optional); each WAV with the frames
    when it takes faces and audio; the frames alone when it takes faces only; the image when it reads images."""
    wavs = sorted(samples.glob("*.wav"))
    images = sorted(p for p in samples.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    frames = (samples / "frames.npy").is_file()
    out: list[tuple[str, Path | None, Path | None, bool]] = []
    if kind.hears and (not kind.faces or kind.name == "fusion"):  # a fusion bundle leaves a missing face out
        out += [(w.name, w, None, False) for w in wavs]
    if kind.hears and kind.faces and frames:
        out += [(f"{w.name}+frames.npy", w, None, True) for w in wavs]
    if not kind.hears and kind.faces and frames:
        out.append(("frames.npy", None, None, True))
    out += [(p.name, None, p, False) for p in images if p.suffix.lower() in kind.file_extensions]
    return out


def _flat(v: object) -> list[np.ndarray]:
    """Every number of a model input, in order: arrays, a fusion row's {branch: inputs or None} dicts."""
    if v is None:
        return []
    if isinstance(v, dict):
        return [a for k in v for a in _flat(v[k])]
    a = np.asarray(v)
    if a.dtype == object:
        return [b for item in a.ravel() for b in _flat(item)]
    return [a.astype(np.float64).ravel()]


def _crop_record(crops: list, size: int) -> dict[str, object]:
    """What to record about face crops: found, the face and crop boxes, the crop side, the uint8 crops' sha256."""
    return {
        "faces_found": [bool(c.found) for c in crops],
        "face_boxes": [list(map(int, c.box)) if c.found else None for c in crops],
        "crop_boxes": [list(map(int, c.crop_box)) for c in crops],
        "crop_size": int(size),
        "faces_sha256": hashlib.sha256(np.stack([c.image for c in crops]).tobytes()).hexdigest(),
    }


def _crops(kind, samples: Path) -> tuple[list[object], dict[str, object]]:
    """The frames' face crops by the bundle's face crop (`FaceCropper.crop_or_center`, as the live loop makes
    them), and what to record about them (`_crop_record`)."""
    from edge_ser.vision.face import FaceCropper

    frames = np.load(samples / "frames.npy")
    cropper = FaceCropper(kind.face_crop)
    crops = [cropper.crop_or_center(f) for f in frames]
    return crops, _crop_record(crops, kind.face_crop.size)


def _image_record(kind, image: Path) -> dict[str, object]:
    """For an image sample, the same decode and crop `predict_file` makes, recorded: the decoded pixels'
    sha256 (OpenCV's JPEG decoder), the crop (`_crop_record`), and the crop box resized with
    `cv2.INTER_LINEAR_EXACT` instead (the bit-exact variant of the upscale `FaceCropper.cut` uses for a face box
    smaller than the crop), to tell which step a difference comes from."""
    import cv2

    from edge_ser.vision.face import FaceCropper, to_grey

    pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
    crop = FaceCropper(kind.face_crop).crop_or_center(pixels)
    x, y, w, h = crop.crop_box
    size = kind.face_crop.size
    patch = np.ascontiguousarray(to_grey(pixels)[y : y + h, x : x + w])
    exact = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR_EXACT)
    return {
        "image_sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
        "crop_linear_exact_sha256": hashlib.sha256(exact.tobytes()).hexdigest(),
        **_crop_record([crop], size),
    }


def cmd_run(args: argparse.Namespace) -> int:
    from edge_ser.bundle import load_bundle

    samples = Path(args.samples)
    out: dict[str, object] = {"versions": _versions(), "samples": {}, "results": []}
    for p in sorted(samples.iterdir()):
        if p.suffix.lower() in (".wav", ".npy", *IMAGE_EXTENSIONS):
            out["samples"][p.name] = sha256(p)  # type: ignore[index]
    out["errors"] = {}
    for bpath in args.bundles:
        try:
            _run_bundle(bpath, samples, args, out, load_bundle)
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


class _Tap:
    """Records every call of an engine's `predict` (its inputs, logits and time) and passes it on."""

    def __init__(self, predict) -> None:
        self.predict = predict
        self.calls: list[tuple[object, np.ndarray, float]] = []

    def __call__(self, x):
        t0 = time.perf_counter()
        logits = self.predict(x)
        self.calls.append((x, np.asarray(logits), time.perf_counter() - t0))
        return logits


def _run_bundle(bpath, samples, args, out, load_bundle) -> None:
    from edge_ser import Recognizer
    from edge_ser.audio import load

    t0 = time.perf_counter()
    bundle = load_bundle(
        bpath
    )  # verifies every file's sha256 and the packed weights (a fusion's branches too)
    t_load = time.perf_counter() - t0
    name = Path(bpath).name
    kind = bundle.input_kind
    cases = _cases(kind, samples)
    if not cases:
        raise RuntimeError(f"no sample fits input kind {kind.name} (hears {kind.hears}, faces {kind.faces})")
    print(f"{name}: {kind.name} {bundle.input_names}, verified in {t_load:.2f} s", flush=True)
    crops, crop_rec = _crops(kind, samples) if any(c[3] for c in cases) else (None, {})
    for eng in args.engines:
        t0 = time.perf_counter()
        rec = Recognizer(bundle, engine=eng, threads=args.threads)
        t_build = time.perf_counter() - t0
        tap = _Tap(rec.engine.predict)
        rec.engine.predict = tap  # the Recognizer's own engine, watched
        for sample, wav, image, with_frames in cases:
            if not with_frames:  # a file, as `edge-ser predict` reads it
                call = partial(rec.predict_file, image if image is not None else wav)
            else:  # audio in memory (none for a face-only bundle) with the frames' crops
                y, sr = load(wav) if wav is not None else (np.zeros(0, np.float32), SR)
                call = partial(rec.predict_audio, y, sr, faces=crops)
            runs = []
            for _ in range(1 + args.repeat):  # the first untimed, then `repeat` timed; each a fresh speaker
                rec.reset_speaker()
                tap.calls.clear()
                p = call()
                if len(tap.calls) != 1:
                    raise RuntimeError(f"{sample}: {len(tap.calls)} engine calls for one clip, expected 1")
                runs.append((p, *tap.calls[0]))
            p, x, logits, _ = runs[0]
            for _, _, again, _ in runs[1:]:
                if not np.array_equal(again, logits):
                    raise SystemExit(f"{name}/{eng}/{sample}: predict is not repeatable")
            t_run = [r[3] for r in runs[1:]]
            row = np.asarray(logits, dtype=np.float32).ravel()  # every row (a patch model has one per patch)
            out["results"].append(  # type: ignore[union-attr]
                {
                    "bundle": name,
                    "kind": kind.name,
                    "manifest_sha256": sha256(
                        Path(bpath) / "manifest.json"
                    ),  # which version of the bundle ran
                    "sample": sample,
                    "engine": eng,
                    "describe": rec.engine.describe(),
                    "logits": row.tolist(),
                    "top1": p.label,
                    "probabilities": list(p.probabilities.values()),
                    "features": np.concatenate(_flat(x)).tolist(),
                    "bundle_verify_s": round(t_load, 4),
                    "features_s": round(float(np.median([r[0].timings["features"] for r in runs])) / 1e3, 4),
                    "engine_build_s": round(t_build, 4),
                    "predict_ms_median": round(float(np.median(t_run)) * 1e3, 3),
                    **(crop_rec if with_frames else {}),
                    **(_image_record(kind, image) if image is not None and kind.face_crop else {}),
                }
            )
            print(
                f"  {sample:30s} {eng:12s} top1={p.label:8s} predict {np.median(t_run) * 1e3:.2f} ms  "
                f"logits {np.round(row[:8].astype(np.float64), 4).tolist()}{' ...' if row.size > 8 else ''}",
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
        if fa.shape != fb.shape:  # e.g. another number of face crops: no element-wise difference
            fa, fb = np.zeros(1), np.full(1, np.inf)
        row = {
            "bundle": key[0],
            "kind": ra.get("kind"),
            "manifest_sha256": ra.get("manifest_sha256"),
            "same_bundle": ra.get("manifest_sha256") == rb.get("manifest_sha256"),
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
            row["crop_boxes_x86"] = ra.get("crop_boxes")
            row["crop_boxes_arm64"] = rb.get("crop_boxes")
            row["crop_size"] = ra.get("crop_size")
            row["faces_found_x86"] = ra["faces_found"]
            row["faces_found_arm64"] = rb["faces_found"]
        if "image_sha256" in ra:
            row["decoded_image_identical"] = ra["image_sha256"] == rb["image_sha256"]
            row["linear_exact_crop_identical"] = (
                ra["crop_linear_exact_sha256"] == rb["crop_linear_exact_sha256"]
            )
        rows.append(row)
    for key in bk:
        rows.append({"bundle": key[0], "sample": key[1], "engine": key[2], "x86": "did not run"})
    ok = [r for r in rows if "top1_agree" in r]
    per_bundle: dict[str, dict[str, object]] = {}
    for r in ok:
        pb = per_bundle.setdefault(
            r["bundle"],
            {"kind": r["kind"], "manifest_sha256": r["manifest_sha256"], "rows": 0, "top1_agree": 0,
             "max_abs_logit_diff": 0.0},
        )  # fmt: skip
        if not r["same_bundle"]:
            pb["manifest_sha256"] = "differs between the two runs"
        pb["rows"] += 1  # type: ignore[operator]
        pb["top1_agree"] += int(r["top1_agree"])  # type: ignore[operator]
        pb["max_abs_logit_diff"] = max(pb["max_abs_logit_diff"], r["max_abs_logit_diff"])  # type: ignore[call-overload]
    summary = {
        "errors_x86": a.get("errors", {}),
        "errors_arm64": b.get("errors", {}),
        "compared": len(ok),
        "top1_agree": sum(r["top1_agree"] for r in ok),
        "max_abs_logit_diff": max((r["max_abs_logit_diff"] for r in ok), default=None),
        # the runs whose face crops (if any) are byte-identical: model inputs equal up to float rounding
        "max_abs_logit_diff_same_crops": max(
            (r["max_abs_logit_diff"] for r in ok if r.get("face_crops_identical", True)), default=None
        ),
        "missing": [r for r in rows if "top1_agree" not in r],
        "disagree": [f"{r['bundle']}/{r['sample']}/{r['engine']}" for r in ok if not r["top1_agree"]],
        "per_bundle": per_bundle,
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
            f"  {r['bundle']:22s} {r['sample']:30s} {r['engine']:12s} {r['top1_x86']:8s} "
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
        + (
            f" Where the face crops are byte-identical (every run but those on an image whose upscaled crop "
            f"differs, see 'Face crops' below) it is {_fmt(s['max_abs_logit_diff_same_crops'] or 0)}."
            if s["max_abs_logit_diff_same_crops"] != s["max_abs_logit_diff"]
            else ""
        )
        + (f" **Top-1 differs in: {', '.join(s['disagree'])}.**" if s["disagree"] else "")
        + (f" Not run: {s['missing']}." if s["missing"] else "")
        + (f" Errors on arm64: {s['errors_arm64']}." if s["errors_arm64"] else "")
        + (f" Errors on x86: {s['errors_x86']}." if s["errors_x86"] else ""),
        "",
        "| bundle | input kind | manifest sha256 | runs | top-1 agree | largest abs logit diff |",
        "|---|---|---|---|---|---|",
        *(
            f"| {n} | {b['kind']} | {str(b['manifest_sha256'])[:16]} | {b['rows']} | {b['top1_agree']}/{b['rows']} "
            f"| {_fmt(b['max_abs_logit_diff'])} |"
            for n, b in s["per_bundle"].items()
        ),
        "",
        "The manifest sha256 names the version of each bundle that ran (its manifest pins every file's sha256): "
        "a bundle re-shipped since has a new one, and this proof says nothing about it until it is run again.",
        "",
        "Samples per input kind (`arm64_predict.py`, `_cases`): audio kinds take each WAV (`predict_file`); the "
        "audio-visual kind each WAV with the 6 frames' face crops (`predict_audio(y, sr, faces=...)`); the face "
        "kind the frames' crops and the FER-2013 image (`predict_file`); the fusion kind each WAV alone (audio "
        "branch only), each WAV with the crops (both branches) and the image (face branch only). Logits are what "
        "the `Recognizer`'s engine returned (a fusion bundle: the log fused probabilities); features are the "
        "inputs it was given (after speaker normalisation, fresh per prediction). 'relative' is the difference over "
        "the largest abs logit.",
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
    face: dict[tuple[str, str], list[dict]] = {}
    for r in res["rows"]:
        if "face_crops_identical" in r:
            what = "the 6 frames" if "frames.npy" in r["sample"] else f"`{r['sample']}`"
            face.setdefault((r["bundle"], what), []).append(r)
    if face:
        L += [
            "",
            "Face crops (OpenCV Haar cascade and resize, aarch64 wheel under qemu), per bundle's face crop:",
            "",
        ]
        upscaled_differ, downscaled_same = [], []
        for (n, what), rs in face.items():
            r, same = rs[0], all(q["face_crops_identical"] for q in rs)
            size, boxes = r.get("crop_size"), r.get("crop_boxes_x86") or []
            up = size is not None and any(b[2] < size for b in boxes)
            decoded = [q["decoded_image_identical"] for q in rs if "decoded_image_identical" in q]
            L.append(
                f"- {n}, {what}: faces found x86 {sum(r['faces_found_x86'])}/{len(r['faces_found_x86'])}, arm64 "
                f"{sum(r['faces_found_arm64'])}/{len(r['faces_found_arm64'])}"
                + (
                    f"; crop boxes {'equal' if r.get('crop_boxes_x86') == r.get('crop_boxes_arm64') else 'DIFFERENT'}"
                    f", {'upscaled' if up else 'downscaled'} to {size}x{size}"
                    if size
                    else ""
                )
                + (
                    f"; decoded JPEG pixels {'byte-identical' if all(decoded) else 'NOT byte-identical'}"
                    if decoded
                    else ""
                )
                + f"; the uint8 crops are {'byte-identical' if same else '**NOT byte-identical**'} across the two"
                + (
                    ""
                    if same
                    else f" (model inputs differ by up to {max(q['max_abs_feature_diff'] for q in rs) * 255:.2g}/255)"
                )
                + "."
            )
            if same and size and not up:
                downscaled_same.append(f"{n} on {what}")
            exact = [q["linear_exact_crop_identical"] for q in rs if "linear_exact_crop_identical" in q]
            if not same and up and all(decoded) and r.get("crop_boxes_x86") == r.get("crop_boxes_arm64"):
                upscaled_differ.append((f"{n} on {what}", bool(exact) and all(exact)))
        if upscaled_differ:
            L += [
                "",
                f"Where the crops differ ({'; '.join(w for w, _ in upscaled_differ)}), the decoded pixels and the "
                "face and crop boxes are the same on both sides: the difference is the resize of a face box smaller "
                "than the crop, which `FaceCropper.cut` upscales with `cv2.INTER_LINEAR`, and OpenCV's x86 and "
                "aarch64 builds round that upscale differently"
                + (
                    " (the same patch resized with the bit-exact `cv2.INTER_LINEAR_EXACT` is byte-identical on both)"
                    if all(e for _, e in upscaled_differ)
                    else ""
                )
                + "."
                + (
                    " The crops downscaled with `cv2.INTER_AREA` (a face box at least as large as the crop, as a camera "
                    f"frame's face usually is: {'; '.join(downscaled_same)}) are byte-identical."
                    if downscaled_same
                    else ""
                )
                + " The logits then differ by the amounts in the table.",
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
            "last run that really did the step (built the root, created the venvs), on this 2-core host.",
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
        "- Bundle verification (sha256, packed sub-byte weights, a fusion bundle's branches), the numpy feature "
        "front end (STFT, mel, MFCC, chroma, pitch and clip functionals, resampling), per-speaker normalisation, "
        "the pure-numpy graph engine, onnxruntime's aarch64 CPU kernels, OpenCV's JPEG decoder and Haar face crop "
        "and the late-fusion rule, all through `edge_ser.Recognizer`, "
        + (
            f"give the same decisions on arm64 as on x86 (every one of the {s['compared']} runs), with logits "
            f"within {_fmt(s['max_abs_logit_diff'] or 0)}"
            + (
                f" ({_fmt(s['max_abs_logit_diff_same_crops'] or 0)} where the face crops are byte-identical)."
                if s["max_abs_logit_diff_same_crops"] != s["max_abs_logit_diff"]
                else "."
            )
            if s["compared"] and not s["disagree"] and not s["missing"]
            else f"do NOT give the same decisions everywhere: top-1 differs in {', '.join(s['disagree']) or 'none'}"
            + (f"; not compared: {len(s['missing'])} runs" if s["missing"] else "")
            + "."
        ),
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
