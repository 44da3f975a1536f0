"""Every engine on every shipped bundle, side by side in one run: load time, batch-1 latency, memory, size and
top-1 agreement with onnxruntime.

    python benchmarks/backends.py [--bundles bundles/*] [--clips 24] [--threads 1] [--runs 1000]
                                  [--name NAME] [--before benchmarks/results/backends_before.json]

Bundles: every folder of bundles/ with a manifest.json (or the ones named). Inputs: real clips, made by each
bundle's own input kind (`InputKind.audio_inputs`, as the device makes them, then its speaker normalisation with
the training prior, `bundle_inputs`): the first `--clips` EMODB clips
(22.05 kHz, resampled by the kind), and for a bundle that also takes faces, 6 FER-2013 PublicTest faces of the
clip's class (as benchmarks/capture_invariance.py gives them). A kind that makes several rows of a clip (log-Mel
patches) gives them all; at most 400 rows are kept. Without the data sets, seeded noise clips stand in (said in
the table's title, and the results are then `<name>_synthetic`, so they never replace the table made on EMODB).

Each (bundle, engine) runs in its own process (benchmarks/_engine_probe.py) so peak RSS is that engine's alone,
`--rounds` times, the engines of a bundle alternating (A B C A B C ...); the round with the lowest median is
kept, so a burst of load from other processes on a shared machine does not decide a ratio.
Latency: median and p99 of single-row predict() calls cycling over the rows (feature extraction not included),
wall-clock, and the median CPU time of the calling thread per call.
Size: the files that engine reads. Agreement: the share of rows whose top-1 is onnxruntime's, and the largest
logit difference relative to onnxruntime's largest |logit|. `--before-tree DIR` (a checkout of an earlier
commit, e.g. `git archive COMMIT | tar -x -C DIR`) probes that checkout's engines too (`--before-engines`,
default numpy), on its own copy of the bundle when it has one, as more engines of each bundle ("numpy
(before)", "tflite-int8 (before)"), so a change is measured before and after side by side in one run;
`--before` adds the numpy medians of an earlier run's JSON as a column instead.

Writes benchmarks/results/NAME.{md,json}: `--name`, default backends for every shipped bundle and
backends_<bundle>_... for a `--bundles` run (`results_stem`), so a subset never replaces the full table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_main, write_results  # noqa: E402

MAX_ROWS = 400


def shipped_bundles(root: Path = REPO / "bundles") -> list[Path]:
    """Every model bundle folder under `root` (those with a manifest.json), sorted by name. A fusion bundle
    (manifest `fusion`) has no model of its own: its branches are bundles of their own and listed as such."""
    return sorted(
        p
        for p in root.iterdir()
        if (p / "manifest.json").is_file() and "fusion" not in json.loads((p / "manifest.json").read_text())
    )


class SpeechClips(NamedTuple):
    """The clips the inputs are made of: (audio, rate, EMODB label) each, where they came from, and whether
    they are a stand-in (seeded noise) for an absent EMODB, whose results must not replace real ones."""

    clips: list[tuple[object, int, str]]
    source: str
    synthetic: bool


def speech_clips(n: int) -> SpeechClips:
    """n (audio, rate, EMODB label) clips and where they came from; seeded noise when EMODB is absent."""
    import numpy as np

    from converters.data.loaders import default_data_root
    from edge_ser.audio import load

    root = default_data_root()
    wavs = sorted((root / "emodb" / "wav").glob("*.wav"))[:n] if root else []
    if wavs:
        from benchmarks.capture_invariance import _emodb_label

        return SpeechClips([(*load(p), _emodb_label(p)) for p in wavs], f"{len(wavs)} EMODB clips", False)
    rng = np.random.default_rng(0)
    noise = [(rng.standard_normal(32000).astype(np.float32) * 0.05, 16000, "neutral") for _ in range(n)]
    return SpeechClips(noise, f"{n} seeded noise clips (EMODB absent)", True)


def _faces(label: str, size: int, k: int) -> list[object] | None:
    """k FER-2013 PublicTest faces of the class that goes with an EMODB label, resized to the model's size
    (the faces benchmarks/capture_invariance.py gives such a clip); None (blank faces) without FER-2013."""
    import cv2

    from benchmarks.capture_invariance import FER_CLASS
    from converters.data.loaders import default_data_root

    root = default_data_root()
    folder = root / "fer2013" / "validation" / FER_CLASS.get(label, label) if root else None
    files = sorted(folder.glob("*.jpg"))[:k] if folder and folder.is_dir() else []
    if not files:
        return None
    return [cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (size, size)) for f in files]


def bundle_inputs(bundle, clips) -> dict[str, object]:
    """The bundle's model inputs for the clips as the device feeds its engine, rows stacked per input name (at
    most MAX_ROWS rows): the input kind's features, then the bundle's speaker normalisation with its training
    prior (`SpeakerAdapter(enabled=False)`, as `Recognizer(adapt=False)`; a no-op without a `speaker_norm`
    block). Without it a speaker-normalised model (the ser_* bundles) gets rows far outside its training range,
    which every engine flags out of range and the int8 variants clip."""
    import numpy as np

    from edge_ser.speaker import SpeakerAdapter

    kind = bundle.input_kind
    speaker = SpeakerAdapter(bundle.manifest, enabled=False)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in kind.input_names}
    for y, sr, label in clips:
        faces = _faces(label, kind.face_crop.size, kind.faces) if kind.faces else None
        for name, arr in speaker(kind.audio_inputs(y, sr, faces), update=False).items():
            parts[name].append(np.asarray(arr, dtype=np.float32))
    return {n: np.concatenate(v)[:MAX_ROWS] for n, v in parts.items()}


def engine_bytes(bundle: Path, engine: str) -> int:
    """Bytes of the files the engine reads: its TFLite file, else model.onnx + weights.esq."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    if engine.startswith("tflite"):
        variants = manifest.get("tflite", {}).get("variants", {})
        variant = engine.split("-", 1)[1] if "-" in engine else next(iter(variants))
        return (bundle / variants[variant]["file"]).stat().st_size
    return (bundle / "model.onnx").stat().st_size + (bundle / "weights.esq").stat().st_size


