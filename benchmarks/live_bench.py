"""The live pipeline for 5 minutes on file sources in real time: `edge-ser bench --live` on generated media.

    python benchmarks/live_bench.py [--bundle bundles/av_cnn] [--seconds 300]
    python benchmarks/live_bench.py --bundle bundles/ser_emodb --speech emodb     # real speech, audio only

Media (generated, deterministic, kept in a temp folder): `seconds` of synthetic speech (2 s utterances of
every class with 1 s pauses, so the voice gate closes now and then) and a 640x480 25 fps video of a drawn
face that moves around the frame and leaves it for 10 s every minute (so the tracker re-detects and the
pipeline falls back). With --speech emodb / ravdess the speech is the corpus' own clips instead (every
n-th clip in sorted order, 1 s pauses between them), and a bundle without a face input gets no video. The
bench runs `edge-ser bench --live` on them, paced in real time: 2 updates/s. Results: live_bench.{md,json}
for the default bundle, live_bench_<bundle>.{md,json} for another.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import run_main  # noqa: E402


def _corpus_clips(name: str, sr: int, seconds: float) -> list:
    """Clips of a real corpus, spread over its speakers, enough for `seconds` of audio with 1 s pauses."""
    from converters.pipeline import load_records
    from edge_ser.audio import load

    _, records = load_records(name, None)
    step = max(1, len(records) // max(1, int(seconds / 3)))
    return [load(r.source, sr=sr)[0] for r in records[::step]]


def make_media(
    folder: Path, seconds: float, speech: str = "synthetic", *, video: bool = True
) -> tuple[Path, Path | None]:
    """The speech WAV and, with `video`, the face video (None without: an audio-only bundle needs none)."""
    import cv2
    import numpy as np

    from converters.data.synthetic import SyntheticSpec, generate
    from converters.data.synthetic_av import SyntheticAVSpec, generate_faces
    from edge_ser.audio import write_wav

    sr = 16000
    if speech == "synthetic":
        clips = [w for w, _, _ in generate(SyntheticSpec(n_per_class=4, sr=sr, duration=2.0, seed=7))]
    else:
        clips = _corpus_clips(speech, sr, seconds)
    gap = np.zeros(sr, np.float32)
    parts, n, i = [], 0, 0
    while n < seconds * sr:
        parts += [clips[i % len(clips)], gap]
        n += clips[i % len(clips)].size + gap.size
        i += 1
    y = np.concatenate(parts)[: int(seconds * sr)].astype(np.float32)
    wav = write_wav(folder / "speech.wav", y, sr)
    if not video:
        return wav, None
    faces = generate_faces(
        SyntheticAVSpec(n_per_class=1, frames=50, frame_size=(240, 240), seed=1, labels=("happy",))
    )[0][0]
    out = folder / "face.mp4"
    fps = 25
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for k in range(int(seconds * fps)):
        t = k / fps
        frame = np.full((480, 640, 3), 70, np.uint8)
        if t % 60 < 50:  # the face leaves the frame for 10 s every minute
            x = int(200 + 150 * np.sin(2 * np.pi * t / 20))
            yy = int(120 + 60 * np.sin(2 * np.pi * t / 13))
            frame[yy : yy + 240, x : x + 240] = faces[k % len(faces)]
        writer.write(frame)
    writer.release()
    return wav, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=REPO / "bundles" / "av_cnn")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--engine", default="onnxruntime")
    ap.add_argument(
        "--speech",
        choices=("synthetic", "emodb", "ravdess"),
        default="synthetic",
        help="the speech played: generated, or a corpus' own clips (needs the data set)",
    )
    ap.add_argument(
        "--vad-steady",
        type=float,
        default=None,
        help="passed on to `edge-ser bench --live` (the voice gate's steady-sound seconds; default: its own)",
    )
    args = ap.parse_args()
    import json

    from edge_ser.bundle import load_bundle

    faces = load_bundle(args.bundle).input_kind.faces > 0  # a bundle without a face input gets no video
    default = args.bundle.resolve() == (REPO / "bundles" / "av_cnn").resolve()
    name = "live_bench" + ("" if default else f"_{args.bundle.name}")
    name += "" if args.seconds >= 300 else "_partial"
    with tempfile.TemporaryDirectory() as tmp:
        wav, video = make_media(Path(tmp), args.seconds, args.speech, video=faces)
        print(f"media ready ({args.seconds:g} s); running the live pipeline in real time...", flush=True)
        cmd = [
            sys.executable,
            "-m",
            "edge_ser",
            "bench",
            "--live",
            str(args.bundle),
            "--audio-file",
            str(wav),
            *(["--video-file", str(video)] if faces else []),
            "--engine",
            args.engine,
            "--threads",
            "1",
            *(["--vad-steady", f"{args.vad_steady:g}"] if args.vad_steady is not None else []),
            "--out",
            str(REPO / "benchmarks" / "results" / name),
        ]
        env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        import os

        subprocess.run(cmd, check=True, env={**os.environ, **env})
    # the results name the command that reproduces them, not the temp files it passed on
    made_by = "python benchmarks/live_bench.py" + (
        f" --seconds {args.seconds:g}" if args.seconds != 300 else ""
    )
    if not default:
        made_by += f" --bundle {args.bundle}"
    if args.speech != "synthetic":
        made_by += f" --speech {args.speech}"
    if args.vad_steady is not None:
        made_by += f" --vad-steady {args.vad_steady:g}"
    for suffix in (".md", ".json"):
        path = REPO / "benchmarks" / "results" / f"{name}{suffix}"
        text = path.read_text()
        if suffix == ".md":
            text = text[: text.rindex("Made by:")] + f"Made by: `{made_by}` (media generated by the script)\n"
        else:
            d = json.loads(text)
            d["command"] = made_by
            text = json.dumps(d, indent=2) + "\n"
        path.write_text(text)


if __name__ == "__main__":
    run_main(main)
