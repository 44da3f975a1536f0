"""av_cnn per-clip latency on this machine: the packed bundle on every engine vs the fp32 ONNX model, one run.

    python benchmarks/av_latency.py [--bundle bundles/av_cnn] [--repeats 300] [--threads 1]

Side by side, interleaved (A B C A B C ...), batch 1 (one clip: 6 faces + 6 MFCC segments), threads pinned:
- "fp32 ONNX": the float model as one self-contained ONNX file (the bundle's graph with its weights as float32
  initializers, i.e. what a plain fp32 export is) on onnxruntime: the reference;
- the bundle on onnxruntime (weights unpacked from the .esq at load), on the pure-numpy engine, and on each
  TFLite variant it carries.
Then the clip pre-processing the device adds per clip (6 Haar face crops on 640x480 frames, 6 MFCC segments
of a 3 s clip), timed the same way, so the whole per-clip cost is visible next to the seed's ~190 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.engines import engines_for, load_engine  # noqa: E402

TARGET_MS = 5.0
SEED_MS = (188, 200)


def fp32_onnx(bundle) -> bytes:
    """The bundle's graph as one self-contained float32 ONNX file (the dequantized weights inlined)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.ModelProto()
    proto.ParseFromString(bundle.onnx_bytes())  # external data markers only: nothing is loaded from disk
    weights = bundle.dequantized()
    for t in proto.graph.initializer:
        t.CopyFrom(numpy_helper.from_array(np.asarray(weights[t.name], dtype=np.float32), t.name))
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def ort_session(model: bytes, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def clip(seed: int = 0):
    """One realistic clip: 75 video frames of 640x480 with a drawn face, and 3 s of synthetic speech."""
    import cv2

    from converters.data.synthetic import SyntheticSpec, generate
    from converters.data.synthetic_av import SyntheticAVSpec, generate_faces

    faces = generate_faces(SyntheticAVSpec(n_per_class=1, frames=6, seed=seed))[0][0]
    frames = []
    for i in range(75):
        f = np.full((480, 640, 3), 90, np.uint8)
        face = cv2.resize(faces[i % len(faces)], (240, 240))
        f[100:340, 200:440] = face[..., None] if face.ndim == 2 else face
        frames.append(f)
    wave, _, _ = generate(SyntheticSpec(n_per_class=1, sr=16000, duration=3.0, seed=seed))[0]
    return frames, wave


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=REPO / "bundles" / "av_cnn")
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    rng = np.random.default_rng(0)
    x = {n: rng.random((1, *shape), dtype=np.float32) for n, shape in bundle.input_kind.input_shapes.items()}
    if "audio" in x:  # MFCC-like values for the audio input
        x["audio"] = (x["audio"] - 0.5) * 40

    ref = ort_session(fp32_onnx(bundle), args.threads)
    fns = {"fp32 ONNX (onnxruntime)": lambda: ref.run(None, x)}
    outs = {"fp32 ONNX (onnxruntime)": ref.run(None, x)[0]}
    for name in engines_for(bundle):
        eng = load_engine(bundle, name, threads=args.threads)
        label = f"bundle on {name}"
        fns[label] = (lambda e: lambda: e.predict(x))(eng)
        outs[label] = eng.predict(x)
    inner = 20
    samples = interleaved(fns, repeats=args.repeats, inner=inner)

    # device pre-processing per clip
    from edge_ser.inputs.av import audio_segments, clip_inputs
    from edge_ser.vision.face import FaceCropper
    from edge_ser.vision.video import sample_frame_indices

    frames, wave = clip()
    spec = bundle.input_kind.spec  # an audio-visual bundle's AVInputSpec (this benchmark is about one)
    cropper = FaceCropper(bundle.input_kind.face_crop)
    idx = sample_frame_indices(len(frames), spec.frames)
    pre = {
        "6 Haar face crops (640x480)": lambda: [cropper.crop_or_center(frames[int(i)]) for i in idx],
        "6 MFCC segments (3 s clip)": lambda: audio_segments(wave, 16000, spec.feature_spec, spec.segments),
        "whole clip_inputs": lambda: clip_inputs(frames, wave, 16000, spec, cropper.crop_or_center),
    }
    pre_samples = interleaved(pre, repeats=max(10, args.repeats // 10), inner=1)
    found = sum(cropper.crop_or_center(frames[int(i)]).found for i in idx)

    ref_ms = statistics.median(samples["fp32 ONNX (onnxruntime)"])
    rows = []
    for label, s in samples.items():
        med, p99 = statistics.median(s), float(np.percentile(s, 99))
        top = int(np.argmax(outs[label])) == int(np.argmax(outs["fp32 ONNX (onnxruntime)"]))
        rows.append(
            {"engine": label, "median_ms": med, "p99_ms": p99, "vs_fp32": med / ref_ms, "same_top1": top}
        )
    pre_rows = [
        {"stage": k, "median_ms": statistics.median(v), "p99_ms": float(np.percentile(v, 99))}
        for k, v in pre_samples.items()
    ]
    sizes = {n: len(b) for n, b in bundle.files.items()}
    md = [
        f"# av_cnn per-clip latency: {bundle.name} ({args.bundle.name}), batch 1, {args.threads} thread(s)",
        "",
        f"Bundle: {bundle.describe()}.",
        "Files: " + ", ".join(f"{n} {v / 1000:.1f} KB" for n, v in sizes.items()) + ".",
        "",
        f"Inference, interleaved in one run ({args.repeats} samples of {inner} calls each):",
        "",
        "| engine | median ms/clip | p99 ms | vs fp32 ONNX | same top-1 |",
        "|---|---|---|---|---|",
    ] + [
        f"| {r['engine']} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} | {r['vs_fp32']:.2f}x | {r['same_top1']} |"
        for r in rows
    ]
    worst = max(r["median_ms"] for r in rows)
    md += [
        "",
        f"Target <= {TARGET_MS} ms per clip: every engine is at or under {worst:.2f} ms "
        f"({'met' if worst <= TARGET_MS else 'NOT met'}); the seed reports {SEED_MS[0]}-{SEED_MS[1]} ms.",
        "",
        "Device pre-processing per clip (not part of the model; the live runtime does it once per window):",
        "",
        "| stage | median ms | p99 ms |",
        "|---|---|---|",
    ] + [f"| {r['stage']} | {r['median_ms']:.2f} | {r['p99_ms']:.2f} |" for r in pre_rows]
    md += ["", f"Haar cascade found the face in {found} of {len(idx)} sampled frames."]
    text = "\n".join(md)
    print(text)
    write_results(
        f"av_latency_{args.bundle.name}",
        {"bundle": str(args.bundle), "rows": rows, "preprocessing": pre_rows, "file_bytes": sizes},
        text,
    )


if __name__ == "__main__":
    run_main(main)
