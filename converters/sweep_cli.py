"""`edge-ser sweep SPEC.yaml`: run a named objective over a grid (converters.sweep), print its table.

A spec (YAML or JSON):

    name: laq-weights              # results go to <out>/<name>.jsonl and <name>.md
    objective: laq_weights         # a key of OBJECTIVES
    out: runs/sweeps
    backend: auto                  # auto | serial | ray
    max_concurrent: 2              # optional: Ray tasks in flight
    resources: {cpu: 1}            # optional: per point, for Ray's scheduler
    grid:
      axes: {wP: [0.11, 0.33], wE: [0.01], wV: [0.88, 0.66], seed: [0, 1, 2]}
      fixed: {data: synthetic}
    report: {metric: [acc, bits], by: [wP, wV], agg: mean+-std, mode: max}
                                   # optional; the choice is the setting with the best val_<metric> (or
                                   # val_acc), averaged over fold and seed (mode: min for a loss); by defaults
                                   # to the varying axes but fold and seed
    reuse: [other-sweep.jsonl]     # optional: finished identical points of other sweeps are copied, not re-run
                                   # (paths relative to the spec's folder)

Objectives are registered by name in OBJECTIVES as "module:function" (imported only when used, so this
module stays light) or as a callable; other modules add theirs, e.g. OBJECTIVES["lms"] = "converters.x:f".
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_ser.errors import ConfigError
from edge_ser.fileio import atomic_write


def spec_help() -> str:
    """The spec format of this module's docstring, for `edge-ser sweep --help`."""
    doc = __doc__ or ""
    return doc[doc.index("A spec") : doc.index("Objectives are registered")].rstrip() + (
        "\n\nObjectives: " + ", ".join(OBJECTIVES)
    )


OBJECTIVES: dict[str, str | Callable[[dict], Mapping[str, Any]]] = {
    "toy": "converters.sweep_cli:toy_objective",
    "laq_weights": "converters.sweep_cli:laq_weights_objective",
    # every model of the zoo on one split (converters.zoo.ZooPoint keys); LMS grids are this with
    # model squeezenet_lms and axes M, L, H, n_fft, T
    "zoo": "converters.zoo:zoo_objective",
    "lms": "converters.zoo:zoo_objective",
}
SPEC_KEYS = {"name", "objective", "out", "backend", "max_concurrent", "resources", "grid", "report", "reuse"}


def toy_objective(point: dict) -> dict:
    """Deterministic and instant: a quadratic bowl in (x, y) plus a seeded offset. For tests and smoke runs."""
    import random
    import time

    time.sleep(float(point.get("sleep", 0.0)))  # lets tests kill a sweep mid-run
    x, y, seed = float(point.get("x", 0.0)), float(point.get("y", 0.0)), int(point.get("seed", 0))
    if point.get("fail"):
        raise RuntimeError(f"asked to fail at {point}")
    noise = random.Random(seed).uniform(-0.01, 0.01)
    return {"loss": (x - 1.0) ** 2 + (y + 0.5) ** 2 + noise, "score": -abs(x * y) + noise}


@functools.lru_cache(maxsize=4)
def _float_model(data: str, root: str | None, split: str, seed: int, fold: int, epochs: int, folds: int = 5):
    """Prepared data, split and trained float laq_mlp; deterministic in its arguments, cached per process
    so a weight grid trains each (data, split, seed) once."""
    import torch

    from converters.featurize import FeatureCache, default_cache_dir
    from converters.models import laq_mlp
    from converters.pipeline import make_split, prepare
    from converters.train import TrainConfig, seed_everything, train_classifier
    from edge_ser.features import FeatureSpec

    # the weight grids' finished points (benchmarks/results/sweeps) were measured on the 22.05 kHz recipe and
    # their ids do not name it: keep it, so a resumed grid stays one experiment
    prep = prepare(data, root, spec=FeatureSpec(), cache=FeatureCache(default_cache_dir()), progress=False)
    sp = make_split(prep, split, seed=seed, fold=fold, k=folds)
    Xtr, ytr, Xva, yva, Xte, yte = prep.parts(sp)
    seed_everything(seed)
    model = laq_mlp(prep.X.shape[1], len(prep.classes))
    model.set_normalization(torch.as_tensor(Xtr.mean(0)), torch.as_tensor(Xtr.std(0)))
    cfg = TrainConfig(seed=seed, threads=1, **({"epochs": epochs} if epochs else {}))
    fp = train_classifier(model, Xtr, ytr, Xva, yva, cfg, progress=False).model
    return fp, (Xtr, ytr, Xva, yva, Xte, yte)


