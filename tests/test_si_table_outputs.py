"""benchmarks/si_table.py's outputs: a named run writes under its own name, and a protocol whose best row has
no confusion matrix (the temporal and fusion rows read from their own runs) shows the best row that has one."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchmarks.si_table as si


def _row(model: str, uar: float, *, confusion: bool = True, norm: str = "transductive") -> dict:
    row = {
        "model": model, "input": "functionals_ext_aug", "dataset": "emodb", "protocol": "emodb-loso",
        "uar": uar, "uar_std": 0.05, "war": uar, "war_std": 0.05, "n_folds": 10, "bits": 1.5,
        "packed_kb": 8.0, "params": 100, "norm": norm, "complete": True,
    }  # fmt: skip
    if confusion:
        row |= {"labels": ["a", "b"], "confusion": [[4, 1], [2, 3]]}
    return row


def test_a_named_run_writes_its_own_plots_and_falls_back_to_a_row_with_a_confusion(tmp_path: Path) -> None:
    rows = [_row("mlp", 0.70), _row("late_fusion(mlp + timnet)", 0.80, confusion=False)]
    made = si.write_plots(rows, tmp_path, "si_enrolment")
    assert sorted(p.name for p in made) == [
        "si_enrolment_confusion_emodb-loso.png",
        "si_enrolment_pareto_emodb-loso.png",
    ]
    assert all(p.stat().st_size > 0 for p in made)
    assert not list(tmp_path.glob("si_table_*"))  # the main table's plots are not touched
    text = si.markdown(rows, 1.0, 1.0, "si_enrolment")
    best = next(line for line in text.splitlines() if line.startswith("Highest of the"))
    assert "optimistic as the figure of any one recipe): late_fusion(mlp + timnet) on" in best
    assert (
        "![confusion (of mlp on functionals_ext_aug, transductive)](si_enrolment_confusion_emodb-loso.png)"
        in best
    )


def test_no_row_with_a_confusion_writes_the_pareto_plot_only(tmp_path: Path) -> None:
    rows = [_row("timnet", 0.6, confusion=False)]
    assert [p.name for p in si.write_plots(rows, tmp_path)] == ["si_table_pareto_emodb-loso.png"]
    best = next(
        line for line in si.markdown(rows, 1.0, 1.0).splitlines() if line.startswith("Highest of the")
    )
    assert "confusion" not in best


def test_a_subset_run_is_named_apart_and_a_partial_one_links_no_plots(monkeypatch) -> None:
    """`--protocols emodb-loso --rows ...` (the docs' example) wrote si_table.{md,json} and its plots, replacing
    the committed table; a `--limit-folds` table linked plots it never draws."""
    names = []
    monkeypatch.setattr(si, "SITable", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop")))
    real = si.default_name
    monkeypatch.setattr(si, "default_name", lambda args, ap: names.append(real(args, ap)) or names[-1])
    subsets = (
        ["--protocols", "emodb-loso"],
        ["--rows", "logreg"],
        ["--online", ""],
        ["--ablation"],
        ["--seed", "1"],
    )
    for argv in ([], *subsets):
        with pytest.raises(RuntimeError, match="stop"):  # named before any data is read
            si.main(argv)
    assert names == ["si_table"] + ["si_table_subset"] * len(subsets)
    text = si.markdown([_row("mlp", 0.7)], 1.0, 1.0, "si_table_partial", plots=False)
    assert "![" not in text and "recipe): mlp on functionals_ext_aug" in text
