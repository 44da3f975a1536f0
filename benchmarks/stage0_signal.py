"""Does stage 0's choice carry signal about the held-out speaker? Read from the committed nested runs; no training.

    python benchmarks/stage0_signal.py

ship_ser's stage 0 chooses a training variant (noisy copies, speed copies, loss) on inner folds, and ser_ravdess's
stage 0c chooses whether to add reverberant copies. Rerun at training seeds 1 and 2, the whole nested procedure
(benchmarks/results/nested_full_stage0) chose otherwise than at seed 0 in many folds, and the seeds' means spread
by 2-5 points. The same seeds were also run with seed 0's choice reused (benchmarks/results/ship_ser_nested_runs,
`--stage0-from`): the members, the refit and the scoring are the same; only the choice differs. So every fold
where the two choices differ is a paired test of stage 0 itself: the seed's own choice is the better one on
that seed's inner folds (by the margin its records hold), and the held-out speaker says whether it is better there.

If the inner folds' margins carried signal, the own choice would win on the held-out speaker more often than not,
and by more where the margin is larger. A steadier stage 0 (each variant averaged over several seeds, the lever
the last note named) can only help if they do. Writes benchmarks/results/stage0_signal.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, run_main, write_results  # noqa: E402
from ship_ser import variant_label  # noqa: E402

PROCEDURES = {
    "ser_emodb (EMODB, leave one speaker out)": "emodb_device_early_member",
    "ser_ravdess (RAVDESS, leave one actor out)": "ravdess_device_early_member_reverb_auto",
}
SEEDS = (1, 2)  # seed 0's whole procedure and its reused stage 0 are the same runs
WHOLE = RESULTS / "nested_full_stage0" / "ship_ser_nested_runs"
REUSED = RESULTS / "ship_ser_nested_runs"


def load_runs(path: Path) -> dict[str, dict]:
    """One nested run's records by held-out speaker."""
    if not path.is_file():
        raise SystemExit(
            f"{path}: not found (made by benchmarks/ship_ser_nested.py --seed 0,1,2; see its docstring)"
        )
    with path.open() as f:
        return {rec["test"]: rec for rec in map(json.loads, f)}


def variant_of(rec: dict) -> str:
    """The record's stage-0 variant, labelled as its `inner_mean` keys are."""
    c = rec["chosen"]
    return variant_label((c["noise_copies"], c["speed"], c["class_balanced"]))


def reverb_of(rec: dict) -> bool:
    """Stage 0c's answer (False where the run had no stage 0c)."""
    return bool((rec.get("reverb") or {}).get("reverb"))


def choice_label(rec: dict) -> str:
    return variant_of(rec) + (", reverb" if reverb_of(rec) else "")


def inner_margin(own: dict, other: dict) -> float:
    """How much better the own choice scored than seed 0's on the own seed's inner folds (points): the variant's
    margin in stage 0, or, where only stage 0c's answer differs, its margin between copies on and off."""
    if variant_of(own) != variant_of(other):
        return 100 * (own["inner_mean"][variant_of(own)] - own["inner_mean"][variant_of(other)])
    rc = own["reverb"]
    return 100 * abs(rc["on"] - rc["off"])


def flip_kind(own: dict, other: dict) -> str:
    variant, reverb = variant_of(own) != variant_of(other), reverb_of(own) != reverb_of(other)
    return "variant and reverb" if variant and reverb else "variant" if variant else "reverb"


def spearman(a: list[float], b: list[float]) -> float:
    """Rank correlation (average ranks for ties)."""

    def ranks(x: list[float]) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 2 and ra.std() and rb.std() else float("nan")


def paired_flips(base: str) -> list[dict]:
    """Every fold and seed where the seed's own stage 0 chose otherwise than seed 0's, with both outcomes."""
    flips = []
    for seed in SEEDS:
        whole = load_runs(WHOLE / f"{base}_seed{seed}.jsonl")
        reused = load_runs(REUSED / f"{base}_seed{seed}.jsonl")
        for test in sorted(whole):
            own, other = whole[test], reused[test]
            if choice_label(own) == choice_label(other):
                continue
            flips.append(
                {
                    "seed": seed,
                    "test": test,
                    "seed0_choice": choice_label(other),
                    "own_choice": choice_label(own),
                    "kind": flip_kind(own, other),
                    "inner_margin": round(inner_margin(own, other), 3),
                    **{
                        f"delta_{norm}": round(
                            100 * (own["refit"][norm]["uar"] - other["refit"][norm]["uar"]), 3
                        )
                        for norm in ("transductive", "online-20")
                    },
                }
            )
    return flips


