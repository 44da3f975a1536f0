"""The speaker-independent figure of the whole ser_* shipping procedure, nested: every choice inside each fold.

    export EDGE_SER_DATA=/work/shared/datasets
    python benchmarks/ship_ser_nested.py --data emodb      # leave one speaker out, 10 folds
    python benchmarks/ship_ser_nested.py --data ravdess    # leave one actor out, 12 folds
    python benchmarks/ship_ser_nested.py --data emodb --choose-by device   # stage 0 scored as ship_ser's flag
    python benchmarks/ship_ser_nested.py --data emodb --seed 0,1,2   # the procedure at 3 training seeds, pooled
    python benchmarks/ship_ser_nested.py --data path/to/mydata --tables mytables   # your own recordings

The si_table's rows are fixed recipes; the shipped bundles also *choose* their recipe (noisy copies, speed copies,
loss) on validation speakers (benchmarks/ship_ser.py, stage 0), and that choice was made on speakers that are
test speakers of the si_table's folds. Here each outer fold holds one speaker out and runs ship_ser's procedure
on the others exactly as it ships: stage 0 (every variant on inner folds of speaker pairs, then `--members auto`'s
choice of one MLP or a seed ensemble on the same folds, within the bit budget), stage 1 (epochs and bit plan on
the last speaker(s), per member), the refit on every remaining speaker, the training prior with the shipped prior
weight; then the held-out speaker is scored once, transductive and online after 1, 5 and 20 of its clips (3
seeded clip orders pooled, as si_table's online rows). Nothing of the held-out speaker is seen before that.
Stage 1's model (before the refit) is scored too, for the record. The shipped model also scores the held-out
speaker's clips cut to their first 1.0 and 1.5 s of speech (`TEST_CUTS`, from 0.2 s before it), standardised by its
statistics of the clips as recorded and the training prior's floors: a device that has learnt its speaker, hearing a
short utterance (docs/protocol.md, "Utterance length"). `--length-views on` is ship_ser.py's flag (writes
..._lengths).

Every finished fold is one line of benchmarks/results/ship_ser_nested_runs/<data>.jsonl: a re-run trains only
what is missing (a record from before the ensemble choice keeps its stage-0 variant and redoes the rest).
Output: benchmarks/results/ship_ser_nested_<data>.{md,json} (`--choose-by device`: ..._<data>_device, its own
runs file).

`--data FOLDER` nests the procedure `ship_ser.py --data FOLDER` ships (docs/data.md, "The recommended
recipe on your own data"): leave one speaker out over the folder's speakers (at least 5: each outer fold's
inner folds need 4), the last speaker of each fold validating stage 1 (ship_ser.py's default for a folder).
Its tables, <name> being the folder's name, go to `--tables DIR` (required for a folder; never the
repository's benchmarks/results/), and `ship_ser.py --data FOLDER --tables DIR` reads the figure from there
into the bundle.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, folder_problem, parse_seeds, pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ship_ser import (  # noqa: E402
    BIT_BUDGET,
    CHOOSE_BY,
    DATA_HELP,
    FEATURES,
    MEMBERS,
    ONLINE_CLIPS,
    PRIOR_WEIGHT,
    RECIPE,
    VARIANTS,
    Rows,
    choose_members,
    choose_reverb,
    choose_variant,
    data_speakers,
    early_member,
    ensemble_of,
    nested_name,
    refit_members,
    resolve_data,
    reverberant_member,
    short_speakers,
    speaker_problem,
    stage1,
    stage1_ensemble,
    tables_folder,
    training_matrix,
    variant_label,
    within_budget,
)

from converters.compress import Compressed  # noqa: E402
from converters.data.scan import DatasetWarning  # noqa: E402
from converters.evaluate import Metrics  # noqa: E402
from converters.protocol import mean_std  # noqa: E402
from converters.si_eval import EARLY_VIEWS, pooled  # noqa: E402
from converters.speaker_norm import ORDERS, online, transductive  # noqa: E402
from converters.train import predict  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402
from edge_ser.features.speaker_norm import SpeakerNorm  # noqa: E402
from edge_ser.fileio import atomic_write  # noqa: E402

ONLINE = (1, 5, 20)
SEED_STRIDE = 10
"""`--seed S` trains member k of every model at seed SEED_STRIDE * S + k (S = 0: the seeds ship_ser.py ships), so
the repeats share no training seed."""
TEST_CUTS = (1.0, 1.5)
"""Seconds of speech the held-out speaker's clips are also scored at (`test_cuts`)."""


def model_labels(folds: list[dict]) -> dict[str, str]:
    """How the tables name each scored model of `folds`' records: the shipped pair, stage 1's model, and the pair's
    first member alone (the plain one with `--early-views member`, the close-talk one with `--reverb member`)."""
    pair = all(f.get("early_member") for f in folds)
    return {
        "refit": "shipped procedure (refit)",
        "stage1": "stage 1's model (no refit)",
        "member0": "its plain member alone (refit)" if pair else "its close-talk member alone (refit)",
    }


def figures(y: np.ndarray, predictions: list[np.ndarray], classes: list[str]) -> dict:
    """UAR, WAR and the summed confusion of one or more passes over the same clips."""
    m = pooled(y, predictions, classes)
    return {"uar": float(m.uar), "war": float(m.accuracy), "confusion": m.matrix.tolist()}


