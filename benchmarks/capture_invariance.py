"""Same clip, different capture: does every shipped bundle give the same top-1 whatever the microphone did?

    python benchmarks/capture_invariance.py [--clips 40] [--bundles laq_mlp_emodb,av_cnn@numpy,...] [--tag before]

Each EMODB clip (16 kHz, band-limited at 8 kHz: the corpus as recorded) is re-captured as a microphone or a
phone would: resampled to 8, 16, 22.05, 44.1 and 48 kHz, with and without full-band white noise at -60 dBFS
(what a real 48 kHz microphone adds above 8 kHz), 20 dB quieter and louder (float WAV, no clipping), with a
DC offset of 0.1, as stereo with one dead channel, and with 2 s of quiet (-70 dBFS) or noisy (-50 dBFS) room
before and after the speech (a recording started early and stopped late). Every variant is written as a float WAV and classified
through the device path (`Recognizer.predict_files`: file reading, channel mix, resampling, features, engine),
and compared with the clean 16 kHz mono clip's top-1. The clips are spread over all 10 speakers (every
13th file), so most are from the bundles' own training data: this measures capture invariance, not accuracy.
A bundle that also takes faces (av_cnn) gets the same 6 FER-2013 PublicTest faces of the clip's class with
every capture of it (file read by the device's reader, then `Recognizer.predict_audio(y, sr, faces)`), so only
the audio changes. The speaker-normalised bundles (ser_*) run with their training prior (adapt=False), so
every capture meets the same speaker statistics.

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

from benchmarks._common import run_main, write_results  # noqa: E402
from converters.data import find_dataset  # noqa: E402
from edge_ser.audio import load  # noqa: E402
from edge_ser.audio.polyphase import resample  # noqa: E402
from edge_ser.audio.wav import write_wav  # noqa: E402
from edge_ser.errors import DatasetError  # noqa: E402
from edge_ser.recognizer import Recognizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = (
    "ser_emodb",
    "ser_ravdess",
    "laq_mlp_emodb",
    "laq_mlp_emodb@tflite-int8",
    "tiny_transformer_emodb",
    "av_cnn_audio",
    "av_cnn",
)
"""Shipped bundles (or bundle folders), each optionally `@engine` (default onnxruntime)."""
FER_CLASS = {"boredom": "neutral"}
"""EMODB label -> the FER-2013 class whose faces go with it (the rest share their name)."""
RATES = (8000, 16000, 22050, 44100, 48000)


@dataclass(frozen=True)
class Capture:
    name: str
    rate: int = 16000
    noise_dbfs: float | None = None
    gain_db: float = 0.0
    dc: float = 0.0
    stereo_dead: bool = False
    pad_s: float = 0.0
    """Seconds of white noise at `pad_dbfs` before and after the clip (a recording started early and stopped late)."""
    pad_dbfs: float = -70.0

    def apply(self, y16: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        y = resample(y16, 16000, self.rate) if self.rate != 16000 else y16.copy()
        if (
            self.pad_s
        ):  # its own seeded noise: the shared generator's draws, and so the other captures, stay as they were
            pad = np.random.default_rng(y16.size).normal(
                0.0, 10 ** (self.pad_dbfs / 20), (2, int(self.pad_s * self.rate))
            )
            y = np.concatenate([pad[0].astype(np.float32), y, pad[1].astype(np.float32)])
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
        Capture("2 s of -70 dBFS noise before and after", pad_s=2.0),
        Capture("2 s of -50 dBFS noise before and after", pad_s=2.0, pad_dbfs=-50.0),
        Capture(
            "48 kHz + noise, stereo dead, -20 dB",
            rate=48000,
            noise_dbfs=-60.0,
            gain_db=-20.0,
            stereo_dead=True,
        ),
    ]
    return out


def emodb_wavs() -> Path:
    """EMODB's WAV folder (emodb/wav, or emodb/ itself) under the default data root ($EDGE_SER_DATA, else
    ../shared/datasets beside the repo), or DatasetError saying how to provide it."""
    root = find_dataset("emodb")
    return root / "wav" if (root / "wav").is_dir() else root


def fer_faces() -> Path:
    """FER-2013's PublicTest faces (its validation/ folder) under the default data root, or DatasetError
    saying how to provide them."""
    return find_dataset("fer2013") / "validation"


def _emodb_label(path: Path) -> str:
    from converters.data.labels import EMODB

    return EMODB[path.stem[5]]  # 03a01Fa: speaker, text, then the emotion letter


def _faces(label: str, size: int, k: int = 6) -> list[np.ndarray]:
    """k FER-2013 PublicTest faces of the class that goes with an EMODB label, resized to the model's size."""
    import cv2

    folder = fer_faces() / FER_CLASS.get(label, label)
    files = sorted(folder.glob("*"))[:k]
    if not files:
        raise DatasetError(f"fer2013: no faces for {label!r} in {folder}")
    return [cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (size, size)) for f in files]


def predictor(rec: Recognizer, labels: list[str]):
    """Classify clip i's files as the device would: `predict_files`, or for a model that also takes faces,
    the device reader then `predict_audio` with clip i's fixed faces."""
    if "faces" not in rec.kind.input_names:
        return rec.predict_files
    size = rec.bundle.manifest["av_input"]["face_size"]
    faces = [_faces(lab, size) for lab in labels]

    def predict(paths: list[Path]):
        return [rec.predict_audio(*load(p), faces=faces[i]) for i, p in enumerate(paths)]

    return predict


def run(bundles: list[str], n_clips: int, emodb: Path) -> dict:
    """Every bundle on every capture of `n_clips` clips of the EMODB WAV folder `emodb`, spread over it."""
    files = sorted(emodb.glob("*.wav"))[:: max(1, 535 // n_clips)][:n_clips]
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
            name, _, engine = b.partition("@")
            # adapt=False: a speaker-normalised bundle keeps its prior, so every capture meets the same statistics
            path = name if Path(name).is_dir() else ROOT / "bundles" / name
            rec = Recognizer(path, engine or "onnxruntime", adapt=False)
            predict = predictor(rec, [_emodb_label(f) for f in files])
            refs = predict(clean)
            ref = [p.label for p in refs]
            ref_ood = [bool(p.ood) for p in refs]
            for c in caps:
                preds = predict(paths[c.name])
                agree = float(np.mean([p.label == r for p, r in zip(preds, ref, strict=True)]))
                ood = float(np.mean([bool(p.ood) for p in preds]))
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
        "device path (float WAV -> `Recognizer.predict_files`; av_cnn: the same faces with every capture; onnxruntime "
        "unless the column names an engine). Cell: agreement with the clean clip's "
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
    emodb = emodb_wavs()  # before any work: no data set is a one-line error (run_main)
    bundles = [b for b in args.bundles.split(",") if b]
    res = run(bundles, args.clips, emodb)
    cmd = "python benchmarks/capture_invariance.py " + " ".join(argv if argv is not None else sys.argv[1:])
    name = "capture_invariance" + (f"_{args.tag}" if args.tag else "")
    md = markdown(res, bundles, cmd.strip())
    write_results(name, {**res, "command": cmd.strip()}, md)
    print(md)
    return 0


if __name__ == "__main__":
    run_main(main)
