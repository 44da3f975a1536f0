"""converters.sweep: grid order and ids, JSONL results, resume, errors and retry, tables, Ray == serial,
and a SIGKILLed sweep that leaves whole lines only and resumes to completion."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from converters.sweep import Grid, Sweep, point_id, read_records
from converters.sweep_cli import cmd_sweep, toy_objective
from edge_ser.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


class Counting:
    def __init__(self, fail_on=None):
        self.calls: list[dict] = []
        self.fail_on = fail_on

    def __call__(self, point: dict) -> dict:
        self.calls.append(point)
        if self.fail_on is not None and self.fail_on(point):
            raise RuntimeError("boom")
        return toy_objective(point)


def test_grid_product_order_and_ids():
    g = Grid({"a": [1, 2], "b": ["x", "y", "z"]}, fixed={"seed": 0})
    assert len(g) == 6
    assert [(p["a"], p["b"]) for p in g] == [(1, "x"), (1, "y"), (1, "z"), (2, "x"), (2, "y"), (2, "z")]
    assert all(p["seed"] == 0 for p in g)
    # the id ignores key order, is stable across processes (sha256 of sorted JSON) and distinct per point
    assert point_id({"a": 1, "b": "x", "seed": 0}) == point_id({"seed": 0, "b": "x", "a": 1}) == g.ids[0]
    assert point_id({"a": 1}) == "015abd7f5cc5"
    assert len(set(g.ids)) == 6 and all(len(i) == 12 for i in g.ids)
    assert g.varying == ["a", "b"]
    g2 = Grid({"a": [1]}, points=[{"a": 5, "b": 1}])
    assert g2.points == [{"a": 1}, {"a": 5, "b": 1}]
    assert Grid.from_dict({"axes": {"a": [1, 2]}}).points == [{"a": 1}, {"a": 2}]
    for bad in (
        lambda: Grid({}),
        lambda: Grid({"a": []}),
        lambda: Grid({"a": "xy"}),
        lambda: Grid(points=[{"a": 1}, {"a": 1}]),
        lambda: Grid.from_dict({"axis": {}}),
    ):
        with pytest.raises(ConfigError):
            bad()


def test_serial_writes_jsonl_and_resume_skips_done(tmp_path):
    g = Grid({"x": [0, 1, 2], "seed": [0, 1]})
    obj = Counting()
    res = Sweep("s", obj, g, tmp_path, backend="serial", progress=False).run()
    assert len(obj.calls) == 6 and res.backend == "serial"
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert len(lines) == 6
    rec = json.loads(lines[0])
    assert set(rec) == {"point_id", "point", "metrics", "seconds", "backend"}
    assert rec["point"] == {"x": 0, "seed": 0} and rec["point_id"] == g.ids[0] and rec["backend"] == "serial"
    assert rec["metrics"] == toy_objective({"x": 0, "seed": 0})
    # resume: nothing left to do
    obj2 = Counting()
    res2 = Sweep("s", obj2, g, tmp_path, backend="serial", progress=False).run()
    assert obj2.calls == [] and res2.to_rows() == res.to_rows()
    # a grown grid runs only the new points
    obj3 = Counting()
    res3 = Sweep(
        "s", obj3, Grid({"x": [0, 1, 2, 3], "seed": [0, 1]}), tmp_path, backend="serial", progress=False
    ).run()
    assert [c["x"] for c in obj3.calls] == [3, 3] and len(res3.records) == 8


def test_reuse_copies_identical_finished_points_from_another_sweep(tmp_path):
    """A later stage (10 splits of the best settings) takes the points an earlier stage already ran."""
    first = Sweep(
        "stage1",
        Counting(fail_on=lambda p: p["x"] == 2),
        Grid({"x": [0, 1, 2], "seed": [0]}),
        tmp_path,
        backend="serial",
        progress=False,
    ).run()
    assert len(first.errors) == 1
    obj = Counting()
    g = Grid({"x": [1, 2], "seed": [0, 1]})
    res = Sweep(
        "stage2", obj, g, tmp_path, backend="serial", progress=False, reuse=[tmp_path / "stage1.jsonl"]
    ).run()
    # x=1 seed 0 reused; x=2 seed 0 failed there, so it runs here; seed 1 points run
    assert sorted((c["x"], c["seed"]) for c in obj.calls) == [(1, 1), (2, 0), (2, 1)]
    recs = {r["point_id"]: r for r in read_records(tmp_path / "stage2.jsonl")}
    assert recs[point_id({"x": 1, "seed": 0})]["reused_from"] == "stage1.jsonl" and len(res.ok) == 4
    again = Counting()
    Sweep(
        "stage2", again, g, tmp_path, backend="serial", progress=False, reuse=[tmp_path / "stage1.jsonl"]
    ).run()
    assert again.calls == [] and len(read_records(tmp_path / "stage2.jsonl")) == 4
    with pytest.raises(ConfigError, match="does not exist"):
        Sweep("s3", obj, g, tmp_path, backend="serial", progress=False, reuse=[tmp_path / "nope.jsonl"]).run()


def test_error_recorded_then_retried(tmp_path):
    g = Grid({"x": [0, 1, 2]})
    logs: list[str] = []
    res = Sweep(
        "e",
        Counting(fail_on=lambda p: p["x"] == 1),
        g,
        tmp_path,
        backend="serial",
        progress=False,
        log=logs.append,
    ).run()
    assert len(res.errors) == 1 and len(res.ok) == 2
    assert res.errors[0]["point"] == {"x": 1} and res.errors[0]["error"].startswith("RuntimeError: boom")
    assert any("failed" in m for m in logs)
    # without retry_errors an errored point counts as done
    obj = Counting()
    Sweep("e", obj, g, tmp_path, backend="serial", progress=False).run()
    assert obj.calls == []
    obj = Counting()
    res = Sweep("e", obj, g, tmp_path, backend="serial", progress=False, retry_errors=True).run()
    assert obj.calls == [{"x": 1}] and not res.errors and len(res.ok) == 3
    assert len(read_records(tmp_path / "e.jsonl")) == 4  # history kept; the latest line of a point wins
    # a non-dict return is an error, not a crash
    res = Sweep("bad", lambda p: 3.0, Grid({"x": [0]}), tmp_path, backend="serial", progress=False).run()
    assert "expected a dict" in res.errors[0]["error"]


def test_table_best_rows(tmp_path):
    g = Grid({"x": [0, 1], "y": [0.5, -0.5], "seed": [0, 1, 2]})
    res = Sweep("t", toy_objective, g, tmp_path, backend="serial", progress=False).run()
    md = res.table("loss", agg="mean+-std")
    lines = md.splitlines()
    assert lines[0] == "| x | y | loss (mean +- std) | n | errors |"
    assert len(lines) == 2 + 4 and all(line.endswith("| 3 | 0 |") for line in lines[2:])
    assert "+-" in lines[2]
    by_x = res.table(["loss", "score"], by=["x"]).splitlines()
    assert len(by_x) == 4 and by_x[2].startswith("| 0 |") and by_x[2].endswith("| 6 | 0 |")
    best = res.best("loss", mode="min")
    assert (best["x"], best["y"]) == (1, -0.5)
    assert best["loss"] == min(r["loss"] for r in res.to_rows())
    assert res.best("loss")["loss"] == max(r["loss"] for r in res.to_rows())
    rows = res.to_rows()
    assert len(rows) == 12 and {"x", "y", "seed", "loss", "score", "point_id", "seconds", "error"} <= set(
        rows[0]
    )
    with pytest.raises(ConfigError):
        res.best("nope")
    with pytest.raises(ConfigError):
        res.table("loss", agg="median")


def _val_objective(point: dict) -> dict:
    """Test accuracy best at x = 1, validation accuracy best at x = 0: a choice on test would take x = 1."""
    x = float(point["x"])
    return {"acc": 0.5 + 0.1 * x, "val_acc": 0.7 - 0.1 * x}


def test_the_sweep_report_chooses_on_validation_and_says_when_it_cannot(tmp_path):
    """A sweep's report printed "best acc (max)" of the test accuracy: a setting chosen on the test parts. It now
    chooses by the validation figure when the objective gives one, and otherwise says the figure is not a choice."""
    from converters.sweep_cli import best_line

    g = Grid({"x": [0, 1]})
    res = Sweep("v", _val_objective, g, tmp_path, backend="serial", progress=False).run()
    line = best_line(res, "acc", "max", ["x"])
    assert line.startswith('chosen by val_acc (validation): 0.7 at {"x": 0}') and "its acc: 0.5" in line
    toy = Sweep("t", toy_objective, Grid({"x": [0, 1]}), tmp_path, backend="serial", progress=False).run()
    assert "not a choice" in best_line(toy, "score", "max", ["x"])


def test_ray_matches_serial(tmp_path):
    from converters.sweep import _ray_available

    if not _ray_available():
        pytest.skip("ray is not installed (pip install 'edge-ser[sweep]'); only the serial path is tested")
    g = Grid({"x": [0, 1, 2], "y": [0.5, -0.5], "seed": [0, 1]}, points=[{"x": 9, "fail": True}])
    serial = Sweep("s", toy_objective, g, tmp_path, backend="serial", progress=False).run()
    ray_res = Sweep(
        "r",
        toy_objective,
        g,
        tmp_path,
        backend="ray",
        progress=False,
        max_concurrent=2,
        ray_init={"num_cpus": 2},
    ).run()
    assert ray_res.backend == "ray"
    assert [r["point_id"] for r in ray_res.records] == g.ids  # grid order, whatever the finishing order
    assert [r["metrics"] for r in ray_res.records] == [r["metrics"] for r in serial.records]
    assert ray_res.errors[0]["error"].startswith("RuntimeError: asked to fail")
    assert {r["backend"] for r in read_records(tmp_path / "r.jsonl")} == {"ray"}
    # resume through the same file works whichever backend wrote it
    obj = Counting()
    Sweep("r", obj, g, tmp_path, backend="serial", progress=False, retry_errors=True).run()
    assert obj.calls == [{"x": 9, "fail": True}]


def test_auto_backend_and_missing_ray(tmp_path, monkeypatch):
    import converters.sweep as sweep_mod

    monkeypatch.setattr(sweep_mod, "_ray_available", lambda: False)
    logs: list[str] = []
    res = Sweep("a", toy_objective, Grid({"x": [0]}), tmp_path, progress=False, log=logs.append).run()
    assert res.backend == "serial" and "ray not installed" in logs[0]
    with pytest.raises(ImportError, match="pip install ray"):
        Sweep("a", toy_objective, Grid({"x": [0]}), tmp_path, backend="ray").run()
    with pytest.raises(ConfigError):
        Sweep("a", toy_objective, Grid({"x": [0]}), tmp_path, backend="dask")
    with pytest.raises(ConfigError):
        Sweep("../a", toy_objective, Grid({"x": [0]}), tmp_path)


KILL_SCRIPT = """
import sys, time
from converters.sweep import Grid, Sweep
from converters.sweep_cli import toy_objective
def objective(p):
    if p["x"] == 10:
        time.sleep(3600)  # killed here: points 0..9 are on disk, whatever the machine's speed
    return toy_objective(p)