def outer_fold(
    rows: Rows,
    test: str,
    val_speakers: int,
    cached: dict | None = None,
    *,
    by: str = "transductive",
    reverb: str = "off",
    rooms: dict[str, np.ndarray] | None = None,
    early_pair: bool = False,
    cuts: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    variant_members: int = 1,
) -> dict:
    """ship_ser's procedure on every speaker but `test` (stage 1 validated by the last `val_speakers` of
    them), then `test` scored once. `cached`: an earlier record of this fold whose stage-0 variant choice is
    reused (stage 0 is deterministic; it is most of a fold's time). `by`: stage 0's score (ship_ser's
    `--choose-by`). `reverb="auto"`: ship_ser's `--reverb auto` (stage 0c on the inner folds); when it says no
    and `cached` is a finished record of the procedure without the copies, that record is the answer (the same
    procedure, deterministic). `reverb="member"`: ship_ser's `--reverb member` (two members, the second
    trained with the copies; its first member alone, refit, is scored too as `member0`: the procedure without
    the reverberant member, paired). `rooms`: test rooms, each [clips, dim] in the clean rows' order, where
    the held-out speaker is also scored (transductive and online-20) when the copies were used. `early_pair`:
    ship_ser's `--early-views member` (two members, the second trained with early views; its first member alone,
    refit, is scored too as `member0`). `cuts`: the clips cut short (`test_cuts`), where the shipped model and
    `member0` are also scored (transductive; `rows.lengths`: ship_ser's `--length-views on`). `seed`: the
    procedure's training seed (`SEED_STRIDE`); a stage-0 choice reused from `cached` is the one made at its seed.
    `variant_members=2` (with `early_pair`): the pair is trained for stage 0's runner-up variant too, at seeds +2
    and +3, and the four members are averaged (docs/protocol.md, "Members over stage 0's two best variants")."""
    t0 = time.perf_counter()
    base_seed = SEED_STRIDE * seed
    r = rows.subset(rows.spk != test)
    if cached is None:
        choice = choose_variant(
            replace(r, early_views=(), reverb=False, lengths=False), VARIANTS, RECIPE, by=by, seed=base_seed
        )
        chosen = choice["chosen"]
        inner_mean = {variant_label(v): round(m, 6) for v, m in choice["mean"].items()}
    else:
        ch = cached["chosen"]
        chosen, inner_mean = (ch["noise_copies"], ch["speed"], ch["class_balanced"]), cached["inner_mean"]
    reverb_choice = None
    if reverb == "auto":
        known = (cached or {}).get("reverb")
        if isinstance(known, dict) and {"reverb", "on", "off"} <= set(known):
            rc = known  # stage 0c of this fold in an earlier --reverb auto run: deterministic, as stage 0
        else:
            rc = choose_reverb(
                replace(r, early_views=(), lengths=False),
                chosen,
                RECIPE,
                by=by,
                off=inner_mean[variant_label(chosen)],
                seed=base_seed,
            )
        reverb_choice = {k: rc[k] for k in ("reverb", "on", "off")}
        same = cached is not None and "refit" in cached and not (cached.get("reverb") or {}).get("reverb")
        # a record of `--reverb on` or `member` trained with the copies too, though it has no stage-0c choice
        same = (
            same
            and not cached.get("reverb_copies")
            and not cached.get("reverb_member")
            and "rooms" not in cached
        )
        same = same and bool(cached.get("early_member")) == early_pair  # a record of the same members
        same = same and cached.get("seed", 0) == seed  # ... trained at the same seeds
        same = same and cached.get("variant_members", 1) == variant_members  # ... of the same variants
        same = same and bool(cached.get("length_views")) == r.lengths and ("cuts" in cached or not cuts)
        if not rc["reverb"] and same and cached.get("early_views", []) == list(r.early_views):
            return {**cached, "reverb": reverb_choice, "reused": True}
        r = replace(r, reverb=rc["reverb"])
    elif reverb == "on":
        r = replace(r, reverb=True)
    val_spk = r.speakers()[-val_speakers:]
    runner_up = None
    if reverb == "member" or early_pair:
        member_choice = None
        first = stage1(r, chosen, val_spk, RECIPE, log=False, seed=base_seed)
        second = early_member if early_pair else reverberant_member
        seeds = [first, second(r, chosen, val_spk, RECIPE, first, seed=base_seed)]
        runner_up = second_variant(inner_mean, chosen) if variant_members == 2 else None
        if runner_up is not None:  # one candidate (a variant given, not chosen): the pair alone
            seeds += [
                stage1(r, runner_up, val_spk, RECIPE, log=False, seed=base_seed + 2, norm=first["norm"]),
                early_member(r, runner_up, val_spk, RECIPE, first, seed=base_seed + 2),
            ]
        members = len(seeds)
    else:
        member_choice = choose_members(r, chosen, RECIPE, seed=base_seed)
        members = member_choice["members"]
        seeds = [stage1(r, chosen, val_spk, RECIPE, log=False, seed=base_seed + k) for k in range(members)]
    seeds, over_budget = within_budget(seeds)
    fit = r.trained_on(chosen)
    fitted = refit_fold(r, chosen, runner_up, seeds, base_seed)
    model = ensemble_of(fitted)[0]
    staged, plan, codes = stage1_ensemble(seeds)
    base = r.prior(fit)
    test_rows = np.flatnonzero((rows.spk == test) & (rows.copy_of == 0))
    y = rows.y[test_rows]
    out: dict = {
        "test": test,
        "seed": seed,
        "chosen": {"noise_copies": chosen[0], "speed": chosen[1], "class_balanced": chosen[2]},
        "inner_mean": inner_mean,
        "choose_by": by,
        "early_views": list(rows.early_views),
        "members": len(seeds),
        "members_chosen": members,
        "over_budget_bits": over_budget,
        "members_choice": (
            None
            if member_choice is None
            else {k: round(member_choice[k], 6) for k in ("seed0", "single", "ensemble")}
        ),
        "reverb_member": reverb == "member",
        "early_member": early_pair,
        **(
            {}
            if runner_up is None
            else {
                "variant_members": variant_members,
                "runner_up": {
                    "noise_copies": runner_up[0],
                    "speed": runner_up[1],
                    "class_balanced": runner_up[2],
                },
            }
        ),
        "length_views": r.lengths,
        "reverb_copies": bool(r.reverb),
        "val_speakers": val_spk,
        "epochs": [s["epochs"] for s in seeds],
        "bits": float(plan.average_bits),
        "packed_kb": Compressed(RECIPE, plan, staged, codes, 0.0).packed_bytes() / 1000,
        "n": len(test_rows),
    }
    scored = {"refit": model, "stage1": staged}
    if reverb == "member" or early_pair:
        scored["member0"] = fitted[0][0]
    # the held-out speaker standardised by its own clips, its floors from the training rows (not from every row)
    clean = r.copy_of == 0
    Zt = transductive(rows.X[test_rows], rows.groups[test_rows], floor_from=r.X[clean])
    for name, m in scored.items():
        norms = {"transductive": figures(y, [predict(m, Zt).argmax(1)], rows.classes)}
        for k in ONLINE:
            views = online(rows.X, rows.spk, test_rows, base, k, seed=0)
            norms[f"online-{k}"] = figures(y, [predict(m, v).argmax(1) for v in views], rows.classes)
        out[name] = norms
    if cuts:
        known = known_speaker(base, rows.X[test_rows])
        views = {"as recorded": rows.X[test_rows], **{name: C[test_rows] for name, C in cuts.items()}}
        out["cuts"] = {
            name: {
                key: figures(y, [predict(m, known.apply(V)).argmax(1)], rows.classes)
                for key, m in scored.items()
                if key != "stage1"
            }
            for name, V in views.items()
        }
    if reverb_choice is not None:
        out["reverb"] = reverb_choice
    if (r.reverb or reverb == "member") and rooms:
        room_models = {"rooms": model, **({"member0_rooms": fitted[0][0]} if reverb == "member" else {})}
        for key, m in room_models.items():
            out[key] = {
                room: room_figures(m, R, rows, test_rows, base, r.X[clean]) for room, R in rooms.items()
            }
    out["seconds"] = time.perf_counter() - t0
    return out


