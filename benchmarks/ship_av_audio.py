"""Ship the audio-only companion of bundles/av_cnn: the fallback `edge-ser run --fallback` uses without a face.

    python benchmarks/ship_av_audio.py [--out bundles/av_cnn_audio]

av_cnn mode "audio" on the RAVDESS speech clips of fold 0 of the same actor split as benchmarks/av_laq.py
(the same training / validation / test actors, the same 7 labels in the same order as the fused bundle, so
the live pipeline can swap one for the other), sensitivity LAQ at 1.75 bits + QAT, TFLite variants when
tensorflow is installed. Prints its test accuracy next to the fused bundle's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, run_main  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from av_laq import PAIRED_CLASSES, ship_fold0  # noqa: E402

from converters.compress import compress  # noqa: E402
from converters.data import group_kfold, load_dataset  # noqa: E402
from converters.data.av_dataset import audio_arrays  # noqa: E402
from converters.models import av_cnn  # noqa: E402
from converters.recipe import default_av_spec  # noqa: E402
from converters.train import TrainConfig, accuracy, seed_everything, train_classifier  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "bundles" / "av_cnn_audio")
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = default_av_spec()  # MFCC segments, DC removed, level -26 dBFS
    speech = load_dataset("ravdess")
    split = group_kfold([r.speaker for r in speech], k=6, seed=0)[0]  # as av_laq.py's fold 0
    part = {int(i): p for p in ("train", "val", "test") for i in getattr(split, p)}
    keep = [i for i, r in enumerate(speech) if r.label != "calm" and i in part]  # calm has no FER class
    d = audio_arrays([speech[i] for i in keep], spec)
    y = np.array([PAIRED_CLASSES.index(speech[i].label) for i in keep])
    idx = {p: np.array([k for k, i in enumerate(keep) if part[i] == p]) for p in ("train", "val", "test")}
    X = {p: d.audio[v] for p, v in idx.items()}
    Y = {p: y[v] for p, v in idx.items()}
    seed_everything(0)
    model = av_cnn("audio", num_classes=len(PAIRED_CLASSES))
    model.set_normalization(torch.as_tensor(X["train"].mean((0, 1))), torch.as_tensor(X["train"].std((0, 1))))
    config = TrainConfig(epochs=100, patience=20, seed=0)
    fp = train_classifier(model, X["train"], Y["train"], X["val"], Y["val"], config, progress=False).model
    fp_acc = accuracy(fp, X["test"], Y["test"])
    c = compress("sensitivity@1.75", fp, X["train"], Y["train"], X["val"], Y["val"], seed=0)
    acc = c.accuracy(X["test"], Y["test"])
    ship_fold0(
        args.out,
        c,
        spec,
        name="av_cnn_audio",
        dataset="RAVDESS speech (calm dropped), the audio side of the paired AV set",
        test=acc,
        float_test=fp_acc,
        idx=idx,
        calibration={"audio": X["train"]},
    )
    fused = load_bundle(REPO / "bundles" / "av_cnn").manifest["accuracy"]["test"]
    b = load_bundle(args.out)
    print(
        f"{args.out}: audio-only av_cnn, {c.plan}; test accuracy fp32 {fp_acc:.3f}, LAQ+QAT {acc:.3f} "
        f"(fused bundle: {fused:.3f}); weights.esq {len(b.read('weights.esq')) / 1000:.1f} KB"
    )


if __name__ == "__main__":
    run_main(main)
