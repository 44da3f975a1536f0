"""benchmarks/stage0_signal.py: the pairs of stage-0 choices it reads, and what it says of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import benchmarks.stage0_signal as sig

LABELS = [f"2 noisy, speed {s}, {loss} loss" for s in ("off", "on") for loss in ("plain", "balanced")]


def record(test: str, variant: int, uar: float, *, reverb: bool | None = None, margin: float = 0.01) -> dict:
    """A nested run's fold: `variant` (index into LABELS) won stage 0 by `margin`, the refit scored `uar`."""
    inner = {v: 0.6 for v in LABELS}
    inner[LABELS[variant]] = 0.6 + margin
    speed, loss = LABELS[variant].split(", ")[1:]
    rec = {
        "test": test,
        "chosen": {
            "noise_copies": 2,
            "speed": speed == "speed on",
            "class_balanced": loss == "balanced loss",
        },
        "inner_mean": inner,
        "refit": {"transductive": {"uar": uar}, "online-20": {"uar": uar - 0.02}},
    }
    if reverb is not None:
        rec["reverb"] = {"reverb": reverb, "on": 0.6 + (0.004 if reverb else -0.004), "off": 0.6}
    return rec


def write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    whole, reused = tmp_path / "whole", tmp_path / "reused"
    monkeypatch.setattr(sig, "WHOLE", whole)
    monkeypatch.setattr(sig, "REUSED", reused)
    base = "corpus"
    write(whole / f"{base}.jsonl", [record("a", 0, 0.7), record("b", 1, 0.6)])
    # seed 1: fold a flips the variant (own choice loses 10 points), fold b agrees
    write(whole / f"{base}_seed1.jsonl", [record("a", 2, 0.6, margin=0.015), record("b", 1, 0.5)])
    write(reused / f"{base}_seed1.jsonl", [record("a", 0, 0.7), record("b", 1, 0.5)])
    # seed 2: fold b flips only the reverberant copies (own choice wins 5 points)
    write(whole / f"{base}_seed2.jsonl", [record("a", 0, 0.7), record("b", 1, 0.65, reverb=True)])
    write(reused / f"{base}_seed2.jsonl", [record("a", 0, 0.7), record("b", 1, 0.6, reverb=False)])
    return base


def test_only_folds_whose_choices_differ_are_paired(runs: str):
    flips = sig.paired_flips(runs)
    assert [(f["seed"], f["test"], f["kind"]) for f in flips] == [(1, "a", "variant"), (2, "b", "reverb")]
    a, b = flips
    assert a["inner_margin"] == pytest.approx(1.5)  # the own variant's lead on its own inner folds, in points
    assert a["delta_transductive"] == pytest.approx(-10.0)
    assert b["inner_margin"] == pytest.approx(0.4)  # stage 0c's margin between copies on and off
    assert b["delta_online-20"] == pytest.approx(5.0)
    s = sig.summarise(flips)["transductive"]
    assert (s["own_wins"], s["ties"], s["seed0_wins"]) == (1, 0, 1)
    assert s["mean"] == pytest.approx(-2.5)


def test_the_averaged_stage_0_counts_agreement_per_seed(runs: str):
    a = sig.averaged_choice(runs)
    assert a["folds"] == 2
    assert a["agree_per_seed"] == [2, 1, 2]  # fold a: seeds 0 and 2 chose variant 0, the average's winner


def test_rank_correlation():
    assert sig.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert sig.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert sig.spearman([1, 1, 2, 2], [1, 1, 2, 2]) == pytest.approx(1.0)  # ties take their average rank


def test_a_missing_runs_file_names_the_command_that_makes_it(tmp_path: Path):
    with pytest.raises(SystemExit, match="ship_ser_nested.py --seed"):
        sig.load_runs(tmp_path / "absent.jsonl")