def refit_fold(
    rows: Rows,
    chosen: tuple[int, bool, bool],
    runner_up: tuple[int, bool, bool] | None,
    runs: list[dict],
    seed: int,
) -> list:
    """The members refit on every training speaker: all on `chosen`'s rows and loss, or, with a runner-up
    (`--variant-members 2`), each pair on its own variant's."""
    variants = (
        [chosen] * len(runs) if runner_up is None else [chosen, chosen, runner_up, runner_up][: len(runs)]
    )
    return refit_members(
        rows, [rows.trained_on(v) for v in variants], runs, [v[2] for v in variants], seed=seed
    )


def second_variant(
    inner_mean: dict[str, float], chosen: tuple[int, bool, bool]
) -> tuple[int, bool, bool] | None:
    """Stage 0's runner-up: the best mean inner-fold score after `chosen` (exact ties: the earlier variant, as
    `choose_variant` breaks them); None when stage 0 had no other candidate."""
    rest = [v for v in VARIANTS if v != chosen and variant_label(v) in inner_mean]
    return max(rest, key=lambda v: (inner_mean[variant_label(v)], -VARIANTS.index(v))) if rest else None


def missing_classes(rows: Rows, tests: list[str]) -> list[str]:
    """One line per outer fold whose training speakers hold no clip of a class its test speaker has: the model
    never sees that class, and its recall counts 0 in the fold's UAR."""
    out = []
    for test in tests:
        held = rows.spk == test
        absent = sorted(set(rows.y[held & (rows.copy_of == 0)]) - set(rows.y[~held & (rows.copy_of == 0)]))
        if absent:
            names = ", ".join(rows.classes[c] for c in absent)
            out.append(
                f"fold {test}: no training clip of {names} (only {test} has it): the model never sees it, and its "
                "recall counts 0 in this fold's UAR"
            )
    return out


def room_figures(
    model, R: np.ndarray, rows: Rows, test_rows: np.ndarray, base, floor_from: np.ndarray
) -> dict:
    """The held-out speaker in one test room (R: [clips, dim], clean rows' order): the figures of its clips
    standardised by all of them in the room (transductive, the keys `figures` gives; the variance floors from the
    fold's clean training rows `floor_from`, as the clean figures) and after 20 of them from the training prior
    `base` (`online-20`)."""
    y, spk = rows.y[test_rows], rows.spk[: len(R)]
    Zt = transductive(R[test_rows], spk[test_rows], floor_from=floor_from)
    out = figures(y, [predict(model, Zt).argmax(1)], rows.classes)
    views = online(R, spk, test_rows, base, ONLINE_CLIPS, seed=0)
    out[f"online-{ONLINE_CLIPS}"] = figures(y, [predict(model, v).argmax(1) for v in views], rows.classes)
    return out


def test_rooms(data: str) -> dict[str, np.ndarray]:
    """benchmarks/reverb.py's test rooms (RT60 0.4 and 0.8 s, DRR 0 dB, seed 1), each [clips, dim] in the clean
    rows' order."""
    from reverb import conditions

    from converters.featurize import FeatureCache

    return conditions(data, FeatureCache())