LAQ_WEIGHTS_KEYS = frozenset(
    {
        "wP",
        "wE",
        "wV",
        "seed",
        "data",
        "root",
        "split",
        "fold",
        "folds",
        "recipe",
        "t_margin",
        "epochs",
        "qat_epochs",
        "files",
    }
)


def _check_laq_weights_point(point: Mapping[str, Any]) -> None:
    unknown = set(point) - LAQ_WEIGHTS_KEYS
    if unknown:
        raise ConfigError(
            f"laq_weights: unknown point keys {sorted(unknown)}; known: {sorted(LAQ_WEIGHTS_KEYS)}"
        )


def laq_weights_objective(point: dict) -> dict:
    """One point of a LAQ weight grid: the paper's recipe with importance weights (wP, wE, wV).

    Point keys (defaults): wP 0.11, wE 0.01, wV 0.88, seed 0, data "synthetic", root None, split "random",
    fold 0, folds 5 (speaker folds of split "speaker"), recipe "laq-paper", t_margin 0.05, epochs 0 (= TrainConfig default), qat_epochs 0 (= QAT default).
    Metrics: acc (test, after QAT), ptq_acc (rounding only), float_acc, bits (average), plan (bits per layer).
    """
    from dataclasses import replace

    import torch

    from converters.compress import compress
    from converters.quant import LaqConfig
    from converters.quant.laq import LaqWeights
    from converters.quant.qat import QAT_DEFAULTS
    from converters.train import accuracy

    _check_laq_weights_point(point)
    torch.set_num_threads(1)  # same arithmetic in every process, so serial and Ray agree
    seed = int(point.get("seed", 0))
    fp, (Xtr, ytr, Xva, yva, Xte, yte) = _float_model(
        str(point.get("data", "synthetic")),
        point.get("root"),
        str(point.get("split", "random")),
        seed,
        int(point.get("fold", 0)),
        int(point.get("epochs", 0)),
        int(point.get("folds", 5)),
    )
    lw = LaqWeights(float(point.get("wP", 0.11)), float(point.get("wE", 0.01)), float(point.get("wV", 0.88)))
    laq = LaqConfig(t_margin=float(point.get("t_margin", 0.05)), weights=lw)
    qcfg = replace(QAT_DEFAULTS, threads=1)
    if point.get("qat_epochs"):
        qcfg = replace(qcfg, epochs=int(point["qat_epochs"]))
    c = compress(
        str(point.get("recipe", "laq-paper")), fp, Xtr, ytr, Xva, yva, laq=laq, qat_config=qcfg, seed=seed
    )
    out = {
        "acc": accuracy(c.model, Xte, yte),
        "val_acc": accuracy(c.model, Xva, yva),  # what a choice between points is made on
        "float_acc": accuracy(fp, Xte, yte),
        "bits": c.plan.average_bits,
        "plan": dict(c.plan.bits),
    }
    if "ptq_model" in c.info:
        out["ptq_acc"] = accuracy(c.info["ptq_model"], Xte, yte)
    return out


