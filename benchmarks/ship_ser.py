"""Ship the speaker-independent recogniser of a language: functionals_mlp on the eGeMAPS-layout functionals,
per-speaker normalised, LAQ + QAT at <= 2 average bits, with online speaker normalisation in the bundle.

    python benchmarks/ship_ser.py --data emodb --out bundles/ser_emodb
    python benchmarks/ship_ser.py --data ravdess --out bundles/ser_ravdess

The recipe is the si_table's best small row (benchmarks/results/si_table.md): every training speaker is
standardised by its own statistics; the validation speaker(s) (the last in sorted order: EMODB 16, RAVDESS
actors 11 and 12), never trained on, choose the float checkpoint, the bit allocation and the QAT checkpoint
by UAR. The bundle records the training prior (`speaker_norm`, edge_ser.speaker): on the device each clip of
the user joins the running statistics and is standardised by them. Its speaker-independent accuracy is the
si_table's leave-one-speaker-out figure (online-20 row); the validation figures here are for the record.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from converters.compress import compress  # noqa: E402
from converters.evaluate import index_metrics  # noqa: E402
from converters.export.bundle import build_bundle  # noqa: E402
from converters.registry import build  # noqa: E402
from converters.si_eval import functionals_input  # noqa: E402
from converters.speaker_norm import transductive  # noqa: E402
from converters.train import TrainConfig, predict, seed_everything, train_classifier  # noqa: E402
from edge_ser.features.egemaps import FunctionalsSpec  # noqa: E402
from edge_ser.features.speaker_norm import SpeakerNorm  # noqa: E402
from edge_ser.inputs.functionals import FunctionalsKind  # noqa: E402

VAL_SPEAKERS = {"emodb": 1, "ravdess": 2}
"""How many speakers (the last in sorted order) validate: RAVDESS by a pair (one male, one female actor)."""
PRIOR_WEIGHT = 3.0
"""Clips the training prior counts as on the device (the si_table's validation chose from 1, 3, 10, 30)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=sorted(VAL_SPEAKERS), default="emodb")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--recipe", default="sensitivity@2.0")
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = functionals_input(args.data)
    speakers = sorted(set(d.speakers))
    val_spk = [str(s) for s in speakers[-VAL_SPEAKERS[args.data] :]]
    val = np.isin(d.speakers, val_spk)
    tr = ~val
    Z = transductive(d.X, d.speakers)  # each speaker by its own statistics (labels unused)
    n = len(d.classes)

    def uar_of(model, rows) -> float:
        return index_metrics(d.y[rows], predict(model, Z[rows]).argmax(1), list(d.classes)).uar

    by_uar = {"val_accuracy": lambda logits: index_metrics(d.y[val], logits.argmax(1), list(d.classes)).uar}
    seed_everything(0)
    net = build("functionals_mlp", num_classes=n, in_features=d.X.shape[1])
    net.set_normalization(torch.as_tensor(Z[tr].mean(0)), torch.as_tensor(Z[tr].std(0)))
    fp = train_classifier(
        net, Z[tr], d.y[tr], Z[val], d.y[val], TrainConfig(seed=0), progress=False, **by_uar
    )
    c = compress(args.recipe, fp.model, Z[tr], d.y[tr], Z[val], d.y[val], seed=0, train_kwargs=by_uar)
    prior = SpeakerNorm.from_speakers(d.X[tr], d.speakers[tr], prior_weight=PRIOR_WEIGHT)
    figures = {"val_uar": uar_of(c.model, val), "val_float_uar": uar_of(fp.model, val)}
    accuracy = {
        **figures,
        "dataset": args.data,
        "split": {
            "kind": "speaker holdout (validation only; the speaker-independent figure is si_table's LOSO)",
            "val_speakers": val_spk,
            "train_speakers": [s for s in speakers if s not in val_spk],
            "sizes": {"train": int(tr.sum()), "val": int(val.sum())},
        },
    }
    out = build_bundle(
        args.out,
        c.model,
        c.plan,
        c.codes,
        name="functionals_mlp",
        labels=list(d.classes),
        kind=FunctionalsKind(FunctionalsSpec()),
        accuracy=accuracy,
        extra={
            "speaker_norm": {"input": "functionals", **prior.to_dict()},
            "recipe": {
                "features": "eGeMAPS-layout functionals (88), per-speaker standardised",
                "compression": args.recipe,
                "made_by": f"python benchmarks/ship_ser.py --data {args.data} --out {args.out}",
            },
        },
    )
    print(
        f"{out}: functionals_mlp {c.plan.average_bits:.2f} bits, {c.packed_bytes() / 1000:.1f} KB packed; "
        f"validation speakers {val_spk}: UAR {100 * figures['val_uar']:.1f} % "
        f"(float {100 * figures['val_float_uar']:.1f} %)"
    )


if __name__ == "__main__":
    main()