Sweep("k", objective, Grid({"x": list(range(40))}, fixed={"sleep": 0.02}), sys.argv[1],
      backend="serial", progress=False).run()
"""


def test_sigkill_leaves_whole_lines_and_resume_completes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), str(tmp_path)], env=env, cwd=REPO
    )
    path = tmp_path / "k.jsonl"
    deadline = time.monotonic() + 120  # hang guard only
    while time.monotonic() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 10):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    data = path.read_bytes()
    assert data.endswith(b"\n")
    done = [json.loads(line) for line in data.splitlines()]  # every line parses
    assert len(done) == 10  # killed while point 10 ran
    # a torn line (as a full disk would leave) is cut before the resume appends
    with open(path, "ab") as f:
        f.write(b'{"point_id": "abc", "po')
    obj = Counting()
    g = Grid({"x": list(range(40))}, fixed={"sleep": 0.02})
    res = Sweep("k", lambda p: obj({**p, "sleep": 0}), g, tmp_path, backend="serial", progress=False).run()
    assert len(obj.calls) == 40 - len(done)
    assert len(res.ok) == 40 and [r["point_id"] for r in res.records] == g.ids
    lines = path.read_bytes().splitlines()
    assert len(lines) == 40 and all(json.loads(line) for line in lines)


def test_cli_spec(tmp_path, capsys):

    spec = tmp_path / "toy.yaml"
    spec.write_text(
        textwrap.dedent("""
        name: toy
        objective: toy
        backend: serial
        grid:
          axes: {x: [0, 1], y: [0.5, -0.5], seed: [0, 1]}
        report: {metric: loss, by: [x, y], agg: mean+-std, mode: min}
    """)
    )
    from edge_ser.cli import build_parser

    def parse(argv):  # the real `edge-ser sweep` arguments
        return build_parser().parse_args(["sweep", *argv])

    args = parse([str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    assert cmd_sweep(args) == 0
    out = capsys.readouterr().out
    assert "| x | y | loss (mean +- std) | n | errors |" in out and "best loss (min)" in out
    assert (tmp_path / "out" / "toy.md").read_text().startswith("## sweep toy")
    assert len(read_records(tmp_path / "out" / "toy.jsonl")) == 8
    spec.write_text("objective: nope\ngrid: {axes: {x: [1]}}\n")
    with pytest.raises(ConfigError, match="unknown objective"):
        cmd_sweep(parse([str(spec), "--out", str(tmp_path / "out")]))
    spec.write_text("objective: toy\ngrid: {axes: {x: [1]}}\nbogus: 1\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        cmd_sweep(parse([str(spec)]))


def test_laq_weights_objective_smoke(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from converters.sweep_cli import laq_weights_objective

    monkeypatch.setenv("EDGE_SER_CACHE", str(tmp_path / "cache"))
    g = Grid({"wP": [0.11, 0.5]}, fixed={"data": "synthetic", "epochs": 10, "qat_epochs": 2, "seed": 0})
    res = Sweep("laq", laq_weights_objective, g, tmp_path, backend="serial", progress=False).run()
    assert not res.errors, res.errors
    for r in res.ok:
        m = r["metrics"]
        assert 0.0 <= m["acc"] <= 1.0 and 1.0 <= m["bits"] <= 8.0 and set(m["plan"]) and "ptq_acc" in m
        assert min(m["plan"].values()) <= m["bits"] <= max(m["plan"].values())  # a mean of the layers' bits
    # one float model for the grid (the weights only steer the allocation), and the weights do steer it
    assert sorted(r["point"]["wP"] for r in res.ok) == [0.11, 0.5]
    first, second = (r["metrics"] for r in res.ok)
    assert first["float_acc"] == second["float_acc"] and set(first["plan"]) == set(second["plan"])
    assert first["plan"] != second["plan"]
    bad = Sweep("bad", laq_weights_objective, Grid({"wX": [1]}), tmp_path, backend="serial", progress=False)
    assert "unknown point keys" in bad.run().errors[0]["error"]


def test_a_sweep_on_a_folder_computes_again_when_its_files_change(tmp_path, capsys):
    """Points were keyed by the folder's name alone, so a sweep over a folder whose files had changed replayed
    the old files' results; a point now holds a fingerprint of the files."""
    pytest.importorskip("sklearn")
    from converters.data.synthetic import SyntheticSpec, generate
    from converters.sweep import read_records
    from edge_ser.audio import write_wav
    from edge_ser.cli import build_parser

    data = tmp_path / "mine"
    spec = SyntheticSpec(n_per_class=10, n_speakers=3, labels=("neutral", "sad", "angry"), duration=1.0)
    for i, (wave, label, speaker) in enumerate(generate(spec)):
        write_wav(data / label / f"{speaker}_{i:03d}.wav", wave, spec.sr)
    sweep = tmp_path / "rf.json"
    grid = {"fixed": {"model": "rf", "data": str(data)}, "axes": {"seed": [0]}}
    sweep.write_text(json.dumps({"objective": "zoo", "backend": "serial", "grid": grid}))
    args = build_parser().parse_args(["sweep", str(sweep), "--out", str(tmp_path / "out"), "--quiet"])
    runs = tmp_path / "out" / "rf.jsonl"
    assert cmd_sweep(args) == 0 and len(read_records(runs)) == 1
    assert cmd_sweep(args) == 0 and len(read_records(runs)) == 1  # the same files: reused
    next((data / "sad").iterdir()).unlink()
    assert cmd_sweep(args) == 0 and len(read_records(runs)) == 2  # other files: computed again