def best_line(res: Any, metric: str, mode: str, varying: Sequence[str]) -> str:
    """The sweep report's choice, made on validation: by `val_<metric>` (or `val_acc`) when the objective reports
    one, with `metric` beside it; else the point with the best `metric`, said to be a test figure and not a
    choice (the line said "best acc" of the test accuracy, which picks a setting on the test parts).

    When fold and/or seed vary (`converters.sweep.REPLICATE_AXES`), the choice is between the settings of the
    other varying axes, each by its figure averaged over its folds and seeds, and the line prints those means
    (it chose the best single point, i.e. the luckiest fold or seed, and printed that point's figure)."""
    from converters.sweep import REPLICATE_AXES

    rows = res.to_rows()
    by = next(
        (k for k in (f"val_{metric}", "val_acc") if any(isinstance(r.get(k), (int, float)) for r in rows)),
        None,
    )
    replicates = [k for k in varying if k in REPLICATE_AXES]
    not_a_choice = (
        "a figure on the test parts, not a choice (this objective reports no validation figure to choose by)"
    )
    if not replicates:
        if by is None:
            best = res.best(metric, mode)
            return f"best {metric} ({mode}): {best[metric]} at {json.dumps({k: best[k] for k in varying})}: {not_a_choice}"
        best = res.best(by, "max" if by == "val_acc" else mode)
        return (
            f"chosen by {by} (validation): {best[by]} at {json.dumps({k: best[k] for k in varying})}; its "
            f"{metric}: {best.get(metric)}"
        )
    key_metric = by or metric
    want = "max" if by == "val_acc" else mode
    settings = [k for k in varying if k not in REPLICATE_AXES]
    groups: dict[str, tuple[dict, list[dict]]] = {}
    for r in rows:
        if r["error"] or not isinstance(r.get(key_metric), (int, float)):
            continue
        key = {k: r.get(k) for k in settings}
        groups.setdefault(json.dumps(key, sort_keys=True, default=str), (key, []))[1].append(r)
    if not groups:
        raise ConfigError(f"no finished point has a numeric metric {key_metric!r}")

    def mean(group: list[dict], name: str) -> float | None:
        vals = [float(r[name]) for r in group if isinstance(r.get(name), (int, float))]
        return sum(vals) / len(vals) if vals else None

    pick = max if want == "max" else min
    key, group = pick(groups.values(), key=lambda g: mean(g[1], key_metric))  # first in grid order on ties
    over = " x ".join(replicates)
    sizes = sorted({len(g) for _, g in groups.values()})
    runs = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    at = f"at {json.dumps(key)}" if settings else f"(only the {over} vary: one setting, nothing to choose)"
    figure = f"mean {mean(group, key_metric):.4g} {at}"
    if by is None:
        return (
            f"best {metric} ({mode}) averaged over {over} ({runs} runs per setting): {figure}: {not_a_choice}"
        )
    m = mean(group, metric)
    return (
        f"chosen by {by} (validation) averaged over {over} ({runs} runs per setting): {figure}; its mean "
        f"{metric}: {'-' if m is None else f'{m:.4g}'}"
    )


def resolve_objective(name: str) -> Callable[[dict], Mapping[str, Any]]:
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; registered: {', '.join(sorted(OBJECTIVES))}")
    target = OBJECTIVES[name]
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def yaml_problem(error: Exception) -> str:
    """PyYAML's error on one line: where and what ("line 3, column 5: mapping values are not allowed here"); its
    own text spans several lines with the source quoted."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def load_spec(path: Path) -> dict:
    """The sweep spec at `path` (YAML, or JSON which YAML reads too), checked for unknown keys."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read sweep spec: {e.strerror}") from e
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is None:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}; PyYAML, not installed, "
                "reads YAML)"
            ) from None
    else:
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({yaml_problem(e)})") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a sweep spec is a mapping, got {type(spec).__name__}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(SPEC_KEYS)}")
    for key in ("objective", "grid"):
        if key not in spec:
            raise ConfigError(f"{path}: missing {key!r}")
    return spec


def fingerprint_folders(points: list[dict]) -> bool:
    """Give each point whose data is a folder the fingerprint of its files (`files`; part of the point's id),
    so a sweep over a folder whose files changed computes again instead of replaying the old files' results.
    Returns whether any point got one."""
    from converters.data.loaders import is_labels_csv
    from converters.pipeline import files_fingerprint, load_records

    seen: dict[tuple, str] = {}
    for p in points:
        data, root = str(p.get("data", "")), p.get("root")
        if data and (Path(data).is_dir() or is_labels_csv(data)) and "files" not in p:
            key = (data, root)
            if key not in seen:
                seen[key] = files_fingerprint(load_records(data, root)[1])
            p["files"] = seen[key]
    return bool(seen)


def check_points(objective: str, points: list[dict], spec: Path) -> None:
    """Before any point runs: every point of a zoo (or lms) sweep is a valid `ZooPoint` (its keys and the kinds of
    their values), and every point of a laq_weights sweep names only its keys. A bad one failed alone inside the
    sweep, its failure stored for every point (a review)."""
    if OBJECTIVES.get(objective) == "converters.sweep_cli:laq_weights_objective":
        for point in points:
            try:
                _check_laq_weights_point(point)
            except ConfigError as e:
                raise ConfigError(f"{spec}: {e}") from None
        return
    if OBJECTIVES.get(objective) != "converters.zoo:zoo_objective":
        return
    from converters.zoo import ZooPoint

    for point in points:
        try:
            ZooPoint.from_point(point)
        except ConfigError as e:
            raise ConfigError(f"{spec}: {e}") from None


