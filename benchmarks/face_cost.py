"""What a face crop costs per frame, side by side in one run: full-resolution Haar, downscaled Haar, tracker.

    python benchmarks/face_cost.py [--repeats 5]

Frames: 1280x720 and 640x480 BGR with a drawn face (it drifts a few pixels per frame, as a person does),
cropped to the model's 64x64 grey face by
- "full resolution": FaceCropper with detect_width=0 (the cascade on the whole frame),
- "downscaled 320": FaceCropper's default (the frame shrunk to 320 px wide before detection),
- "tracker, every 5th": edge_ser.live.face_track.FaceTracker (full detection every 5th crop, a scaled search
  around the last face in between) - what `edge-ser run` uses.
One thread; interleaved; median ms per frame and the share of frames with a face found.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from converters.data.synthetic_av import SyntheticAVSpec, generate_faces  # noqa: E402
from edge_ser.live.face_track import FaceTracker, TrackSpec  # noqa: E402
from edge_ser.vision.face import FaceCropper, FaceCropSpec  # noqa: E402


def frames(width: int, height: int, n: int = 50) -> list[np.ndarray]:
    side = height // 2
    faces = generate_faces(
        SyntheticAVSpec(n_per_class=1, frames=n, frame_size=(side, side), seed=1, labels=("happy",))
    )
    out = []
    for i, f in enumerate(faces[0][0]):
        frame = np.full((height, width, 3), 80, np.uint8)
        x, y = width // 3 + 2 * i, height // 4 + i
        frame[y : y + side, x : x + side] = f
        out.append(frame)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    cv2.setNumThreads(1)
    rows = []
    for w, h in ((1280, 720), (640, 480)):
        clip = frames(w, h)
        methods = {
            "full resolution": FaceCropper(FaceCropSpec(detect_width=0)).crop_or_center,
            "downscaled 320": FaceCropper(FaceCropSpec()).crop_or_center,
            "tracker, every 5th": FaceTracker(FaceCropSpec(), TrackSpec(every=5)),
        }
        times = {k: [] for k in methods}
        found = {k: 0 for k in methods}
        for _ in range(args.repeats):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                for f in clip:
                    found[name] += fn(f).found
                times[name].append((time.perf_counter() - t0) * 1e3 / len(clip))
        full = statistics.median(times["full resolution"])
        for name in methods:
            med = statistics.median(times[name])
            rows.append(
                {
                    "frame": f"{w}x{h}",
                    "method": name,
                    "ms": med,
                    "vs_full": full / med,
                    "found": found[name] / (args.repeats * len(clip)),
                }
            )
    md = [
        "# Face crop cost per frame (one thread, interleaved)",
        "",
        "| frame | method | median ms / frame | speed-up vs full resolution | face found |",
        "|---|---|---|---|---|",
    ] + [
        f"| {r['frame']} | {r['method']} | {r['ms']:.2f} | {r['vs_full']:.1f}x | {r['found']:.0%} |"
        for r in rows
    ]
    md += [
        "",
        "`edge-ser run` crops 6 faces per 3 s window (2 per second at the default hop), not every camera frame,",
        "so the face stage costs 2 x the tracker's figure per second of video.",
    ]
    text = "\n".join(md)
    print(text)
    write_results("face_cost", {"rows": rows}, text)


if __name__ == "__main__":
    run_main(main)
