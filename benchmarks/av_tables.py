"""av_cnn on real signals: audio / video / fused on paired RAVDESS + FER-2013, and the audio branch on EMODB.

    python benchmarks/av_tables.py                # the committed tables (benchmarks/results/av_tables.md)
    python benchmarks/av_tables.py --max-folds 1 --no-emodb --epochs 20    # smoke run -> av_tables_partial

Paired set (converters.data.paired_av): each RAVDESS speech clip (12 actors; 'calm' dropped -> 7 classes, 624
clips) is shown with one FER-2013 face image of the same class as its 6 frames (small shift / zoom /
brightness jitter), the face upscaled into a 320x240 frame (converters.data.av_dataset.SceneSpec) so the
device's Haar crop really runs. THE PAIRS ARE SYNTHETIC: real speech and real faces, paired by label only,
so the video branch's accuracy is FER-2013 expression accuracy on one still image per clip, not video, and the
fused figure says how two independent cues of the label combine, not how a face and a voice of one person do.

Splits: group k-fold by actor (converters.data.group_kfold, seed 0): test = fold i, val = fold i+1 (actors
outside the test fold), train = the rest; pairing per fold, so faces are disjoint across train / val / test
(test faces from FER-2013 validation, train and val from disjoint halves of FER-2013 train). Every mode
trains on the same fold with the same seed; the MFCC standardisation comes from the fold's training clips.

EMODB: av_cnn mode "audio" on every EMODB utterance (resampled to 16 kHz by edge_ser.audio), on exactly the
splits of benchmarks/laq_table.py (leave-one-speaker-out with one validation speaker, and stratified 80/10/10
seeds 0..4), next to its laq_mlp fp32 figures read from benchmarks/results/laq_table_emodb.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from converters.data import (  # noqa: E402
    find_dataset,
    group_kfold,
    leave_one_speaker_out,
    load_dataset,
    load_fer2013,
    stratified_split,
)
from converters.data.av_dataset import (  # noqa: E402
    ClipCache,
    SceneSpec,
    emodb_audio_arrays,
    paired_av_arrays,
)
from converters.data.paired_av import PairedAVSpec, pair_ravdess_fer  # noqa: E402
from converters.models import av_cnn  # noqa: E402
from converters.pipeline import confusion  # noqa: E402
from converters.protocol import mean_std  # noqa: E402
from converters.train import TrainConfig, predict, seed_everything, train_classifier  # noqa: E402
from edge_ser.inputs.av import AVInputSpec  # noqa: E402

MODES = ("audio", "video", "fused")
PAIRED_CLASSES = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")


def _inputs(mode: str, faces: np.ndarray | None, audio: np.ndarray, idx: np.ndarray):
    if mode == "audio":
        return audio[idx]
    if mode == "video":
        return faces[idx]
    return faces[idx], audio[idx]


def train_eval(
    mode: str,
    faces: np.ndarray | None,
    audio: np.ndarray,
    y: np.ndarray,
    split: dict[str, np.ndarray],
    n_classes: int,
    config: TrainConfig,
) -> dict:
    """Train av_cnn `mode` on split['train'] (early stopping on split['val']); test accuracy, predictions."""
    seed_everything(config.seed)
    model = av_cnn(mode, num_classes=n_classes)
    if mode != "video":
        a = audio[split["train"]]
        model.set_normalization(torch.as_tensor(a.mean((0, 1))), torch.as_tensor(a.std((0, 1))))
    res = train_classifier(
        model,
        _inputs(mode, faces, audio, split["train"]),
        y[split["train"]],
        _inputs(mode, faces, audio, split["val"]),
        y[split["val"]],
        config,
        progress=False,
    )
    pred = predict(res.model, _inputs(mode, faces, audio, split["test"])).argmax(1)
    return {
        "acc": float((pred == y[split["test"]]).mean()),
        "val_acc": res.best_val_acc,
        "best_epoch": res.best_epoch,
        "epochs_run": res.epochs_run,
        "seconds": res.seconds,
        "pred": pred.tolist(),
    }


def pm(values: list[float]) -> str:
    m, s = mean_std([100 * v for v in values])
    return f"{m:.2f} +- {s:.2f}"


# ------------------------------------------------------------------------------------------ paired set
def run_paired(args, config: TrainConfig) -> tuple[dict, list[str]]:
    spec, pspec, scene = AVInputSpec(), PairedAVSpec(), SceneSpec()
    speech = load_dataset("ravdess")
    fer = find_dataset("fer2013")
    fer_train, fer_val = load_fer2013(fer, "train"), load_fer2013(fer, "validation")
    folds = group_kfold([r.speaker for r in speech], k=args.folds, seed=0)[: args.max_folds]
    cache = ClipCache()
    n_cls = len(PAIRED_CLASSES)
    runs, conf = [], {m: np.zeros((n_cls, n_cls), np.int64) for m in MODES}
    t_faces = 0.0
    test_found: list[np.ndarray] = []
    for i, split in enumerate(folds):
        pairs = pair_ravdess_fer(speech, split, fer_train, fer_val, pspec)
        t = time.perf_counter()
        d = paired_av_arrays(pairs, spec, pspec, scene=scene, classes=PAIRED_CLASSES, cache=cache)
        t_faces += time.perf_counter() - t
        part = np.array([p.part for p in pairs])
        idx = {p: np.flatnonzero(part == p) for p in ("train", "val", "test")}
        actors = {p: sorted({pairs[j].speaker for j in idx[p]}) for p in idx}
        images = {p: {pairs[j].image for j in idx[p]} for p in idx}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):  # the promise, checked
            assert not set(actors[a]) & set(actors[b]) and not images[a] & images[b], (i, a, b)
        test_found.append(d.found[idx["test"]])
        fold = {
            "fold": i,
            "actors": actors,
            "sizes": {p: int(v.size) for p, v in idx.items()},
            "distinct_images": {p: len(v) for p, v in images.items()},
            "faces_found": {p: float(d.found[v].mean()) for p, v in idx.items()},
            "modes": {},
        }
        for mode in MODES:
            seeds = []
            for s in range(args.seeds):
                r = train_eval(mode, d.faces, d.audio, d.y, idx, n_cls, _seeded(config, s))
                conf[mode] += confusion(d.y[idx["test"]], np.asarray(r.pop("pred")), n_cls)
                seeds.append(r)
            fold["modes"][mode] = {"acc": statistics.mean(r["acc"] for r in seeds), "seeds": seeds}
        runs.append(fold)
        accs = ", ".join(f"{m} {100 * fold['modes'][m]['acc']:.1f}" for m in MODES)
        print(f"paired fold {i} (test actors {actors['test']}): {accs}  [{time.perf_counter() - T0:.0f} s]")
    all_frames = np.concatenate([found for _, found in cache.faces.values()])
    # the raw 48x48 FER crops, for contrast: every clip once, with its test-part face
    raw = []
    for split in folds:
        pairs = [p for p in pair_ravdess_fer(speech, split, fer_train, fer_val, pspec) if p.part == "test"]
        raw.append(
            paired_av_arrays(pairs, spec, pspec, scene=None, classes=PAIRED_CLASSES, cache=cache).found
        )
    summary = {
        m: {
            "acc": [f["modes"][m]["acc"] for f in runs],
            "recall": (np.diag(conf[m]) / np.maximum(conf[m].sum(1), 1)).tolist(),
            "confusion": conf[m].tolist(),
        }
        for m in MODES
    }
    n_test = sum(f["sizes"]["test"] for f in runs)
    largest = max(np.bincount([PAIRED_CLASSES.index(p) for p in _labels(speech)], minlength=n_cls))
    payload = {
        "folds": args.folds,
        "folds_run": len(runs),
        "seeds": args.seeds,
        "classes": list(PAIRED_CLASSES),
        "clips": len(_labels(speech)),
        "paired_spec": vars(pspec),
        "scene": vars(scene),
        "faces_found": {
            "unique_clip_faces": float(all_frames.mean()),
            "unique_clip_faces_n": int(all_frames.size),
            "test": float(np.concatenate(test_found).mean()),
            "raw_48x48_test": float(np.concatenate(raw).mean()),
        },
        "feature_seconds": t_faces,
        "summary": summary,
        "runs": runs,
    }
    md = _paired_md(payload, n_test, largest / len(_labels(speech)), config)
    return payload, md


def _labels(speech) -> list[str]:
    return [r.label for r in speech if r.label != "calm"]


def _seeded(config: TrainConfig, seed: int) -> TrainConfig:
    return TrainConfig(**{**config.to_dict(), "seed": seed})


def _paired_md(p: dict, n_test: int, majority: float, config: TrainConfig) -> list[str]:
    ff = p["faces_found"]
    k, ran = p["folds"], p["folds_run"]
    s = p["summary"]
    md = [
        "## Paired RAVDESS speech + FER-2013 faces (SYNTHETIC pairs)",
        "",
        "**The pairs are synthetic.** Real speech (RAVDESS, 12 actors) and real faces (FER-2013), paired by "
        "emotion label only: each clip is shown with one FER-2013 face image of its class as its 6 frames "
        "(small shift / zoom / brightness jitter). The video branch's accuracy is therefore FER-2013 "
        "expression accuracy on one still image per clip, not video, and the face never belongs to the "
        "speaker; the fused figure shows how two independent cues of the same label combine, not real "
        "audio-visual emotion recognition.",
        "",
        f"{p['clips']} clips ('calm' dropped), {len(p['classes'])} classes ({', '.join(p['classes'])}). "
        f"Speaker-independent group {k}-fold by actor ({ran} fold(s) run): test = 2 actors, validation = "
        "the next fold's 2 actors, train = the other 8; pairing per fold, so no actor and no face image is "
        "on two sides (test faces from FER-2013 validation, train / val faces from disjoint halves of "
        "FER-2013 train; checked for every fold). av_cnn fp32 (frames as channels, valid 3x3), "
        f"training seed(s) 0..{p['seeds'] - 1} per fold (the same for every mode); Adam lr {config.lr}, "
        f"batch {config.batch_size}, at most "
        f"{config.epochs} epochs, early stopping on validation accuracy (patience {config.patience}); MFCC "
        "standardisation from the fold's training clips.",
        "",
        f"Faces: each 48x48 FER crop is upscaled to {p['scene']['face']} px (cubic) at the centre of a "
        f"{p['scene']['width']}x{p['scene']['height']} grey frame, then goes through the device's "
        "`edge_ser.inputs.av.clip_inputs` with the shared `FaceCropper(...).crop_or_center` (Haar cascade, "
        "centred-square fallback when no face is found). The cascade found a face in "
        f"**{100 * ff['unique_clip_faces']:.1f}%** of the {ff['unique_clip_faces_n']} distinct frames "
        f"({100 * ff['test']:.1f}% of test frames); on the raw 48x48 crops it fires on only "
        f"{100 * ff['raw_48x48_test']:.1f}% (the cascade's 24 px window and no upscaling before detection), "
        "which is why the frames are shown at video scale. One face image per clip: the video branch "
        "trains on "
        f"about {round(statistics.mean(f['distinct_images']['train'] for f in p['runs']))} distinct FER-2013 "
        "images per fold (FER-2013 has 28,709 training images).",
        "",
        "| model (av_cnn, fp32) | test accuracy % (mean +- std over folds) |",
        "|---|---|",
    ]
    for m in MODES:
        md.append(f"| {m} | {pm(s[m]['acc'])} (n={len(s[m]['acc'])}) |")
    diff = [f - a for f, a in zip(s["fused"]["acc"], s["audio"]["acc"], strict=True)]
    md += [
        f"| fused - audio, paired by fold | {pm(diff)} points; fused better in "
        f"{sum(d > 0 for d in diff)} of {len(diff)} folds |",
        f"| chance | {100 / len(p['classes']):.2f} (uniform); {100 * majority:.2f} "
        "(always the largest class) |",
        "",
        "Per fold (test accuracy %, mean over seeds; faces found in the fold's test frames):",
        "",
        "| fold | test actors | audio | video | fused | faces found (test) | epochs run a/v/f |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in p["runs"]:
        mm = f["modes"]
        ep = "/".join(str(round(statistics.mean(r["epochs_run"] for r in mm[m]["seeds"]))) for m in MODES)
        md.append(
            f"| {f['fold']} | {', '.join(f['actors']['test'])} | "
            + " | ".join(f"{100 * mm[m]['acc']:.1f}" for m in MODES)
            + f" | {100 * f['faces_found']['test']:.1f}% | {ep} |"
        )
    md += [
        "",
        f"Per-class recall % on the pooled test clips ({n_test} clips x {p['seeds']} seed(s)):",
        "",
        "| model | " + " | ".join(p["classes"]) + " |",
        "|---|" + "---|" * len(p["classes"]),
    ]
    for m in MODES:
        md.append(f"| {m} | " + " | ".join(f"{100 * r:.0f}" for r in s[m]["recall"]) + " |")
    return md


# ----------------------------------------------------------------------------------------------- EMODB
def run_emodb(args, config: TrainConfig) -> tuple[dict, list[str]]:
    t = time.perf_counter()
    d = emodb_audio_arrays(cache=ClipCache())
    t_feat = time.perf_counter() - t
    n_cls = len(d.classes)
    loso = []
    for speaker, sp in leave_one_speaker_out(d.speakers, d.y):
        split = {"train": sp.train, "val": sp.val, "test": sp.test}
        r = train_eval("audio", None, d.audio, d.y, split, n_cls, _seeded(config, 0))
        r.pop("pred")
        loso.append({"speaker": speaker, **r})
    print(f"emodb LOSO: {pm([r['acc'] for r in loso])}  [{time.perf_counter() - T0:.0f} s]")
    random = []
    for s in range(args.emodb_seeds):
        sp = stratified_split(d.y, seed=s)
        split = {"train": sp.train, "val": sp.val, "test": sp.test}
        r = train_eval("audio", None, d.audio, d.y, split, n_cls, _seeded(config, s))
        r.pop("pred")
        random.append({"seed": s, **r})
    if random:
        print(f"emodb random: {pm([r['acc'] for r in random])}  [{time.perf_counter() - T0:.0f} s]")
    laq = _laq_mlp_emodb()
    md = [
        "## EMODB, av_cnn audio branch (real data)",
        "",
        f"{len(d.y)} utterances, {n_cls} classes, 10 speakers; 22.05 kHz resampled to 16 kHz by "
        "`edge_ser.audio.load`; input 6 segments x 40 MFCCs (`edge_ser.inputs.av.audio_segments`). The splits "
        "are exactly those of `benchmarks/laq_table.py` (same records, same split functions and seeds); the "
        "laq_mlp figures are its fp32 rows from `benchmarks/results/laq_table_emodb.md`, given for context "
        "(laq_mlp sees a 180-d clip-mean MFCC + mel + chroma vector; av_cnn sees only 6 x 40 MFCCs).",
        "",
        "| split | av_cnn audio (fp32) accuracy % | laq_mlp fp32 accuracy % |",
        "|---|---|---|",
        f"| leave-one-speaker-out, {len(loso)} folds (1 validation speaker) | "
        f"{pm([r['acc'] for r in loso])} (n={len(loso)}) | {laq.get('loso', 'n/a')} |",
    ]
    if random:
        md.append(
            f"| stratified random 80/10/10, seeds 0..{len(random) - 1} | "
            f"{pm([r['acc'] for r in random])} (n={len(random)}) | {laq.get('random', 'n/a')} |"
        )
    md += [
        f"| chance | {100 / n_cls:.2f} (uniform); {100 * np.bincount(d.y).max() / len(d.y):.2f} "
        "(always the largest class) | |",
        "",
        "Per held-out speaker (test accuracy %): "
        + ", ".join(f"{r['speaker']} {100 * r['acc']:.1f}" for r in loso)
        + ".",
    ]
    payload = {
        "classes": list(d.classes),
        "n": len(d.y),
        "feature_seconds": t_feat,
        "loso": loso,
        "random": random,
        "laq_mlp_fp32": laq,
    }
    return payload, md


def _laq_mlp_emodb() -> dict[str, str]:
    path = RESULTS / "laq_table_emodb.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for key in ("loso", "random"):
        rows = [r for r in data.get(key, {}).get("rows", []) if r.get("recipe") == "fp32"]
        if rows:
            r = rows[0]
            out[key] = f"{r['acc_mean']:.2f} +- {r['acc_std']:.2f} (n={r['n']})"
    return out


T0 = time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=6, help="actor folds of the paired set (default 6)")
    ap.add_argument("--max-folds", type=int, default=None, help="run only the first N folds (smoke runs)")
    ap.add_argument("--seeds", type=int, default=2, help="training seeds per paired fold (default 2)")
    ap.add_argument("--emodb-seeds", type=int, default=5, help="EMODB random 80/10/10 seeds (default 5)")
    ap.add_argument("--no-paired", action="store_true", help="skip the paired RAVDESS + FER-2013 table")
    ap.add_argument("--no-emodb", action="store_true", help="skip the EMODB table")
    ap.add_argument("--epochs", type=int, default=150, help="most epochs per training (default 150)")
    ap.add_argument("--patience", type=int, default=40, help="early-stopping patience (default 40)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    config = TrainConfig(epochs=args.epochs, patience=args.patience)
    md = [
        "# av_cnn on real signals: paired RAVDESS + FER-2013 (SYNTHETIC pairs) and EMODB audio",
        "",
    ]
    payload: dict = {"train_config": config.to_dict()}
    if not args.no_paired:
        payload["paired"], lines = run_paired(args, config)
        md += lines + [""]
    if not args.no_emodb:
        payload["emodb"], lines = run_emodb(args, config)
        md += lines + [""]
    wall = time.perf_counter() - T0
    payload["wall_seconds"] = wall
    md.append(f"Wall time {wall:.0f} s on 1 thread (torch, BLAS and OpenCV pinned to one thread).")
    text = "\n".join(md)
    print(text)
    defaults = ap.parse_args([])
    full = (
        not args.no_paired
        and not args.no_emodb
        and args.max_folds is None
        and all(getattr(args, k) == getattr(defaults, k) for k in ("folds", "seeds", "emodb_seeds", "epochs"))
        and args.patience == defaults.patience
    )
    # a smoke or partial run must not overwrite the committed tables
    write_results("av_tables" if full else "av_tables_partial", payload, text)


if __name__ == "__main__":
    run_main(main)
