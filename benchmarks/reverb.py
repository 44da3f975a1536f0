"""Reverberation: do reverberant training copies keep the ser_* recipes working in a room?

    export EDGE_SER_DATA=/work/shared/datasets
    python benchmarks/reverb.py [--data emodb,ravdess] [--folds 0,1,...]

The ser_* recipes' fixed si_table rows (ser_emodb's: the class-balanced 2-bit functionals MLP on EMODB
leave-one-speaker-out; ser_ravdess's: the plain-loss one on RAVDESS leave-one-actor-out), each trained three times
per fold on the same clips: on the shipped training set (`functionals_ext_aug`: 2 noisy and 2 speed-perturbed
copies of every training clip), and on that set plus 2 reverberant copies of every training clip
(`converters.featurize.reverb_functionals_matrix`: each copy in its own synthetic room, RT60 0.2-1.0 s, DRR -6 to
+6 dB), and a third time with those copies drawn per speaker instead of per clip (all of a speaker's clips in one
room and one impulse response per copy, as a device session is). Each model is scored on the test speaker's clips
as recorded and on the same clips in two rooms never trained on (RT60 0.4 s and 0.8 s, DRR 0 dB, other impulse
responses: seed 1), each speaker standardised by its own clips in that room (transductive) and by the training
prior updated with 20 of them (online-20, prior weight 3 as the bundles ship; 3 seeded orders pooled). Validation:
the fold's validation speaker, clean, as in the si_table. Two-member ensembles (logits averaged, as the bundles'
`FunctionalsEnsemble` runs them) are scored the same way: the shipped set at seeds 0 and 1 (the same-size control),
and the shipped-set model with a reverberant member (one room per speaker on EMODB, a room per clip on RAVDESS: the
better single model in the rooms). Every finished fold is one line of
benchmarks/results/reverb_runs.jsonl; a re-run trains only what is missing.

Writes benchmarks/results/reverb.{md,json}. The adoption rule is in docs/protocol.md ("Reverberation").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, doc_body, pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from converters.featurize import FeatureCache, reverb_functionals_matrix  # noqa: E402
from converters.pipeline import load_records  # noqa: E402
from converters.protocol import PROTOCOLS  # noqa: E402
from converters.reverb import RoomSpec  # noqa: E402
from converters.si_eval import fit_laq_mlp, fold_inputs, functionals_ext_aug_input, pooled  # noqa: E402
from converters.speaker_norm import NormMode, online, prior, transductive  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402
from edge_ser.features.egemaps import FunctionalsSpec  # noqa: E402

RUNS = RESULTS / "reverb_runs.jsonl"
SETUPS = {
    "emodb": ("emodb-loso", True, "ser_emodb's recipe (D, class-balanced)"),
    "ravdess": ("ravdess-loao", False, "ser_ravdess's recipe (C, plain loss)"),
}
"""Data set -> (protocol, class-balanced loss, row)."""
TRAIN_ROOMS = RoomSpec()
"""The rooms of the reverberant training copies (RT60 0.2-1.0 s, DRR -6 to +6 dB), seed 0."""
TEST_ROOMS = {
    "room 0.4 s": RoomSpec(rt60=(0.4, 0.4), drr_db=(0.0, 0.0)),
    "room 0.8 s": RoomSpec(rt60=(0.8, 0.8), drr_db=(0.0, 0.0)),
}
"""The test rooms (never trained on: impulse responses of seed 1)."""
TRAIN_COPIES = 2
PER_SPEAKER = "+ reverberant copies, one room per speaker"
"""The third training set: the copies with all of a speaker's clips in one room (`sessions=`), per copy."""
SEED1 = "shipped set, seed 1"
"""The shipped set trained at seed 1: the second member of the control ensemble."""
SINGLES = ("shipped set", "+ reverberant copies", PER_SPEAKER, SEED1)
TWO_SEEDS = "ensemble: shipped set, seeds 0 + 1"
MIXED = "ensemble: shipped set + reverberant member"
REVERBERANT_MEMBER = {"emodb": PER_SPEAKER, "ravdess": "+ reverberant copies"}
"""The mixed ensemble's reverberant member per data set: the better single model in the rooms of each row."""