def test_cuts(data: str) -> dict[str, np.ndarray]:
    """Every clip of `data` cut to its first TEST_CUTS seconds of speech (from 0.2 s before it; `converters.
    featurize.cropped_functionals_matrix`): {"first 1 s": [clips, dim], ...}, raw functionals in the clean rows'
    order (`known_speaker` standardises them in each fold)."""
    from converters.featurize import FeatureCache, cropped_functionals_matrix
    from converters.pipeline import load_records

    _, records = load_records(data, None)
    cut = cropped_functionals_matrix(
        records, FEATURES["extended"], lengths=TEST_CUTS, cache=FeatureCache(), progress=True
    )
    return {f"first {c:g} s": v for c, v in zip(TEST_CUTS, cut, strict=True)}


def known_speaker(base: SpeakerNorm, clips: np.ndarray) -> SpeakerNorm:
    """A device that has learnt its speaker: the speaker's own statistics of `clips` (its clips as recorded; no
    prior weight), with the floors of the fold's training prior `base` (a feature the prior says never moves gives 0,
    as on the device: EMODB's equivalent sound level is the same for every 2.00 s clip, and a cut clip's is not)."""
    return SpeakerNorm(base.prior_mean, base.prior_var, prior_weight=0.0, var_floor=base.var_floor).update(
        np.asarray(clips, np.float64)
    )


def pm(mean: float, std: float, n_folds: int) -> str:
    """A fraction as "mean +- std" in %, or "mean (one fold)" when there is one fold (its spread is not 0, it is
    not known: a `--limit-folds 1` run printed "77.5 +- 0.0")."""
    return f"{100 * mean:.1f} +- {100 * std:.1f}" if n_folds > 1 else f"{100 * mean:.1f} (one fold)"


