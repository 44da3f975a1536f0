"""Same clip, different capture: does every shipped bundle give the same top-1 whatever the microphone did?

    python benchmarks/capture_invariance.py [--clips 40] [--bundles laq_mlp_emodb,...] [--tag before]

Each EMODB clip (16 kHz, band-limited at 8 kHz: the corpus as recorded) is re-captured as a microphone or a
phone would: resampled to 8, 16, 22.05, 44.1 and 48 kHz, with and without full-band white noise at -60 dBFS
(what a real 48 kHz microphone adds above 8 kHz), 20 dB quieter and louder (float WAV, no clipping), with a
DC offset of 0.1, and as stereo with one dead channel. Every variant is written as a float WAV and classified
through the device path (`Recognizer.predict_files`: file reading, channel mix, resampling, features, engine),
and compared with the clean 16 kHz mono clip's top-1. The clips are spread over all 10 speakers (every
13th file), so most are from the bundles' own training data: this measures capture invariance, not accuracy.

Writes benchmarks/results/capture_invariance[_TAG].{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import write_results  # noqa: E402
from edge_ser.audio import load  # noqa: E402
from edge_ser.audio.polyphase import resample  # noqa: E402
from edge_ser.audio.wav import write_wav  # noqa: E402
from edge_ser.recognizer import Recognizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EMODB = ROOT.parent / "shared" / "datasets" / "emodb" / "wav"
BUNDLES = ("laq_mlp_emodb", "tiny_transformer_emodb", "av_cnn_audio")
RATES = (8000, 16000, 22050, 44100, 48000)


@dataclass(frozen=True)
class Capture:
    name: str
    rate: int = 16000
    noise_dbfs: float | None = None
    gain_db: float = 0.0
    dc: float = 0.0
    stereo_dead: bool = False

    def apply(self, y16: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        y = resample(y16, 16000, self.rate) if self.rate != 16000 else y16.copy()
        y = y * np.float32(10 ** (self.gain_db / 20))
        if self.noise_dbfs is not None:  # white: flat up to rate/2, RMS at noise_dbfs
            y = y + rng.normal(0.0, 10 ** (self.noise_dbfs / 20), y.shape).astype(np.float32)
        y = y + np.float32(self.dc)
        if self.stereo_dead:
            y = np.stack([y, np.zeros_like(y)], axis=1)
        return y.astype(np.float32), self.rate


def captures() -> list[Capture]:
    out = [Capture(f"{r / 1000:g} kHz", rate=r) for r in RATES]
    out += [Capture(f"{r / 1000:g} kHz + noise -60 dBFS", rate=r, noise_dbfs=-60.0) for r in RATES]
    out += [
        Capture("-20 dB", gain_db=-20.0),
        Capture("+20 dB", gain_db=20.0),
        Capture("DC offset 0.1", dc=0.1),
        Capture("stereo, one dead channel", stereo_dead=True),
        Capture(
            "48 kHz + noise, stereo dead, -20 dB",
            rate=48000,
            noise_dbfs=-60.0,
            gain_db=-20.0,
            stereo_dead=True,
        ),
    ]
    return out


def run(bundles: list[str], n_clips: int) -> dict:
    files = sorted(EMODB.glob("*.wav"))[:: max(1, 535 // n_clips)][:n_clips]
    rng = np.random.default_rng(0)
    caps = captures()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths: dict[str, list[Path]] = {c.name: [] for c in caps}
        clean: list[Path] = []
        for i, f in enumerate(files):
            y, _ = load(f, sr=16000, mono=True)
            p = Path(tmp) / f"clean_{i}.wav"
            write_wav(p, y, 16000, subtype="FLOAT")
            clean.append(p)
            for c in caps:
                yc, sr = c.apply(y, rng)
                q = Path(tmp) / f"{abs(hash(c.name))}_{i}.wav"
                write_wav(q, yc, sr, subtype="FLOAT")
                paths[c.name].append(q)
        for b in bundles:
            rec = Recognizer(b if Path(b).is_dir() else ROOT / "bundles" / b, "onnxruntime")
            ref = [p.label for p in rec.predict_files(clean)]
            ref_ood = [bool(getattr(p, "ood", False)) for p in rec.predict_files(clean)]
            for c in caps:
                preds = rec.predict_files(paths[c.name])
                agree = float(np.mean([p.label == r for p, r in zip(preds, ref, strict=True)]))
                ood = float(np.mean([bool(getattr(p, "ood", False)) for p in preds]))
                rows.append({"bundle": b, "capture": c.name, "agreement": agree, "ood": ood,
                             "classes": len({p.label for p in preds})})  # fmt: skip
            rows.append({"bundle": b, "capture": "clean 16 kHz (reference)", "agreement": 1.0,
                         "ood": float(np.mean(ref_ood)), "classes": len(set(ref))})  # fmt: skip
            print(f"{b}: done", file=sys.stderr)
    return {"clips": [f.name for f in files], "rows": rows}


def markdown(res: dict, bundles: list[str], cmd: str) -> str:
    caps = [c.name for c in captures()] + ["clean 16 kHz (reference)"]
    by = {(r["bundle"], r["capture"]): r for r in res["rows"]}
    lines = [
        "# Same clip, different capture: top-1 agreement with the clean 16 kHz clip",
        "",
        f"{len(res['clips'])} EMODB clips (every 13th file, all 10 speakers) re-captured and classified through the "
        "device path (float WAV -> `Recognizer.predict_files`, onnxruntime). Cell: agreement with the clean clip's "
        "top-1 (share flagged out-of-range in brackets); `classes`: distinct labels predicted over the clips.",
        "",
        "| capture | " + " | ".join(bundles) + " |",
        "|---|" + "---|" * len(bundles),
    ]
    for c in caps:
        cells = []
        for b in bundles:
            r = by[(b, c)]
            cells.append(f"{r['agreement']:.0%} ({r['ood']:.0%} ood, {r['classes']} classes)")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", f"Command: `{cmd}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=40)
    p.add_argument("--bundles", default=",".join(BUNDLES), help="shipped bundle names or bundle folders")
    p.add_argument("--tag", default="", help="suffix of the result files (e.g. before)")
    args = p.parse_args(argv)
    if not EMODB.is_dir():
        print(f"capture_invariance: EMODB not found at {EMODB}", file=sys.stderr)
        return 2
    bundles = [b for b in args.bundles.split(",") if b]
    res = run(bundles, args.clips)
    cmd = "python benchmarks/capture_invariance.py " + " ".join(argv if argv is not None else sys.argv[1:])
    name = "capture_invariance" + (f"_{args.tag}" if args.tag else "")
    md = markdown(res, bundles, cmd.strip())
    write_results(name, {**res, "command": cmd.strip()}, md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