def averaged_choice(base: str) -> dict:
    """Stage 0 with each variant's inner score averaged over seeds 0-2: how often it agrees with each seed's own
    choice, and by how much it is won (the steadier stage 0's free half; stage 0c is left out)."""
    runs = [load_runs(WHOLE / f"{base}.jsonl")] + [load_runs(WHOLE / f"{base}_seed{s}.jsonl") for s in SEEDS]
    agree, margins = [0] * len(runs), []
    for test in sorted(runs[0]):
        labels = list(runs[0][test]["inner_mean"])
        mean = {v: float(np.mean([r[test]["inner_mean"][v] for r in runs])) for v in labels}
        best = max(labels, key=lambda v: (mean[v], -labels.index(v)))
        top = sorted(mean.values(), reverse=True)
        margins.append(100 * (top[0] - top[1]))
        for i, r in enumerate(runs):
            agree[i] += variant_of(r[test]) == best
    return {"folds": len(runs[0]), "agree_per_seed": agree, "median_margin": float(np.median(margins))}


def summarise(flips: list[dict]) -> dict:
    out: dict = {"n": len(flips)}
    for norm in ("transductive", "online-20"):
        d = np.array([f[f"delta_{norm}"] for f in flips])
        out[norm] = {
            "mean": float(d.mean()) if len(d) else float("nan"),
            "se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan"),
            "own_wins": int((d > 0).sum()),
            "ties": int((d == 0).sum()),
            "seed0_wins": int((d < 0).sum()),
            "spearman_margin": spearman([f["inner_margin"] for f in flips], list(d)),
        }
    return out


def markdown(report: dict) -> str:
    lines = [
        "# Stage 0's choice against the held-out speaker",
        "",
        "Paired folds: the whole nested procedure at training seed 1 or 2, with its own stage 0 ("
        "`nested_full_stage0/`), against the same seed with seed 0's stage-0 choice reused (`ship_ser_nested_runs/`, "
        "`--stage0-from`), in every fold where the two choices differ. Members, refit and scoring are the same. "
        "Inner margin: how much the own choice beat seed 0's on the own seed's inner folds (stage 0's score, or "
        "stage 0c's margin between reverberant copies on and off). Delta: held-out UAR of the own choice minus "
        "seed 0's choice (points). Nothing was trained for this table (docs/protocol.md, \"Does stage 0's choice "
        'carry signal?").',
        "",
    ]
    for name, r in report.items():
        s = r["summary"]
        lines += [
            f"## {name}",
            "",
            "| seed | held out | seed 0's choice | own choice | inner margin | delta | delta online-20 |",
        ]
        lines.append("|---|---|---|---|---|---|---|")
        for f in r["flips"]:
            lines.append(
                f"| {f['seed']} | {f['test']} | {f['seed0_choice']} | {f['own_choice']} | +{f['inner_margin']:.2f} | "
                f"{f['delta_transductive']:+.1f} | {f['delta_online-20']:+.1f} |"
            )
        lines.append("")
        for norm in ("transductive", "online-20"):
            t = s[norm]
            lines.append(
                f"- {norm}: {s['n']} flips, mean delta {t['mean']:+.2f} +- {t['se']:.2f} (standard error); the own "
                f"choice wins {t['own_wins']}, ties {t['ties']}, loses {t['seed0_wins']}; rank correlation of the "
                f"inner margin with the delta {t['spearman_margin']:+.2f}."
            )
        for kind, k in r["by_kind"].items():
            lines.append(
                f"- {kind} flips only: {k['n']}, mean delta {k['transductive']['mean']:+.2f} (online-20 "
                f"{k['online-20']['mean']:+.2f})."
            )
        a = r["averaged"]
        lines += [
            f"- Stage 0 averaged over seeds 0-2: its variant agrees with seed 0's / 1's / 2's own in "
            f"{' / '.join(map(str, a['agree_per_seed']))} of {a['folds']} folds, won by a median {a['median_margin']:.2f} "
            "points.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    report = {}
    for name, base in PROCEDURES.items():
        flips = paired_flips(base)
        kinds = sorted({f["kind"] for f in flips})
        report[name] = {
            "runs": base,
            "flips": flips,
            "summary": summarise(flips),
            "by_kind": {k: summarise([f for f in flips if f["kind"] == k]) for k in kinds},
            "averaged": averaged_choice(base),
        }
    md = markdown(report)
    write_results("stage0_signal", {"procedures": report}, md)
    print(md)


if __name__ == "__main__":
    run_main(main)
