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

    python benchmarks/live_bench.py --bundle bundles/av_fusion --against 1909f63   # this code vs an older one

`--against REV` runs the same bench at the same time with edge_ser as it was at git revision REV (extracted to
a temp folder with `git archive`), on the same media and bundle, and the results gain a side-by-side section:
this host's CPU share swings by about a point from run to run, so a change is read against code that ran
beside it.
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
from edge_ser.errors import ConfigError  # noqa: E402
from edge_ser.fileio import atomic_write  # noqa: E402


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


def extract_package(rev: str, folder: Path) -> str:
    """edge_ser as it was at git revision `rev`, written under `folder` (`git archive`): the full commit id."""
    import io
    import tarfile

    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if sha.returncode != 0:
        raise ConfigError(f"--against {rev}: not a revision of {REPO} ({sha.stderr.strip()})")
    tar = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", sha.stdout.strip(), "edge_ser"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(folder, filter="data")
    return sha.stdout.strip()


def side_by_side(ours: dict, theirs: dict, rev: str, sha: str) -> tuple[str, dict]:
    """The markdown section and the JSON block comparing two `edge-ser bench --live` reports of one run."""
    row = {
        "cpu_share": (ours["cpu_share"], theirs["cpu_share"]),
        "features_mean_ms": (ours["stages"]["features"]["mean"], theirs["stages"]["features"]["mean"]),
        "total_mean_ms": (ours["stages"]["total"]["mean"], theirs["stages"]["total"]["mean"]),
        "speech_updates": (ours["speech_updates"], theirs["speech_updates"]),
    }
    (a, b), (fa, fb), (ta, tb), (sa, sb) = row.values()
    text = (
        f"\n\nSide by side, in the same run: edge_ser at {rev} ({sha[:7]}) on the same media and bundle gave "
        f"**{100 * b:.1f}% of one core** against this code's {100 * a:.1f}% ({100 * (a - b):+.1f} points); "
        f"features {fb:.2f} against {fa:.2f} ms per update with speech (mean), total {tb:.2f} against {ta:.2f} ms; "
        f"the gate open on {sb} against {sa} updates."
    )
    return text, {"rev": rev, "commit": sha, **{k: v[1] for k, v in row.items()}}


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
        "--against",
        metavar="REV",
        default=None,
        help="also run the bench at the same time with edge_ser as it was at git revision REV, and compare",
    )
    ap.add_argument(
        "--vad-steady",
        type=float,
        default=None,
        help="passed on to `edge-ser bench --live` (the voice gate's steady-sound seconds; default: its own)",
    )
    args = ap.parse_args()
    if not args.seconds > 0:  # 0 or less was a ValueError traceback from the media maker
        ap.error(f"--seconds {args.seconds:g}: give the length of the media played, more than 0")
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

        procs = [subprocess.Popen(cmd, env={**os.environ, **env})]
        if args.against is not None:
            other = Path(tmp) / "against"
            sha = extract_package(args.against, other)
            out = str(Path(tmp) / "against_report")
            # run from the extracted folder (`-m` puts the working directory first on sys.path), and check it is
            # that edge_ser which runs, not this one
            theirs_env = {**os.environ, **env, "PYTHONPATH": str(other)}
            where = subprocess.run(
                [sys.executable, "-c", "import edge_ser; print(edge_ser.__file__)"],
                env=theirs_env, cwd=other, capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            if not Path(where).resolve().is_relative_to(other.resolve()):
                raise RuntimeError(
                    f"--against {args.against}: edge_ser was imported from {where}, not {other}"
                )
            theirs = [*cmd[:-1], out]
            theirs[theirs.index(str(args.bundle))] = str(args.bundle.resolve())
            procs.append(subprocess.Popen(theirs, env=theirs_env, cwd=other, stdout=subprocess.DEVNULL))
        codes = [p.wait() for p in procs]
        if any(codes):
            raise RuntimeError(f"edge-ser bench --live exited {codes} (this code, then --against's)")
        against = None
        if args.against is not None:
            against = json.loads(Path(out).with_suffix(".json").read_text())
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
    if args.against is not None:
        made_by += f" --against {args.against}"
    ours = json.loads((REPO / "benchmarks" / "results" / f"{name}.json").read_text())
    section, block = side_by_side(ours, against, args.against, sha) if against is not None else ("", None)
    for suffix in (".md", ".json"):
        path = REPO / "benchmarks" / "results" / f"{name}{suffix}"
        text = path.read_text()
        if suffix == ".md":
            body = text[: text.rindex("Made by:")].rstrip("\n")
            text = body + section + f"\n\nMade by: `{made_by}` (media generated by the script)\n"
        else:
            d = json.loads(text)
            d["command"] = made_by
            if block is not None:
                d["against"] = block
            text = json.dumps(d, indent=2) + "\n"
        atomic_write(path, text)


if __name__ == "__main__":
    run_main(main)