def ensembles(dataset: str) -> dict[str, tuple[str, str]]:
    """Two-member ensembles (logits averaged) -> their members: the same-size control and the mixed one."""
    return {TWO_SEEDS: ("shipped set", SEED1), MIXED: ("shipped set", REVERBERANT_MEMBER[dataset])}


class Averaged:
    """Members' logits averaged, the way `FunctionalsEnsemble` runs a bundle's members on the device."""

    def __init__(self, *members) -> None:
        self.members = members

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.mean([m.scores(X) for m in self.members], axis=0).argmax(1)


PRIOR_WEIGHT = 3.0
"""The prior weight of the online-20 figures: the bundles' (benchmarks/ship_ser.py `PRIOR_WEIGHT`)."""
ONLINE = 20


def conditions(dataset: str, cache: FeatureCache) -> dict[str, np.ndarray]:
    """The test captures: the clips as recorded is the input's X; each test room one [n, dim] matrix."""
    _, records = load_records(dataset, None)
    spec = FunctionalsSpec(extended=True)
    return {
        name: reverb_functionals_matrix(
            records, spec, rooms=rooms, copies=1, seed=1, cache=cache, progress=True
        )[0]
        for name, rooms in TEST_ROOMS.items()
    }


def score(fitted, X: np.ndarray, data, fold) -> dict[str, float]:
    """Transductive and online-20 UAR of the fold's test speakers on one capture X of every clip."""
    s = fold.split
    # the floors are the fit's: from the clean training and validation rows, as the bundle ships them
    trans = transductive(X, data.speakers, floor_from=np.asarray(data.X)[s.seen])
    out = {"transductive": pooled(data.y[s.test], [fitted.predict(trans[s.test])], data.classes).uar}
    # the prior is the clean training speakers' (what the bundle ships); the test speaker's clips are X
    base = prior(data.X, data.speakers, s.train, prior_weight=PRIOR_WEIGHT)
    views = online(X, data.speakers, s.test, base, ONLINE, seed=0)
    out[f"online-{ONLINE}"] = pooled(data.y[s.test], [fitted.predict(v) for v in views], data.classes).uar
    return out


def run(dataset: str, folds: list[int] | None) -> list[dict]:
    protocol, balanced, _ = SETUPS[dataset]
    cache = FeatureCache()
    plain = functionals_ext_aug_input(dataset, cache=cache)
    _, records = load_records(dataset, None)
    spec = FunctionalsSpec(extended=True)
    copies = {  # the reverberant training copies: a room per clip, or one per speaker
        kind: reverb_functionals_matrix(
            records,
            spec,
            rooms=TRAIN_ROOMS,
            copies=TRAIN_COPIES,
            seed=0,
            sessions=sessions,
            cache=cache,
            progress=True,
        )
        for kind, sessions in (("clip", None), ("speaker", plain.speakers))
    }
    with_rev = replace(plain, copies=np.concatenate([plain.copies, copies["clip"]]))
    with_sessions = replace(plain, copies=np.concatenate([plain.copies, copies["speaker"]]))
    tests = {"as recorded": plain.X, **conditions(dataset, cache)}
    all_folds = PROTOCOLS[protocol].folds(plain.speakers, plain.y)
    # a fold past the last was an IndexError after the earlier folds (-1: the last fold, as 'fold -1')
    if bad := [i for i in folds or () if not 0 <= i < len(all_folds)]:
        raise ConfigError(
            f"--folds: {', '.join(map(str, bad))} not among {dataset}'s folds 0..{len(all_folds) - 1}"
        )
    done = {(r["data"], r["variant"], r["fold"]) for r in _records()}
    fit = fit_laq_mlp("sensitivity@2.0", model="functionals_mlp", balanced=balanced)
    norm = NormMode.parse("transductive")
    sets = {"shipped set": (plain, 0), "+ reverberant copies": (with_rev, 0), PER_SPEAKER: (with_sessions, 0)}
    sets[SEED1] = (plain, 1)
    mixes = ensembles(dataset)
    for i in folds if folds is not None else range(len(all_folds)):
        fold = all_folds[i]
        missing = [v for v in (*SINGLES, *mixes) if (dataset, v, i) not in done]
        needed = {v for v in missing if v in sets} | {m for v in missing if v in mixes for m in mixes[v]}
        models, seconds = {}, {}
        for (
            variant
        ) in SINGLES:  # every model of the fold an unfinished record needs (training is deterministic)
            if variant not in needed:
                continue
            t0 = time.time()
            data, seed = sets[variant]
            fd, _ = fold_inputs(data, fold, norm, seed=seed)
            models[variant], seconds[variant] = fit(fd), round(time.time() - t0, 1)
        recorded = {r["variant"]: r for r in _records() if r["data"] == dataset and r["fold"] == i}
        for variant in set(models) & set(recorded):  # retrained for an ensemble: the same model as recorded?
            again = score(models[variant], plain.X, plain, fold)
            if again != recorded[variant]["figures"]["as recorded"]:
                print(
                    f"warning: fold {i}, {variant}: retrained {again}, recorded {recorded[variant]}",
                    flush=True,
                )
        for variant in missing:
            fitted = Averaged(*(models[m] for m in mixes[variant])) if variant in mixes else models[variant]
            rec = {
                "data": dataset,
                "variant": variant,
                "fold": i,
                "fold_name": fold.name,
                "bits": round(float(np.mean([models[m].bits for m in mixes.get(variant, (variant,))])), 4),
                "figures": {name: score(fitted, X, plain, fold) for name, X in tests.items()},
                "seconds": sum(seconds.get(m, 0.0) for m in mixes.get(variant, (variant,))),
            }
            print(json.dumps(rec), flush=True)
            with RUNS.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
    return _records()