def cuts_table(folds: list[dict]) -> list[str]:
    """The held-out speakers' clips as recorded and cut short (`test_cuts`), UAR % transductive, mean +- std over
    folds, per scored model."""
    names = [n for n in folds[0]["cuts"] if n != "as recorded"]
    keys = [k for k in ("refit", "member0") if all(k in f["cuts"][names[0]] for f in folds)]
    label = model_labels(folds)
    lines = [
        "The held-out speaker's clips as recorded and cut to their first seconds of speech (from 0.2 s before it), "
        "all standardised by its own statistics of the clips as recorded with the training prior's floors "
        "(`known_speaker`: a device that has learnt its speaker, hearing a short utterance), UAR %, mean +- std "
        "over folds:",
        "",
        "| model | as recorded | " + " | ".join(f"{n} of speech" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for key in keys:
        cells = [mean_std([f["cuts"][n][key]["uar"] for f in folds]) for n in ("as recorded", *names)]
        lines.append(f"| {label[key]} | " + " | ".join(pm(m, sd, len(folds)) for m, sd in cells) + " |")
    return lines


def summary(
    data: str,
    folds: list[dict],
    classes: list[str],
    total: int,
    by: str = "transductive",
    early: tuple[int, ...] = (),
    stage0_from: str | None = None,
    protocol: str | None = None,
    seed: int = 0,
) -> tuple[dict, str]:
    """The nested run's payload and table over `folds`. `protocol`: what the outer folds are (default: leave
    one actor out for RAVDESS, else leave one speaker out); `seed`: the procedure's training seed (`--seed`)."""
    s0 = SEED_STRIDE * seed
    norms = ["transductive", *(f"online-{k}" for k in ONLINE)]

    def stats(model: str, norm: str) -> dict:
        out = {"confusion": np.sum([f[model][norm]["confusion"] for f in folds], axis=0).tolist()}
        for key in ("uar", "war"):  # mean and sample std over folds, as every table (docs/protocol.md)
            out[key], out[f"{key}_std"] = mean_std([float(f[model][norm][key]) for f in folds])
        return out

    models = ("refit", "stage1", *(("member0",) if all("member0" in f for f in folds) else ()))
    table = {model: {norm: stats(model, norm) for norm in norms} for model in models}
    counts: dict[str, int] = {}
    for f in folds:
        label = variant_label(
            (f["chosen"]["noise_copies"], f["chosen"]["speed"], f["chosen"]["class_balanced"])
        )
        counts[label] = counts.get(label, 0) + 1
    if protocol is None:
        protocol = "leave one actor out" if data == "ravdess" else "leave one speaker out"
    pair = all(f.get("early_member") for f in folds)  # --early-views member
    lines = [
        f"# The ser_{data} shipping procedure, nested: {protocol} ({len(folds)} of {total} folds)"
        + ("" if by == "transductive" else f", stage 0 by `--choose-by {by}`")
        + (f", early views ({', '.join(map(str, early))} clips)" if early else "")
        + (", length views" if folds and all(f.get("length_views") for f in folds) else "")
        + (
            ", a plain and an early-views member"
            if pair
            else ", a close-talk and a reverberant member"
            if "member0" in models
            else ", reverberant copies when the inner folds choose them"
            if any("reverb" in f for f in folds)
            else ", reverberant copies"
            if any("rooms" in f for f in folds)
            else ""
        ),
        "",
        "Each outer fold runs benchmarks/ship_ser.py's whole procedure on the other speakers (stage 0: the "
        "training variant chosen on inner folds of speaker pairs by the mean of "
        f"{', '.join(CHOOSE_BY[by])}; stage 1: epochs and bit plan on the last "
        f"speaker(s); the refit on every remaining speaker; the training prior, weight {PRIOR_WEIGHT:g}) and "
        f"scores the held-out speaker once. online-N: its statistics after N of its clips, {ORDERS} seeded "
        "orders pooled. UAR / WAR %, mean +- std over folds."
        + (
            f" Early views (ship_ser.py --early-views on): the clean training clips also standardised by the "
            f"training prior updated with {', '.join(map(str, early))} of their speaker's clips, in the member "
            "choice, stage 1 and the refit."
            if early
            else ""
        )
        + (
            f" Stage 0's variant choice of each outer fold (and, with --reverb auto, its choice of reverberant copies "
            f"where that run made one) is reused from ship_ser_nested_runs/{stage0_from}.jsonl (made without early "
            "views), not rerun."
            if stage0_from
            else ""
        )
        + (
            f" Training seed {seed} (`--seed {seed}`): member k of every model trains at seed {s0} + k"
            + (", the stage-0 choice reused as made (at its own seeds)." if stage0_from else ".")
            if seed
            else ""
        ),
        "",
        "| model | " + " | ".join(f"{n} UAR" for n in norms) + " | transductive WAR |",
        "|---|" + "---|" * (len(norms) + 1),
    ]
    labels = model_labels(folds)
    for model in models:
        t, label = table[model], labels[model]
        cells = " | ".join(pm(t[n]["uar"], t[n]["uar_std"], len(folds)) for n in norms)
        war = t["transductive"]
        lines.append(f"| {label} | {cells} | {pm(war['war'], war['war_std'], len(folds))} |")
    gap = table["refit"]["transductive"]["uar"] - table["refit"]["online-20"]["uar"]
    short = short_speakers({f["test"]: f["n"] for f in folds if "n" in f}, ONLINE)
    lines += [
        "",
        f"Transductive minus online-20 (refit): {100 * gap:.1f} points.",
        *(["", f"{short}."] if short else []),
        "",
        "Variants chosen by the inner folds: "
        + "; ".join(f"{k} in {v}" for k, v in sorted(counts.items()))
        + ".",
        "",
        (
            f"Two members in every fold (ship_ser.py --early-views member): the plain member (seed {s0}) and the "
            f"early-views member (seed {s0 + 1}, trained with early views after {', '.join(map(str, EARLY_VIEWS))} clips), "
            "each with its own stage 1 and refit, logits averaged; no seed ensemble asked for."
            if pair
            else f"Two members in every fold (ship_ser.py --reverb member): the close-talk member (seed {s0}) and the "
            f"reverberant member (seed {s0 + 1}), each with its own stage 1 and refit; no seed ensemble asked for."
            if "member0" in models
            else f"A {MEMBERS}-seed ensemble chosen by the inner folds (ship_ser.choose_members) in "
            f"{sum(f.get('members_chosen', f['members']) > 1 for f in folds)} of {len(folds)} folds; it would have "
            f"stored more than {BIT_BUDGET:g} average bits in "
            f"{sum(f.get('over_budget_bits') is not None for f in folds)} of them, which then shipped seed {s0}'s MLP "
            "alone (ship_ser.within_budget)."
        ),
        "",
        "| held-out speaker | chosen variant | members | avg bits | packed KB | transductive UAR | online-20 UAR "
        "| stage 1, transductive |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in folds:
        ch = f["chosen"]
        lines.append(
            f"| {f['test']} | {variant_label((ch['noise_copies'], ch['speed'], ch['class_balanced']))} | "
            f"{f['members']} | {f['bits']:.2f} | {f['packed_kb']:.1f} | {100 * f['refit']['transductive']['uar']:.1f} | "
            f"{100 * f['refit']['online-20']['uar']:.1f} | {100 * f['stage1']['transductive']['uar']:.1f} |"
        )
    if all("cuts" in f for f in folds):
        lines += ["", *cuts_table(folds)]
    elif any("cuts" not in f for f in folds):
        lines += [
            "",
            f"No short-utterance table: {sum('cuts' not in f for f in folds)} of the folds' records predate the "
            "scores of the cut clips (an empty --runs folder recomputes them).",
        ]
    if "member0" in models and all("member0_rooms" in f for f in folds):
        lines += ["", *rooms_table(folds)]
    chose = [f for f in folds if (f.get("reverb") or {}).get("reverb") or "rooms" in f]
    if "member0" not in models and (any("reverb" in f for f in folds) or any("rooms" in f for f in folds)):
        lines += [
            "",
            f"Reverberant training copies (ship_ser.py --reverb) in {len(chose)} of "
            f"{len(folds)} folds"
            + (f" ({', '.join(f['test'] for f in chose)})" if chose else "")
            + "; the other folds are the procedure without them (their records reused where there was one).",
        ]
        with_rooms = [f for f in chose if "rooms" in f]
        if with_rooms:
            names = list(with_rooms[0]["rooms"])
            cells = "; ".join(
                f"{n} {100 * np.mean([f['rooms'][n]['uar'] for f in with_rooms]):.1f} %" for n in names
            )
            clean = 100 * np.mean([f["refit"]["transductive"]["uar"] for f in with_rooms])
            lines.append(
                f"Where chosen, the held-out speaker in the test rooms (transductive UAR, mean over those folds): "
                f"{cells}; as recorded {clean:.1f} %."
            )
    payload = {
        "data": data,
        "protocol": protocol,
        "choose_by": by,
        "seed": seed,
        "classes": classes,
        "n_folds": len(folds),
        "complete": len(folds) == total,
        "table": table,
        "chosen": counts,
        "folds": folds,
        "compute_seconds": float(sum(f["seconds"] for f in folds)),
    }
    return payload, "\n".join(lines)


def rooms_table(folds: list[dict]) -> list[str]:
    """`--reverb member`'s held-out speakers in the test rooms: the two-member ensemble against its close-talk member
    alone, paired (the same folds, clips and rooms), UAR % transductive / online-20, mean over folds."""
    names = list(folds[0]["rooms"])
    lines = [
        "The held-out speaker in the test rooms (benchmarks/reverb.py's, never trained on), UAR % transductive / "
        "online-20, mean over folds:",
        "",
        "| model | as recorded | " + " | ".join(names) + " | rooms, mean |",
        "|---|---|" + "---|" * (len(names) + 1),
    ]

    def room_uar(f: dict, key: str, room: str, norm: str) -> float:
        fig = f[key][room]
        return fig["uar"] if norm == "transductive" else fig[norm]["uar"]

    for key, rooms_key, label in (
        ("refit", "rooms", "two members"),
        ("member0", "member0_rooms", "close-talk member alone"),
    ):
        cells = {}
        for norm in ("transductive", "online-20"):
            per_room = [float(np.mean([room_uar(f, rooms_key, n, norm) for f in folds])) for n in names]
            cells[norm] = [
                float(np.mean([f[key][norm]["uar"] for f in folds])),
                *per_room,
                float(np.mean(per_room)),
            ]
        row = " | ".join(f"{100 * t:.1f} / {100 * o:.1f}" for t, o in zip(*cells.values(), strict=True))
        lines.append(f"| {label} | {row} |")
    return lines


def run_folds(
    rows: Rows,
    todo: list[str],
    runs: Path,
    stage0: dict[str, dict],
    *,
    seed: int,
    val_speakers: int,
    **fold_args,
) -> list[dict]:
    """`outer_fold` for every held-out speaker in `todo` at training seed `seed`, resuming from and appending to
    the records in `runs` (one JSON line per finished fold); `stage0`: earlier records whose stage-0 choice a
    fold reuses. Returns the folds' records in `todo`'s order."""
    runs.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if runs.is_file():
        for line in runs.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("seed", 0) != seed:  # a runs file of another seed, copied or renamed by hand
                raise SystemExit(
                    f"{runs}: fold {rec['test']} was trained at seed {rec.get('seed', 0)}, not {seed}"
                )
            done[rec["test"]] = rec
    speakers = rows.speakers()
    for i, test in enumerate(todo):
        if test in done and "members" in done[test]:
            continue
        rec = outer_fold(
            rows, test, val_speakers, cached=done.get(test) or stage0.get(test), seed=seed, **fold_args
        )
        done[test] = rec
        atomic_write(runs, "".join(json.dumps(done[s]) + "\n" for s in speakers if s in done))
        ch = rec["chosen"]
        print(
            f"seed {seed}, fold {i + 1}/{len(todo)} (test {test}): "
            f"{variant_label((ch['noise_copies'], ch['speed'], ch['class_balanced']))}; UAR transductive "
            f"{100 * rec['refit']['transductive']['uar']:.1f} %, online-20 {100 * rec['refit']['online-20']['uar']:.1f} % "
            f"({rec['seconds']:.0f} s)",
            flush=True,
        )
    return [done[s] for s in todo]


def seeds_summary(
    data: str, name: str, per_seed: dict[int, list[dict]], classes: list[str], total: int
) -> tuple[dict, str]:
    """The nested procedure over several training seeds (`--seed 0,1,2`): every seed's mean +- std over folds and
    the seeds pooled, each fold's figure then being the UAR of its seeds' confusions summed (as si_table.py pools
    seeds and online orders), per scored model and norm."""
    seeds = sorted(per_seed)
    folds0 = per_seed[seeds[0]]
    tests = [f["test"] for f in folds0]
    if any([f["test"] for f in per_seed[s]] != tests for s in seeds):
        raise ValueError("seeds_summary: every seed must have the same outer folds")
    norms = ["transductive", *(f"online-{k}" for k in ONLINE)]
    models = [m for m in ("refit", "member0") if all(m in f for fs in per_seed.values() for f in fs)]
    labels = model_labels(folds0)

    def pooled_fold(model: str, norm: str, i: int) -> Metrics:
        return Metrics(
            tuple(classes), np.sum([per_seed[s][i][model][norm]["confusion"] for s in seeds], axis=0)
        )

    table: dict = {}
    for model in models:
        table[model] = {}
        for norm in norms:
            by_seed = {
                str(s): dict(
                    zip(
                        ("uar", "uar_std"),
                        mean_std([f[model][norm]["uar"] for f in per_seed[s]]),
                        strict=True,
                    )
                )
                for s in seeds
            }
            pooled = [pooled_fold(model, norm, i) for i in range(len(tests))]
            pooled_uar = [m.uar for m in pooled]
            u, us = mean_std(pooled_uar)
            w, ws = mean_std([m.accuracy for m in pooled])
            table[model][norm] = {
                "seeds": by_seed,
                "pooled": {"uar": u, "uar_std": us, "war": w, "war_std": ws, "per_fold_uar": pooled_uar},
            }
    n = len(tests)
    lines = [
        f"# The ser_{data} shipping procedure, nested ({name}), over training seeds {', '.join(map(str, seeds))}"
        f" ({n} of {total} folds)",
        "",
        f"Each seed's run is ship_ser_nested_{name}[_seedN].md (member k of every model at seed {SEED_STRIDE}N + k). "
        "UAR %, mean +- std over folds; 'seeds pooled': each fold's confusions summed over the seeds, then its UAR, "
        "as si_table.py pools seeds. The std of the per-seed means says how far one run's headline moves with the "
        "seed alone.",
        "",
    ]
    for model in models:
        lines += [
            f"**{labels[model]}**",
            "",
            "| training seed | " + " | ".join(f"{nm} UAR" for nm in norms) + " | transductive - online-20 |",
            "|---|" + "---|" * (len(norms) + 1),
        ]
        for s in seeds:
            cells = [table[model][nm]["seeds"][str(s)] for nm in norms]
            gap = cells[0]["uar"] - cells[-1]["uar"]
            lines.append(
                f"| {s} | "
                + " | ".join(pm(c["uar"], c["uar_std"], n) for c in cells)
                + f" | {100 * gap:.1f} |"
            )
        means = [[table[model][nm]["seeds"][str(s)]["uar"] for s in seeds] for nm in norms]
        spread = " | ".join(f"{100 * np.std(m, ddof=1):.1f}" for m in means)
        lines.append(f"| std of the {len(seeds)} seeds' means | {spread} | |")
        cells = [table[model][nm]["pooled"] for nm in norms]
        gap = cells[0]["uar"] - cells[-1]["uar"]
        lines.append(
            "| **seeds pooled** | "
            + " | ".join(f"**{pm(c['uar'], c['uar_std'], n)}**" for c in cells)
            + f" | **{100 * gap:.1f}** |"
        )
        lines.append("")
    lines += [
        "Per held-out speaker, shipped procedure, transductive UAR %:",
        "",
        "| held-out speaker | " + " | ".join(f"seed {s}" for s in seeds) + " | seeds pooled |",
        "|---|" + "---|" * (len(seeds) + 1),
    ]
    pooled_t = table["refit"]["transductive"]["pooled"]["per_fold_uar"]
    for i, t in enumerate(tests):
        cells = " | ".join(f"{100 * per_seed[s][i]['refit']['transductive']['uar']:.1f}" for s in seeds)
        lines.append(f"| {t} | {cells} | {100 * pooled_t[i]:.1f} |")
    payload = {
        "data": data,
        "name": name,
        "seeds": seeds,
        "folds": tests,
        "n_folds": n,
        "complete": n == total,
        "table": table,
    }
    return payload, "\n".join(lines)


def load_stage0(results: Path, name: str, choose_by: str, reverb: str) -> dict[str, dict]:
    """The records of ship_ser_nested_runs/<name>.jsonl (under `results`) whose stage-0 choice `--stage0-from`
    reuses, by held-out speaker (whole records where stage 0c's reverberation answer is reused too)."""
    source = results / "ship_ser_nested_runs" / f"{name}.jsonl"
    if not source.is_file():
        raise SystemExit(f"--stage0-from: {source} not found")
    stage0 = {}
    for line in source.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("choose_by", "transductive") != choose_by:
            raise SystemExit(f"--stage0-from: {source} chose by {rec.get('choose_by')}, not {choose_by}")
        stage0[rec["test"]] = (
            rec if reverb != "off" else {"chosen": rec["chosen"], "inner_mean": rec["inner_mean"]}
        )
    return stage0


def main() -> None:
    """The script (`_main`), each data-set warning said once: the folder is listed more than once on the way (its
    speakers, its functionals, its copies), and a warning printed twice reads as two problems (a review)."""
    from converters.data.scan import each_warning_once

    with each_warning_once():
        _main()


def _main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="emodb", metavar="{emodb,ravdess}, FOLDER or FILE.csv", help=DATA_HELP)
    ap.add_argument(
        "--tables",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the table (ship_ser_nested_<name>.{md,json}) and its runs/ folder (ship_ser_nested_runs/"
        "<name>.jsonl, what a re-run resumes from; --stage0-from reads it there too) go; default: "
        "benchmarks/results/ for a corpus; required for a folder (never the repository's). ship_ser.py "
        "--tables DIR reads the figure from there",
    )
    ap.add_argument(
        "--limit-folds",
        type=int,
        default=None,
        help="only the first N outer folds (a quick look; its table is ..._partial, the whole run's stays)",
    )
    ap.add_argument(
        "--runs",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of the resumable per-fold records (default: ship_ser_nested_runs/ beside the table); the "
        "committed records make a re-run only re-summarise: give an empty folder to recompute the folds",
    )
    ap.add_argument(
        "--reverb",
        choices=("auto", "on", "off", "member"),
        default="off",
        help="ship_ser.py --reverb: on = reverberant training copies in every fold; auto = when the inner folds say "
        "so (stage 0c; with --stage0-from, a fold that says no reuses that run's record); member = two members, the "
        "second trained with the copies (its first member alone scored beside it); writes ..._reverb_<mode>",
    )
    ap.add_argument(
        "--early-views",
        nargs="?",
        const="on",
        default="off",
        choices=("off", "on", "member"),
        help="ship_ser.py --early-views: on (the flag alone) = early views in stages 1 and 2 and the member choice, "
        "writes ..._early; member = two members, the second trained with early views (its first member alone "
        "scored beside it), writes ..._early_member",
    )
    ap.add_argument(
        "--length-views",
        choices=("on", "off"),
        default="off",
        help="ship_ser.py --length-views: on = 2 length views of every training clip in stages 1 and 2 (stage 0 "
        "and the reverberation choice without them); writes ..._lengths",
    )
    ap.add_argument(
        "--stage0-from",
        default=None,
        metavar="NAME",
        help="reuse each outer fold's stage-0 variant choice from ship_ser_nested_runs/NAME.jsonl (e.g. "
        "emodb_device) instead of running stage 0",
    )
    ap.add_argument(
        "--stage0-per-seed",
        action="store_true",
        help="with --stage0-from NAME and --seed: seed N > 0 reuses the choices of NAME_seedN.jsonl, the whole "
        "procedure's own stage 0 at that seed, instead of NAME's (seed 0's) at every seed",
    )
    ap.add_argument(
        "--variant-members",
        type=int,
        choices=(1, 2),
        default=1,
        help="with --early-views member: 2 = the pair of members for stage 0's two best variants, four averaged "
        '(docs/protocol.md, "Members over stage 0\'s two best variants"); writes ..._top2',
    )
    ap.add_argument(
        "--choose-by",
        choices=sorted(CHOOSE_BY),
        default="transductive",
        help="stage 0's score of a variant (ship_ser.py --choose-by); device writes ..._<data>_device",
    )
    ap.add_argument(
        "--seed",
        default="0",
        metavar="N[,N...]",
        help=f"the procedure's training seed: member k of every model trains at seed {SEED_STRIDE}N + k (0, the "
        "default, is what ship_ser.py ships); N > 0 writes ..._seedN with its own runs file. Several (0,1,2) run "
        "each seed, then write ..._seeds0-1-2: every seed's figures and each fold's seeds pooled (docs/protocol.md, "
        '"The nested procedure over training seeds"). With --stage0-from, the reused stage-0 choice is the one made '
        "at that run's seed",
    )
    args = ap.parse_args()
    try:
        seeds = parse_seeds(args.seed)
    except ConfigError as e:
        ap.error(str(e))
    if args.variant_members == 2 and args.early_views != "member":
        ap.error(
            "--variant-members 2 trains the plain + early-views pair per variant: give --early-views member"
        )
    if args.stage0_per_seed and not args.stage0_from:
        ap.error("--stage0-per-seed reads the runs of --stage0-from NAME at each seed: give --stage0-from")
    if args.limit_folds is not None and args.limit_folds < 1:  # 0 ran no fold, then failed on the empty table
        ap.error(f"--limit-folds {args.limit_folds}: at least 1 outer fold")
    try:
        data = resolve_data(args.data)
    except ValueError as e:
        ap.error(str(e))
    tables = tables_folder(ap, data, args.tables, None)
    if args.runs is not None and (problem := folder_problem(args.runs)):  # was a traceback after the features
        ap.error(f"--runs {args.runs}: {problem}")
    results = RESULTS if tables is None else tables
    if not data.corpus:  # before any features are made: a folder scans in seconds
        problem = speaker_problem(
            data.name,
            len(data_speakers(data)),
            data.val_speakers,
            inner=True,
            outer=1,
            flag="validation speakers",
        )
        if problem:
            ap.error(problem)
    torch.set_num_threads(1)
    lengths = args.length_views == "on"
    name = nested_name(data.name, args.choose_by, args.early_views, args.reverb, lengths)
    name += "_top2" if args.variant_members == 2 else ""
    d, X, Z, y, spk, copy_of, groups = training_matrix(data.arg, reverb=args.reverb != "off", lengths=lengths)
    early = EARLY_VIEWS if args.early_views == "on" else ()
    rows = Rows(X, Z, y, spk.astype(str), copy_of, groups, list(d.classes), early, lengths=lengths)
    cuts = test_cuts(data.arg)
    speakers = rows.speakers()
    todo = speakers[: args.limit_folds]
    rooms = test_rooms(data.arg) if args.reverb != "off" else None
    partial = len(todo) < len(speakers)  # a quick look never replaces the whole run's table
    base0 = load_stage0(results, args.stage0_from, args.choose_by, args.reverb) if args.stage0_from else {}
    for line in missing_classes(rows, todo):  # said as `edge-ser train` says it (a review: unsaid here)
        warnings.warn(line, DatasetWarning, stacklevel=1)
    clean = rows.spk[rows.copy_of == 0]
    if short := short_speakers({str(s): int((clean == s).sum()) for s in todo}, ONLINE):
        warnings.warn(short, DatasetWarning, stacklevel=1)
    per_seed = {}
    for seed in seeds:
        named = name + (f"_seed{seed}" if seed else "")
        runs = (args.runs or results / "ship_ser_nested_runs") / f"{named}.jsonl"
        stage0 = (  # each seed its own run's choices, whatever the order of --seed (2,1,0 gave 0 seed 1's)
            load_stage0(results, f"{args.stage0_from}_seed{seed}", args.choose_by, args.reverb)
            if args.stage0_per_seed and seed
            else base0
        )
        folds = run_folds(
            rows, todo, runs, stage0, seed=seed, val_speakers=data.val_speakers, by=args.choose_by,
            reverb=args.reverb, rooms=rooms, early_pair=args.early_views == "member", cuts=cuts,
            variant_members=args.variant_members,
        )  # fmt: skip
        payload, md = summary(
            data.name, folds, rows.classes, len(speakers), args.choose_by, early, args.stage0_from,
            protocol=None if data.corpus else "leave one speaker out", seed=seed,
        )  # fmt: skip
        write_results(
            f"ship_ser_nested_{named}{'_partial' if partial else ''}", payload, md, indent=None, folder=tables
        )
        print(md)
        per_seed[seed] = folds
    if len(seeds) > 1:
        payload, md = seeds_summary(data.name, name, per_seed, rows.classes, len(speakers))
        named = f"ship_ser_nested_{name}_seeds{'-'.join(map(str, sorted(seeds)))}"  # as the table sorts them
        write_results(f"{named}{'_partial' if partial else ''}", payload, md, indent=None, folder=tables)
        print(md)


if __name__ == "__main__":
    run_main(main)
