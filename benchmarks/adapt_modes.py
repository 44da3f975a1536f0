"""How a speaker-normalised bundle meets offline files: the same bundle and files under every `--adapt` mode.

    export EDGE_SER_DATA=/work/shared/datasets
    python benchmarks/adapt_modes.py [--seeds 0,1,2]

A bundle that learns its speaker (ser_*) standardises each clip by running statistics of the session. Offline,
the order of the files then matters: a folder sorted by emotion drags the statistics class by class. Every row
runs `converters.evaluate.evaluate` (the device path, `Recognizer.iter_predict_files`) on recordings the bundle
never heard, in another language (each shipped ser_* bundle is trained on every speaker of its own corpus):

- `off`: the training prior for every clip;
- `online, files' order`: each speaker a session, clips in the data set's file order (eval before 2026-12-05;
  RAVDESS sorts an actor's files by emotion);
- `online, seeded order`: the same in a random order per speaker (`edge-ser eval`'s default), mean over seeds;
- `all`: each speaker's clips all learnt first, then classified (`edge-ser eval --adapt all`,
  `edge-ser predict`'s default): per-speaker normalisation, unlabelled.

The third pairing is the same EMODB clips as a folder-per-class tree whose file names carry no speaker, the way
a user's own recordings often come: all 535 clips are then one session, in class order.

Writes benchmarks/results/adapt_modes.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import doc_body, run_main, write_results  # noqa: E402
from converters.evaluate import evaluate  # noqa: E402
from converters.pipeline import load_records  # noqa: E402
from edge_ser.recognizer import Recognizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAIRS = (
    ("ser_ravdess", "emodb", "EMODB (10 speakers)"),
    ("ser_emodb", "ravdess", "RAVDESS (12 actors)"),
    ("ser_ravdess", "emodb-folder", "EMODB as class folders, no speaker in the names (one session)"),
)


def _folder(tmp: Path) -> Path:
    """EMODB as `<class>/clipNNNN.wav` symlinks: a name with no speaker, so the loader says "unknown"."""
    _, records = load_records("emodb", None)
    for i, r in enumerate(records):
        (tmp / r.label).mkdir(exist_ok=True)
        os.symlink(Path(r.source).resolve(), tmp / r.label / f"clip{i:04d}.wav")
    return tmp


def _score(bundle: str, records, adapt: str, seed: int | None) -> tuple[float, float]:
    rec = Recognizer(ROOT / "bundles" / bundle, "onnxruntime", adapt=adapt != "off")
    report = evaluate(rec, records, data="", selection="", adapt=adapt, seed=seed).to_dict()
    return 100 * report["uar"], 100 * report["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="orders of the seeded online rows (default 0,1,2)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bundle, data, title in PAIRS:
            source = str(_folder(Path(tmp))) if data == "emodb-folder" else data
            _, records = load_records(source, None)
            seeded = [_score(bundle, records, "online", s) for s in seeds]
            modes = {
                "off": _score(bundle, records, "off", 0),
                "online, files' order": _score(bundle, records, "online", None),
                "online, seeded order": tuple(np.mean(seeded, axis=0)),
                "all": _score(bundle, records, "all", 0),
            }
            row = {"bundle": bundle, "data": title, "files": len(records)}
            row.update({m: {"uar": round(u, 1), "war": round(w, 1)} for m, (u, w) in modes.items()})
            row["online_seeded_uar"] = [round(u, 1) for u, _ in seeded]
            rows.append(row)
            print(row, flush=True)
    modes = ["off", "online, files' order", "online, seeded order", "all"]
    lines = [
        "# Offline files and the speaker statistics: `--adapt` modes",
        "",
        doc_body(__doc__),
        "",
        "UAR / accuracy in %, onnxruntime, every file of the data set (classes the bundle does not know are not "
        f"scored). Seeded order: the mean over seeds {args.seeds} (UAR per seed in brackets).",
        "",
        "| bundle | files | " + " | ".join(modes) + " |",
        "|---|---|" + "---|" * len(modes),
    ]
    for r in rows:
        cells = []
        for m in modes:
            cell = f"{r[m]['uar']:.1f} / {r[m]['war']:.1f}"
            if m == "online, seeded order":
                cell += " (" + ", ".join(f"{u:.1f}" for u in r["online_seeded_uar"]) + ")"
            cells.append(cell)
        lines.append(f"| {r['bundle']} on {r['data']} | {r['files']} | " + " | ".join(cells) + " |")
    js, md = write_results("adapt_modes", {"seeds": seeds, "rows": rows}, "\n".join(lines))
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    run_main(main)