def test_a_report_key_typo_is_refused_before_any_point_runs(tmp_path):
    """Review: the report block was checked after the sweep had run every point; a typo (`metrics:`) cost the
    whole run before its error. Now it is refused first and nothing is written."""
    from edge_ser.cli import build_parser

    spec = tmp_path / "toy.yaml"
    spec.write_text("objective: toy\ngrid: {axes: {x: [0, 1]}}\nreport: {metrics: loss}\n")
    args = build_parser().parse_args(["sweep", str(spec), "--out", str(tmp_path / "out"), "-q"])
    with pytest.raises(ConfigError, match=r"report has unknown keys \['metrics'\]"):
        cmd_sweep(args)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("under", ["", "sub"])
def test_a_results_folder_that_is_a_file_is_a_config_error_naming_it(tmp_path, under, capsys):
    """Review: `sweep --out FILE` (and zoo's) ended in "[Errno 17] File exists: ..." naming no option; now a
    ConfigError names the results folder and --out."""
    from edge_ser.cli import main

    spec = tmp_path / "toy.yaml"
    spec.write_text("objective: toy\nbackend: serial\ngrid: {axes: {x: [0, 1]}}\n")
    blocker = tmp_path / "taken"
    blocker.write_text("a file\n")
    out = blocker / under if under else blocker
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"results folder {out} (--out): cannot write" in err and "Errno" not in err
    assert blocker.read_text() == "a file\n"