def probe(path: Path, engine: str, feats: Path, args: argparse.Namespace, tree: Path | None = None) -> dict:
    """One engine on one bundle in a fresh process: its JSON line, or {"error": last stderr line}. `tree`: run
    the probe of another checkout of the project (its own edge_ser: an earlier engine)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TF_CPP_MIN_LOG_LEVEL": "3"}
    probe_file = (tree / "benchmarks" if tree else Path(__file__).parent) / "_engine_probe.py"
    cmd = [sys.executable, str(probe_file), str(path), engine]
    cmd += ["--threads", str(args.threads), "--runs", str(args.runs), "--features", str(feats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        return {"engine": engine, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agreement(rows: list[dict]) -> None:
    """Add each row's top-1 agreement and max relative logit difference with its bundle's onnxruntime row."""
    import numpy as np

    ref = next((r for r in rows if r["engine"] == "onnxruntime" and "logits" in r), None)
    for r in rows:
        if ref is None or "logits" not in r:
            continue
        a, b = np.asarray(r["logits"]), np.asarray(ref["logits"])
        r["agree"] = float((a.argmax(1) == b.argmax(1)).mean())
        r["max_rel_diff"] = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def run(args: argparse.Namespace) -> tuple[list[dict], SpeechClips]:
    """Every engine of every bundle probed on the clips' inputs: the rows, and the clips they were made of."""
    import numpy as np

    from edge_ser.bundle import load_bundle
    from edge_ser.engines import engines_for

    paths = [Path(p) for p in args.bundles] if args.bundles else shipped_bundles()
    speech = speech_clips(args.clips)
    out: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            bundle = load_bundle(path)
            feats = Path(tmp) / f"{path.name}.npz"
            x = bundle_inputs(bundle, speech.clips)
            np.savez(feats, **x)
            engines = engines_for(bundle)
            then = args.before_tree / "bundles" / path.name if args.before_tree else None
            then = then if then is not None and (then / "manifest.json").is_file() else path
            for e in args.before_engines if args.before_tree else ():
                if e in engines:
                    engines.insert(engines.index(e) + 1, f"{e} (before)")
            best: dict[str, dict] = {}
            # engines alternate: A B C A B C ..., so load from other processes hits all alike
            for _ in range(args.rounds):
                for engine in engines:
                    if engine.endswith(" (before)"):
                        e = engine[: -len(" (before)")]
                        r = {**probe(then, e, feats, args, args.before_tree), "engine": engine}
                    else:
                        r = probe(path, engine, feats, args)
                    if engine not in best or r.get("median_us", 1e99) < best[engine].get("median_us", 1e99):
                        best[engine] = r
            rows = [best[e] for e in engines]
            for e, r in zip(engines, rows, strict=True):
                r.update(bundle=path.name, rows=len(next(iter(x.values()))))
                if "error" not in r:
                    before = e.endswith(" (before)")
                    r["size_kb"] = engine_bytes(then if before else path, e.removesuffix(" (before)")) / 1000
            agreement(rows)
            out += rows
    return out, speech


def _before(path: Path | None) -> dict[tuple[str, str], dict]:
    if path is None:
        return {}
    return {(r["bundle"], r["engine"]): r for r in json.loads(path.read_text())["rows"] if "error" not in r}


def _ratio(rows: list[dict], r: dict, key: str = "median_us") -> str:
    """This row's median (`key`) over its bundle's onnxruntime median."""
    ref = next((o for o in rows if o["bundle"] == r["bundle"] and o["engine"] == "onnxruntime"), None)
    if ref is None or key not in ref or key not in r:
        return ""
    return f"{r[key] / ref[key]:.1f}x"


