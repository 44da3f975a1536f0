"""Hyper-parameter sweeps (LMS grids, LAQ weight grids, seeds): Ray when installed, a serial loop otherwise.

    grid = Grid({"wP": [0.11, 0.3], "wV": [0.88, 0.6], "seed": [0, 1, 2]}, fixed={"data": "synthetic"})
    res = Sweep("laq-w", objective, grid, "runs/sweeps").run()
    print(res.table("acc", by=["wP", "wV"], agg="mean+-std"))

Contract:
- An objective maps one point (a dict of JSON values) to a dict of JSON metrics, and is deterministic given
  the point (the seed is an axis), so the serial and Ray backends give the same metrics.
- Every finished point is one line of `out_dir/<name>.jsonl` (point, point_id, metrics, seconds, backend,
  error), written by the driver with a single O_APPEND write, so a killed sweep leaves whole lines only; a
  torn last line (e.g. a full disk) is cut off before the next run appends.
- Re-running a sweep skips the points already in the file; points that raised are recorded with their error
  and re-run only with `retry_errors=True`. The latest line of a point wins.
- The Ray backend runs plain `ray.remote` tasks (not Ray Tune): a grid needs no scheduler or search
  algorithm, Tune's own experiment folders and resume would duplicate the JSONL, and `ray` alone is a
  smaller install than `ray[tune]`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from edge_ser.errors import ConfigError, MissingDependencyError, install_hint

BACKENDS = ("auto", "serial", "ray")
AGGS = ("mean", "mean+-std")
"""How `SweepResult.table` aggregates a metric over the points of a row (a spec's `report.agg`)."""
MODES = ("max", "min")
"""Whether `SweepResult.best` takes the highest or the lowest metric (a spec's `report.mode`)."""
REPLICATE_AXES = ("fold", "seed")
"""Point keys that repeat one setting on other data or another draw, not settings to choose: the report's table
groups over them by default, and a choice between points averages its validation figure over them (choosing
the best point would choose the luckiest fold or seed)."""
Objective = Callable[[dict], Mapping[str, Any]]


def _json_default(o: Any) -> Any:
    """numpy scalars/arrays (and anything else with .item()/.tolist()) as plain JSON values."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def point_id(point: Mapping[str, Any]) -> str:
    """Stable 12-hex id of a point: sha256 of its sorted, compact JSON (axis order does not matter)."""
    return hashlib.sha256(canonical_json(dict(point)).encode()).hexdigest()[:12]


class Grid:
    """Named axes -> values (their product, last axis fastest) and/or an explicit list of points.

    `fixed` values are merged into every point (they are part of its id). Order is deterministic:
    product points in axis order, then explicit points in the order given. Duplicate points are an error.
    """

    def __init__(
        self,
        axes: Mapping[str, Sequence[Any]] | None = None,
        *,
        points: Iterable[Mapping[str, Any]] | None = None,
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        if axes is not None and not isinstance(axes, Mapping):
            raise ConfigError(f"grid axes must be a mapping of name -> list of values, got {axes!r}")
        if fixed is not None and not isinstance(fixed, Mapping):
            raise ConfigError(f"grid fixed must be a mapping of name -> value, got {fixed!r}")
        if points is not None:
            if isinstance(points, (str, bytes, Mapping)) or not isinstance(points, Iterable):
                raise ConfigError(f"grid points must be a list of mappings (name -> value), got {points!r}")
            points = list(points)
            bad = next((p for p in points if not isinstance(p, Mapping)), None)
            if bad is not None:
                raise ConfigError(
                    f"grid points must be a list of mappings (name -> value), got {bad!r} in it"
                )
        self.fixed = dict(fixed or {})
        for k, v in (axes or {}).items():
            if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable) or not list(v):
                raise ConfigError(f"grid axis {k!r} must be a non-empty list of values, got {v!r}")
        self.axes = {str(k): list(v) for k, v in (axes or {}).items()}
        for k in self.axes:
            if k in self.fixed:
                raise ConfigError(f"grid axis {k!r} is also a fixed value")
        explicit = [dict(p) for p in (points or [])]
        out: list[dict] = []
        if self.axes:
            names = list(self.axes)
            out += [
                {**self.fixed, **dict(zip(names, combo, strict=True))}
                for combo in itertools.product(*self.axes.values())
            ]
        out += [{**self.fixed, **p} for p in explicit]
        if not out:
            raise ConfigError("a grid needs at least one axis or one explicit point")
        self.points: list[dict] = out
        self.ids: list[str] = []
        seen: dict[str, dict] = {}
        for p in out:
            try:
                pid = point_id(p)
            except TypeError as e:
                raise ConfigError(f"grid point {p!r} is not JSON serialisable: {e}") from e
            if pid in seen:
                raise ConfigError(f"grid point {p!r} appears twice")
            seen[pid] = p
            self.ids.append(pid)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Grid:
        """From {"axes": {...}, "points": [...], "fixed": {...}} (each optional, at least one of the first two)."""
        unknown = set(d) - {"axes", "points", "fixed"}
        if unknown:
            raise ConfigError(f"grid has unknown keys {sorted(unknown)}; use axes, points, fixed")
        return cls(d.get("axes"), points=d.get("points"), fixed=d.get("fixed"))

    @property
    def varying(self) -> list[str]:
        """Names whose value differs between points, in first-seen order."""
        names: list[str] = []
        for p in self.points:
            names += [k for k in p if k not in names]
        return [k for k in names if len({canonical_json(p.get(k)) for p in self.points}) > 1]

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self):
        return iter(self.points)

    def __repr__(self) -> str:
        return f"Grid({len(self)} points, axes {list(self.axes)}, fixed {self.fixed})"


def read_records(path: Path) -> list[dict]:
    """Every whole JSON line of a sweep file (a torn last line is ignored)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _repair(path: Path) -> None:
    """Cut a torn last line (no trailing newline) so the next append starts on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


class _Writer:
    """Appends one record per call as a single write() on an O_APPEND descriptor, then fsyncs."""

    def __init__(self, path: Path) -> None:
        """Open `path` for appending; a results folder that cannot be made or written (under a file, no
        permission) is a ConfigError naming it, not a bare errno."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _repair(path)
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(
                f"results folder {path.parent} (--out): cannot write {path.name} there: {e.strerror or e}"
            ) from None

    def write(self, record: dict) -> None:
        data = (canonical_json(record) + "\n").encode()
        view = memoryview(data)
        while view:  # a regular-file write is whole in practice; loop anyway rather than trust it
            n = os.write(self.fd, view)
            view = view[n:]
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _call(objective: Objective, point: dict) -> tuple[dict | None, str | None, float]:
    """Run one point: (metrics, error, seconds). Exceptions become an error string, never propagate."""
    t0 = time.perf_counter()
    try:
        metrics = objective(dict(point))
        if not isinstance(metrics, Mapping):
            raise TypeError(f"objective returned {type(metrics).__name__}, expected a dict of metrics")
        metrics = json.loads(canonical_json(dict(metrics)))
        return metrics, None, time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - recorded in the results file, re-run with retry_errors
        tb = traceback.format_exc(limit=-3)
        return None, f"{type(e).__name__}: {e}\n{tb}", time.perf_counter() - t0


def _ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class SweepResults:
    """The latest record of every grid point that has one, in grid order."""

    records: list[dict]
    path: Path
    axes: list[str] = field(default_factory=list)
    backend: str = ""

    def to_rows(self) -> list[dict]:
        """Flat dicts: point values, metrics, point_id, seconds, error (None when it ran)."""
        return [
            {
                **r["point"],
                **(r.get("metrics") or {}),
                "point_id": r["point_id"],
                "seconds": r.get("seconds"),
                "error": r.get("error"),
            }
            for r in self.records
        ]

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.records if not r.get("error")]

    @property
    def errors(self) -> list[dict]:
        return [r for r in self.records if r.get("error")]

    def best(self, metric: str, mode: str = "max") -> dict:
        """The row (as to_rows) with the highest (mode="max") or lowest ("min") metric."""
        if mode not in MODES:
            raise ConfigError(f"mode must be 'max' or 'min', got {mode!r}")
        rows = [r for r in self.to_rows() if not r["error"] and isinstance(r.get(metric), (int, float))]
        if not rows:
            raise ConfigError(f"no finished point has a numeric metric {metric!r}")
        pick = max if mode == "max" else min
        return pick(rows, key=lambda r: r[metric])  # first in grid order on ties

    def table(
        self, metric: str | Sequence[str], by: Sequence[str] | None = None, agg: str = "mean", digits: int = 4
    ) -> str:
        """Markdown table: one row per distinct value of `by` (default: the varying axes except "seed" and
        "fold", REPLICATE_AXES), each metric aggregated over the rest ("mean" or "mean+-std", sample std), plus n
        and errors."""
        metrics = [metric] if isinstance(metric, str) else list(metric)
        if agg not in AGGS:
            raise ConfigError(f"agg must be 'mean' or 'mean+-std', got {agg!r}")
        by = [a for a in self.axes if a not in REPLICATE_AXES] if by is None else list(by)
        groups: dict[str, tuple[list, list[dict]]] = {}
        for r in self.to_rows():
            key = [r.get(a) for a in by]
            groups.setdefault(canonical_json(key), (key, []))[1].append(r)
        head = by + [f"{m} ({agg.replace('+-', ' +- ')})" for m in metrics] + ["n", "errors"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, rows in groups.values():
            done = [r for r in rows if not r["error"]]
            cells = [_fmt(v, digits) for v in key]
            for m in metrics:
                vals = [float(r[m]) for r in done if isinstance(r.get(m), (int, float))]
                if not vals:
                    cells.append("-")
                    continue
                mean = statistics.fmean(vals)
                if agg == "mean":
                    cells.append(_fmt(mean, digits))
                else:
                    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
                    cells.append(f"{_fmt(mean, digits)} +- {_fmt(std, digits)}")
            cells += [str(len(done)), str(len(rows) - len(done))]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _fmt(v: Any, digits: int) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}g}" if math.isfinite(v) else str(v)
    return json.dumps(v) if not isinstance(v, str) else v


