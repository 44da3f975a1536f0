"""benchmarks/si_table.py's outputs: a named run writes under its own name, and a protocol whose best row has
no confusion matrix (the temporal and fusion rows read from their own runs) shows the best row that has one."""

from __future__ import annotations

import re
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


def test_bad_online_limit_folds_or_runs_are_config_errors_before_any_data(
    monkeypatch, tmp_path: Path
) -> None:
    """A review: `--online x` was a ValueError traceback; `--online -3` ran every transductive point's training,
    then recorded 'needs clips >= 1' as its error; `--limit-folds 0` was 'a grid needs at least one axis' after
    the data were read; `--runs FILE` named '--out' after the data were read."""
    from edge_ser.errors import ConfigError

    monkeypatch.setattr(si, "SITable", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop")))
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    runs = ["--runs", str(tmp_path / "runs")]
    for argv, said in (
        (["--online", "x", *runs], "--online x: give clip counts as N or N,N,..."),
        (["--online", "1,-3", *runs], "--online 1,-3: each clip count must be at least 1"),
        (["--limit-folds", "0", *runs], "--limit-folds 0: at least 1 fold"),
        (["--runs", str(a_file)], f"--runs {a_file}: exists and is not a folder"),
    ):
        with pytest.raises(ConfigError, match=re.escape(said)):
            si.main(argv)
    assert si.parse_online("") == [] and si.parse_online("1,5,20") == [1, 5, 20]
    assert not (tmp_path / "runs").exists()


def test_seed_0_points_keep_the_ids_they_had_when_the_seed_was_fixed() -> None:
    """--seed put "seed" into each point instead of the grid's fixed values: seed 0's ids must not change, or every
    committed point (benchmarks/results/si_table_runs) would be retrained; other seeds get ids of their own."""
    import numpy as np

    from converters.protocol import Protocol
    from converters.si_eval import TABLE_VERSION, Fitted, InputData, Row, SITable
    from converters.sweep import Grid

    spk = np.repeat([f"s{i}" for i in range(4)], 6)
    data = InputData("blobs", np.zeros((24, 2), np.float32), np.tile(np.arange(3), 8), spk, ("a", "b", "c"))
    row = Row("m", "blobs", lambda fd: Fitted(lambda X: np.zeros(len(X), np.int64), 32.0, None, 0))
    table = SITable([row], [Protocol("p", "blobs", "loso")], inputs={"blobs": lambda d, r=None: data})
    before = Grid(
        points=table.points(["none", "transductive"], [1, 5]), fixed={"v": TABLE_VERSION, "seed": 0}
    )
    assert si.sweep_grid(table, ["none", "transductive"], [1, 5], None, [0]).ids == before.ids
    three = si.sweep_grid(table, ["none", "transductive"], [1, 5], None, [0, 1, 2])
    assert len(three.ids) == 3 * len(before.ids) == len(set(three.ids))
    assert set(before.ids) <= set(three.ids)