def markdown(rows: list[dict], source: str, args: argparse.Namespace, before: dict) -> str:
    head = "| bundle | engine | load (ms) | median (us) | p99 (us) | / onnxruntime | CPU median (us), / onnxruntime "
    head += "| peak RSS MB (+ by loading) "
    head += "| size (KB) | top-1 = onnxruntime | max rel. logit diff |"
    cols = 11
    if before:
        head += " numpy before: median (us), / onnxruntime |"
        cols += 1
    # a --bundles run said 'every shipped bundle' over its one or two bundles (backends_ser.md, a review)
    which = ", ".join(Path(b).name for b in args.bundles) if args.bundles else "every shipped bundle"
    md = [
        f"# Engines side by side: {which}, {args.threads} thread(s), batch 1, {args.runs} calls",
        "",
        f"Inputs: {source}, through each bundle's input kind.",
        "",
        head,
        "|" + "---|" * cols,
    ]
    for r in rows:
        if "error" in r:
            md.append(f"| {r['bundle']} | {r['engine']} | failed: {r['error']} |" + " |" * (cols - 3))
            continue
        line = (
            f"| {r['bundle']} | {r['engine']} | {r['load_ms']:.1f} | {r['median_us']:.1f} | {r['p99_us']:.1f} "
            f"| {_ratio(rows, r)} | {r.get('cpu_median_us', float('nan')):.1f}, {_ratio(rows, r, 'cpu_median_us')} "
            f"| {r['peak_rss_mb']:.0f} ({r['peak_rss_mb'] - r['rss_before_load_mb']:+.0f}) "
            f"| {r['size_kb']:.1f} | {r.get('agree', float('nan')):.1%} ({r['rows']} rows) "
            f"| {r.get('max_rel_diff', float('nan')):.1e} |"
        )
        if before:
            b = before.get((r["bundle"], r["engine"]))
            line += (
                f" {b['median_us']:.1f}, {_ratio(list(before.values()), b)} |"
                if b and r["engine"] == "numpy"
                else " |"
            )
        md.append(line)
    md += [
        "",
        "Peak RSS is the whole probe process (Python + numpy + the engine's runtime + the model, from "
        "/proc VmHWM); in brackets what loading the bundle and engine added. Load = load_bundle (verification "
        "included) + engine construction, cold imports included. The numpy engine is the pure-numpy fallback "
        "for boards with no runtime. Max rel. logit diff = max |logits - onnxruntime's| / max |onnxruntime's|.",
    ]
    return "\n".join(md)


def results_stem(bundles: list[str] | None) -> str:
    """The default results name: backends for every shipped bundle, backends_<bundle>_<bundle>... for the
    bundles of a --bundles run (as live_bench.py's live_bench_<bundle>). A --bundles run without --name wrote
    backends.md, replacing the full table with its subset (a review)."""
    if not bundles:
        return "backends"
    return "_".join(["backends", *(Path(b).resolve().name for b in bundles)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="*", help="bundle folders (default: every bundle in bundles/)")
    ap.add_argument("--clips", type=int, default=24, help="EMODB clips to make the inputs of (default 24)")
    ap.add_argument("--threads", type=int, default=1, help="inference threads per engine (default 1)")
    ap.add_argument("--runs", type=int, default=1000, help="timed single-row calls per engine (default 1000)")
    ap.add_argument(
        "--rounds", type=int, default=3, help="probes per engine, alternating; the lowest median is kept (3)"
    )
    ap.add_argument(
        "--name",
        help="results file name (default backends; with --bundles, backends_<bundle>_...: not the full table's)",
    )
    ap.add_argument("--before", type=Path, help="an earlier run's JSON: its numpy medians become a column")
    ap.add_argument(
        "--before-tree",
        type=Path,
        help="a checkout of an earlier commit (git archive): its engines (--before-engines) are probed too",
    )
    ap.add_argument(
        "--before-engines",
        type=lambda v: [e for e in v.split(",") if e],
        default=["numpy"],
        help="engines of --before-tree to probe, comma-separated (default numpy; e.g. numpy,tflite-int8)",
    )
    args = ap.parse_args()
    # 0 was a traceback (--clips) or a table of '0 calls' (--runs)
    for flag in ("clips", "threads", "runs", "rounds"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag} {getattr(args, flag)}: at least 1")
    rows, speech = run(args)
    text = markdown(rows, speech.source, args, _before(args.before))
    print(text)
    for r in rows:
        r.pop("logits", None)
    payload = {
        "before_tree": str(args.before_tree) if args.before_tree else None,
        "rows": rows,
        "threads": args.threads,
        "runs": args.runs,
        "rounds": args.rounds,
        "inputs": speech.source,
    }
    write_results(args.name or results_stem(args.bundles), payload, text, synthetic=speech.synthetic)


if __name__ == "__main__":
    run_main(main)