class Sweep:
    """Run `objective` on every point of `grid`, appending results to `out_dir/<name>.jsonl`.

    backend: "serial", "ray" (ImportError if ray is missing) or "auto" (ray when importable).
    max_concurrent: Ray tasks in flight (default: as many as the cluster's CPUs allow).
    resources: per-point {"cpu": n, "gpu": n} for Ray's scheduler (the serial loop ignores it).
    """

    def __init__(
        self,
        name: str,
        objective: Objective,
        grid: Grid,
        out_dir: str | os.PathLike,
        *,
        backend: str = "auto",
        max_concurrent: int | None = None,
        resources: Mapping[str, float] | None = None,
        retry_errors: bool = False,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        ray_init: Mapping[str, Any] | None = None,
        reuse: Sequence[str | os.PathLike] = (),
    ) -> None:
        if not name or any(c in name for c in "/\\") or name.startswith("."):
            raise ConfigError(f"sweep name {name!r} must be a plain file name")
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if max_concurrent is not None and (
            isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1
        ):
            raise ConfigError(f"max_concurrent must be a whole number >= 1, got {max_concurrent!r}")
        if resources is not None and not isinstance(resources, Mapping):
            raise ConfigError(f"resources must be a mapping such as {{cpu: 1, gpu: 0}}, got {resources!r}")
        resources = dict(resources or {"cpu": 1})
        unknown = set(resources) - {"cpu", "gpu"}
        if unknown:
            raise ConfigError(f"resources may name cpu and gpu only, got {sorted(unknown)}")
        for k, v in resources.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"resources {k} must be a number >= 0, got {v!r}")
        self.name, self.objective, self.grid = name, objective, grid
        self.path = Path(out_dir) / f"{name}.jsonl"
        self.backend, self.max_concurrent, self.resources = backend, max_concurrent, resources
        self.retry_errors, self.progress, self.log = retry_errors, progress, log
        self.ray_init = dict(ray_init or {})
        self.reuse = [Path(p) for p in reuse]

    def _say(self, msg: str) -> None:
        if self.log:
            self.log(msg)

    def resolve_backend(self) -> str:
        if self.backend == "auto":
            return "ray" if _ray_available() else "serial"
        if self.backend == "ray" and not _ray_available():
            raise MissingDependencyError("ray", "sweep", "backend='ray'")
        return self.backend

    def pending(self) -> list[tuple[str, dict]]:
        """Grid points still to run: not in the file, or (with retry_errors) whose latest line is an error."""
        latest = {r.get("point_id"): r for r in read_records(self.path)}
        out = []
        for pid, p in zip(self.grid.ids, self.grid.points, strict=True):
            r = latest.get(pid)
            if r is None or (r.get("error") and self.retry_errors):
                out.append((pid, p))
        return out

    def results(self, backend: str = "") -> SweepResults:
        """What the file holds for this grid (the latest line of each point), without running anything."""
        latest = {r.get("point_id"): r for r in read_records(self.path)}
        recs = [latest[pid] for pid in self.grid.ids if pid in latest]
        return SweepResults(recs, self.path, self.grid.varying, backend)

    def import_reused(self) -> int:
        """Copy into this sweep's file the finished records of the `reuse` files whose point is one of this
        grid's and not yet done here (same point = same id, so the same settings ran). Returns how many."""
        if not self.reuse:
            return 0
        ids = set(self.grid.ids)
        have = {r.get("point_id") for r in read_records(self.path) if not r.get("error")}
        found = []
        for src in self.reuse:
            if not src.exists():
                raise ConfigError(f"sweep {self.name}: reuse file {src} does not exist")
            for r in read_records(src):
                pid = r.get("point_id")
                if r.get("error") or pid not in ids or pid in have or point_id(r.get("point", {})) != pid:
                    continue
                have.add(pid)
                found.append({**r, "reused_from": src.name})
        if found:
            writer = _Writer(self.path)
            try:
                for r in found:
                    writer.write(r)
            finally:
                writer.close()
        return len(found)

    def run(self) -> SweepResults:
        n = self.import_reused()
        if n:
            self._say(
                f"sweep {self.name}: {n} finished point(s) reused from {', '.join(map(str, self.reuse))}"
            )
        todo = self.pending()
        backend = self.resolve_backend()
        done = len(self.grid) - len(todo)
        self._say(
            f"sweep {self.name}: {len(self.grid)} points, {done} already in {self.path}, "
            f"{len(todo)} to run on {backend}"
            + (
                f" (ray not installed: {install_hint('ray', 'sweep')})"
                if self.backend == "auto" and backend == "serial"
                else ""
            )
        )
        if todo:
            writer = _Writer(self.path)
            bar = tqdm(
                total=len(todo), desc=f"sweep {self.name}", unit="pt", disable=None if self.progress else True
            )
            try:
                run = self._run_ray if backend == "ray" else self._run_serial
                run(todo, lambda pid, p, m, e, s: self._record(writer, bar, backend, pid, p, m, e, s))
            finally:
                bar.close()
                writer.close()
        res = self.results(backend)
        if res.errors:
            self._say(
                f"sweep {self.name}: {len(res.errors)} point(s) failed; re-run with --retry-errors (retry_errors=True) "
                "to run them again"
            )
        return res

    def _record(self, writer, bar, backend, pid, point, metrics, error, seconds) -> None:
        rec = {
            "point_id": pid,
            "point": point,
            "metrics": metrics,
            "seconds": round(seconds, 6),
            "backend": backend,
        }
        if error:
            rec["error"] = error
        writer.write(rec)
        bar.update(1)

    def _run_serial(self, todo, record) -> None:
        for pid, p in todo:
            metrics, error, seconds = _call(self.objective, p)
            record(pid, p, metrics, error, seconds)

    def _run_ray(self, todo, record) -> None:
        import ray

        started = not ray.is_initialized()
        tmp = None
        if started:
            # Ray's socket paths must stay short (< 108 bytes): a fresh folder directly under the temp dir.
            tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
            kwargs = {
                "include_dashboard": False,
                "log_to_driver": False,
                "_temp_dir": tmp,
                "configure_logging": False,
                **self.ray_init,
            }
            ray.init(**kwargs)
        try:
            task = ray.remote(_call).options(
                num_cpus=self.resources.get("cpu", 1), num_gpus=self.resources.get("gpu", 0), max_retries=0
            )
            cpus = ray.cluster_resources().get("CPU", 1)
            limit = self.max_concurrent or max(1, int(cpus // max(self.resources.get("cpu", 1), 1e-9)))
            objective_ref = ray.put(self.objective)
            queue, inflight = list(todo), {}
            while queue or inflight:
                while queue and len(inflight) < limit:
                    pid, p = queue.pop(0)
                    inflight[task.remote(objective_ref, p)] = (pid, p)
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    pid, p = inflight.pop(ref)
                    try:
                        metrics, error, seconds = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - the worker died (OOM, segfault): record it
                        metrics, error, seconds = None, f"{type(e).__name__}: {e}", 0.0
                    record(pid, p, metrics, error, seconds)
        finally:
            if started:
                ray.shutdown()
                if tmp:
                    import shutil

                    shutil.rmtree(tmp, ignore_errors=True)