def check_report(report: Any, spec: Path) -> dict:
    """The spec's report block, checked before any point runs (found after the sweep, a typo or a value of the
    wrong kind cost its whole run): metric a name or a list of names, by a list of names, agg and mode one of
    theirs."""
    if report is None:
        return {}
    if not isinstance(report, dict):
        raise ConfigError(f"{spec}: report must be a mapping (metric, by, agg, mode), got {report!r}")
    unknown = set(report) - {"metric", "by", "agg", "mode"}
    if unknown:
        raise ConfigError(f"{spec}: report has unknown keys {sorted(unknown)}")
    metric = report.get("metric")
    names = [metric] if isinstance(metric, str) else metric
    if metric is not None and (
        not isinstance(names, list) or not names or not all(isinstance(m, str) for m in names)
    ):
        raise ConfigError(f"{spec}: report metric must be a metric name or a list of them, got {metric!r}")
    by = report.get("by")
    if by is not None and (not isinstance(by, list) or not all(isinstance(b, str) for b in by)):
        raise ConfigError(f"{spec}: report by must be a list of point keys, got {by!r}")
    from converters.sweep import AGGS, MODES

    if report.get("agg", "mean") not in AGGS:
        raise ConfigError(f"{spec}: report agg must be 'mean' or 'mean+-std', got {report['agg']!r}")
    if report.get("mode", "max") not in MODES:
        raise ConfigError(f"{spec}: report mode must be 'max' or 'min', got {report['mode']!r}")
    return report


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run (or resume) the sweep of args.spec; print and write `<name>.md`. Exit 1 if any point failed."""
    from converters.sweep import Grid, Sweep

    spec = load_spec(args.spec)
    if not isinstance(spec["grid"], dict):
        raise ConfigError(f"{args.spec}: grid must be a mapping with axes / points / fixed")
    report = check_report(spec.get("report"), args.spec)
    say = (lambda s: None) if args.quiet else print
    reuse = spec.get("reuse") or []
    if isinstance(reuse, str) or not isinstance(reuse, list):
        raise ConfigError(f"{args.spec}: reuse must be a list of JSON-lines files, got {reuse!r}")
    # a spec's grid, backend, max_concurrent or resources of the wrong kind is refused naming the file, before any
    # point runs (it was a bare "grid has unknown keys" or a TypeError traceback)
    try:
        grid = Grid.from_dict(spec["grid"])
        if fingerprint_folders(grid.points):
            grid = Grid(points=grid.points)  # the ids again, with each folder's fingerprint in them
        objective = resolve_objective(str(spec["objective"]))
        name = str(spec.get("name") or Path(args.spec).stem)
        out = Path(args.out or spec.get("out") or "runs/sweeps")
        sweep = Sweep(
            name,
            objective,
            grid,
            out,
            backend=args.backend or spec.get("backend", "auto"),
            max_concurrent=args.max_concurrent or spec.get("max_concurrent"),
            resources=spec.get("resources"),
            reuse=[Path(p) if Path(p).is_absolute() else Path(args.spec).parent / p for p in reuse],
            retry_errors=args.retry_errors,
            progress=not args.quiet,
            log=say,
        )
    except ConfigError as e:
        raise ConfigError(f"{args.spec}: {e}") from None
    check_points(str(spec["objective"]), grid.points, args.spec)
    from converters.data.scan import each_warning_once

    with each_warning_once():  # each point loads the data set again: its warnings once, not once per point
        res = sweep.run()
    metric = report.get("metric")
    if metric is None and res.ok:
        metric = sorted(k for k, v in res.ok[0]["metrics"].items() if isinstance(v, (int, float)))
    lines = [
        f"## sweep {name} ({spec['objective']}, {len(res.records)}/{len(sweep.grid)} points, {res.backend})",
        "",
    ]
    if metric and res.ok:
        lines.append(res.table(metric, by=report.get("by"), agg=report.get("agg", "mean")))
        first = metric if isinstance(metric, str) else metric[0]
        lines += ["", best_line(res, first, report.get("mode", "max"), sweep.grid.varying)]
    for r in res.errors:
        lines.append(f"\nfailed {r['point_id']} {json.dumps(r['point'])}: {r['error'].splitlines()[0]}")
    text = "\n".join(lines)
    print(text)
    md = out / f"{name}.md"
    atomic_write(md, text + f"\n\nResults: `{res.path}`\n")
    return 1 if res.errors else 0