def test_an_invalid_spec_is_one_line_saying_where(tmp_path, monkeypatch):
    """PyYAML's error spans several lines quoting the source (a review); without PyYAML a JSON spec's error was a
    traceback. Both are now one line naming the file, the line and the column."""
    import builtins

    from converters.sweep_cli import load_spec

    spec = tmp_path / "bad.yaml"
    spec.write_text("objective: toy\ngrid:\n  axes: {x: [0, 1]\n")
    with pytest.raises(ConfigError) as e:
        load_spec(spec)
    assert "\n" not in str(e.value) and str(e.value).startswith(f"{spec}: not valid YAML (line ")
    real_import = builtins.__import__

    def no_yaml(name, *a, **k):
        if name == "yaml":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    spec.write_text('{"objective": "toy", "grid": }')
    with pytest.raises(ConfigError, match=r"not valid JSON \(line 1, column \d+: .*PyYAML, not installed"):
        load_spec(spec)


def test_a_zoo_sweep_point_of_the_wrong_kind_is_refused_before_any_point_runs(tmp_path):
    """A zoo sweep's `epochs: abc` failed inside every point, each failure stored (a review): the points are
    checked as ZooPoints first, and nothing is written."""
    from converters.sweep_cli import cmd_sweep
    from edge_ser.cli import build_parser

    spec = tmp_path / "z.yaml"
    spec.write_text(
        "objective: zoo\ngrid: {axes: {model: [rf, svm]}, fixed: {data: synthetic, epochs: abc}}\n"
    )
    args = build_parser().parse_args(["sweep", str(spec), "--out", str(tmp_path / "out"), "-q"])
    with pytest.raises(ConfigError, match=r"z\.yaml: zoo: point key epochs='abc' must be int"):
        cmd_sweep(args)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("objective: toy\ngrid: {axis: {x: [1]}}\n", r"grid has unknown keys \['axis'\]"),
        ("objective: toy\ngrid: {axes: {x: []}}\n", "grid axis 'x' must be a non-empty list"),
        ("objective: toy\ngrid: {}\n", "a grid needs at least one axis or one explicit point"),
        ("objective: toy\ngrid: {axes: [1, 2]}\n", "grid axes must be a mapping"),
        ("objective: toy\ngrid: {points: {x: 1}}\n", "grid points must be a list of mappings"),
        ("objective: toy\ngrid: {points: [1]}\n", "grid points must be a list of mappings"),
        ("objective: toy\ngrid: {axes: {x: [1]}, fixed: 3}\n", "grid fixed must be a mapping"),
        ("objective: toy\ngrid: {axes: {x: [1]}}\nreport: [loss]\n", "report must be a mapping"),
        ("objective: toy\ngrid: {axes: {x: [1]}}\nreport: {agg: median}\n", "report agg must be"),
        ("objective: toy\ngrid: {axes: {x: [1]}}\nreport: {mode: lowest}\n", "report mode must be"),
        ("objective: toy\ngrid: {axes: {x: [1]}}\nreport: {by: x}\n", "report by must be a list"),
        (
            "objective: toy\ngrid: {axes: {x: [1]}}\nmax_concurrent: two\n",
            "max_concurrent must be a whole number",
        ),
        ("objective: toy\ngrid: {axes: {x: [1]}}\nresources: 2\n", "resources must be a mapping"),
        ("objective: toy\ngrid: {axes: {x: [1]}}\nresources: {cpu: one}\n", "resources cpu must be a number"),
        ("objective: toy\ngrid: {axes: {x: [1]}}\nbackend: rays\n", "backend must be one of"),
        ("objective: toy\ngrid: {axes: {x: [1]}}\nreuse: a.jsonl\n", "reuse must be a list"),
        ("objective: laq_weights\ngrid: {axes: {wp: [0.1]}}\n", r"laq_weights: unknown point keys \['wp'\]"),
    ],
)
def test_a_spec_of_the_wrong_shape_is_refused_naming_the_file_before_any_point_runs(
    tmp_path, capsys, body, says
):
    """Review: a grid / report / max_concurrent / resources of the wrong kind was a TypeError or AttributeError
    traceback (exit 1), a grid error named no file, a report agg or mode typo was found only after every point
    had run, and a laq_weights key typo was stored as a failure of every point (exit 1). Each is now one line
    naming the spec, exit 2, nothing written."""
    from edge_ser.cli import main

    spec = tmp_path / "s.yaml"
    spec.write_text(body)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{spec}: " in err and re.search(says, err) and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_grid_points_may_be_any_iterable_of_mappings():
    g = Grid(points=({"x": i} for i in range(3)))
    assert [p["x"] for p in g] == [0, 1, 2]