def _records() -> list[dict]:
    return [json.loads(line) for line in RUNS.read_text().splitlines()] if RUNS.exists() else []


def markdown(records: list[dict]) -> tuple[str, dict]:
    lines = [
        "# Reverberation: the ser_* recipes with and without reverberant training copies",
        "",
        doc_body(__doc__),
        "",
    ]
    lines += [
        "UAR %, mean over folds (transductive / online-20):",
        "",
        "| row | protocol | training set | folds | as recorded | room 0.4 s | room 0.8 s | rooms, mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary: dict = {}
    for dataset, (protocol, _, row) in SETUPS.items():
        for variant in (*SINGLES, *ensembles(dataset)):
            mine = [r for r in records if r["data"] == dataset and r["variant"] == variant]
            if not mine:
                continue
            cells, fig = [], {}
            for cond in ("as recorded", *TEST_ROOMS):
                t = float(np.mean([r["figures"][cond]["transductive"] for r in mine]))
                o = float(np.mean([r["figures"][cond][f"online-{ONLINE}"] for r in mine]))
                fig[cond] = {"transductive": round(t, 6), f"online-{ONLINE}": round(o, 6)}
                cells.append(f"{100 * t:.1f} / {100 * o:.1f}")
            rt = np.mean([fig[c]["transductive"] for c in TEST_ROOMS])
            ro = np.mean([fig[c][f"online-{ONLINE}"] for c in TEST_ROOMS])
            fig["rooms mean"] = {"transductive": round(float(rt), 6), f"online-{ONLINE}": round(float(ro), 6)}
            cells.append(f"{100 * rt:.1f} / {100 * ro:.1f}")
            summary.setdefault(dataset, {})[variant] = {"folds": len(mine), **fig}
            lines.append(f"| {row} | {protocol} | {variant} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines), summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="emodb,ravdess", help="comma-separated: emodb, ravdess")
    ap.add_argument("--folds", default=None, help="comma-separated fold indices (default: all)")
    args = ap.parse_args()
    try:  # a word was a ValueError traceback
        folds = None if args.folds is None else [int(f) for f in args.folds.split(",")]
    except ValueError:
        ap.error(f"--folds {args.folds}: give fold indices as N or N,N,... (e.g. 0,1,2)")
    if unknown := [d for d in args.data.split(",") if d not in SETUPS]:  # was a KeyError traceback
        ap.error(f"--data: unknown {', '.join(unknown)}; known: {', '.join(SETUPS)}")
    for dataset in args.data.split(","):
        run(dataset, folds)
    md, summary = markdown(_records())
    write_results("reverb", {"summary": summary, "records": _records()}, md)


if __name__ == "__main__":
    run_main(main)
