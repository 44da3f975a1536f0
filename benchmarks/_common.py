"""Shared benchmark plumbing: single-thread pinning, interleaved timing, result files with their command, and
`run_main`, every script's entry point (an edge-ser error is one line on stderr, exit status 2)."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from edge_ser.errors import EdgeSerError  # numpy-free, as is fileio: safe before pin_single_thread()
from edge_ser.fileio import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"
SYNTHETIC_SUFFIX = "_synthetic"


def run_main(main: Callable[[], int | None]) -> NoReturn:
    """Run a benchmark's `main` and exit with its status (None = 0). An edge-ser error (EdgeSerError: a data set
    that is absent, a bad bundle) is the user's to fix, not a bug: it is printed as one line
    `<script>: error: <message>` on stderr, as argparse prints a usage error, and exits 2. Any other exception
    is a bug and keeps its full traceback. Our own warnings (a skipped file, a data set's) are one line each,
    `<script>: warning: ...`, as the CLI prints them (edge_ser.cli's format), not Python's with a source line."""
    import warnings

    from edge_ser.cli import short_warnings

    default, warnings.formatwarning = warnings.formatwarning, short_warnings(os.path.basename(sys.argv[0]))
    try:
        status = main()
    except EdgeSerError as e:
        print(f"{os.path.basename(sys.argv[0])}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        warnings.formatwarning = default
    raise SystemExit(status)


def parse_seeds(text: str) -> list[int]:
    """`--seed` "0" or "0,1,2": distinct non-negative training seeds, in the order given (si_table.py,
    ship_ser_nested.py)."""
    from edge_ser.errors import ConfigError

    try:
        seeds = [int(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seed {text}: give seeds as N or N,N,... (e.g. 0,1,2)") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seed {text}: seeds must be distinct and >= 0")
    return seeds


def require_datasets(*names: str) -> None:
    """Check, before any work, that each data set a run reads is under the default data root ($EDGE_SER_DATA,
    else ../shared/datasets beside the repo: `converters.data.default_data_root`): `find_dataset`'s DatasetError
    for the first that is not, saying what EDGE_SER_DATA should point to (`run_main` prints it as one line)."""
    from converters.data.loaders import find_dataset  # imported here: converters pulls in numpy

    for name in dict.fromkeys(names):
        find_dataset(name)


def folder_problem(path: Path) -> str | None:
    """Why `path` cannot be a results folder, or None: it is a file, or a file stands where one of its parents
    would be made. A script checks its output folder options with this before any work: write_results' mkdir
    refused them only after the run (a review: ship_ser.py --tables FILE trained stage 0, then a traceback)."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if p.is_dir():
                return None
            return "exists and is not a folder" if p == path else f"{p} is a file, not a folder"
    return None


def pin_single_thread() -> None:
    """Pin BLAS/OpenMP to one thread; must run before numpy is imported to take effect."""
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "NUMBA_NUM_THREADS",
    ):
        os.environ[var] = "1"


def interleaved(fns: dict[str, Callable[[], object]], *, repeats: int, inner: int) -> dict[str, list[float]]:
    """Time each callable `repeats` times in round-robin order (A B A B ...) so machine noise hits all alike.

    Each sample is the mean of `inner` back-to-back calls, in milliseconds.
    """
    for fn in fns.values():  # warm-up: caches, lazy imports, JIT
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - t0) * 1e3 / inner)
    return samples


def machine() -> dict[str, str]:
    """The machine and the versions of the libraries a result was made with (`versions`, since 2026-12-06: a
    nested run that did not reproduce here could not be traced to a library)."""
    from edge_ser.versions import HOST, library_versions

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": str(os.cpu_count()),
        "versions": ", ".join(f"{k} {v}" for k, v in library_versions(HOST).items()),
    }


def results_name(name: str, *, synthetic: bool) -> str:
    """The results file name of a run: `name` on the real data set, `<name>_synthetic` on the stand-in inputs a
    script falls back to without it, so such a run never replaces the committed table made on real data."""
    return name + SYNTHETIC_SUFFIX if synthetic else name


def trial_name(
    name: str, bundle: Path, engine: str, *, shipped: Path, engine_default: str = "onnxruntime"
) -> str:
    """The results name of a run of a script that measures one shipped bundle: `name` (its committed record) for
    `shipped` through `engine_default`, else `<name>_<bundle folder>` and/or `_<engine>`, so a trial on another
    bundle or engine never replaces the shipped model's record (a review: face_views.py --bundle on a trial
    copy wrote over benchmarks/results/face_views.md)."""
    if Path(bundle).resolve() != Path(shipped).resolve():
        name += "_" + Path(bundle).resolve().name.removesuffix(".tar")
    return name if engine == engine_default else f"{name}_{engine}"


def this_command() -> str:
    """The command line this script was run with, as a results file records it ("python benchmarks/x.py ...")."""
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:])


def write_results(
    name: str,
    payload: dict,
    markdown: str,
    *,
    indent: int | None = 2,
    synthetic: bool = False,
    folder: Path | None = None,
) -> tuple[Path, Path]:
    """Write `<name>.json` and `<name>.md` to benchmarks/results/ (or `folder`, made if absent: a run on the
    user's own recordings writes its tables there, not among the repository's), recording the command that
    made them.

    `indent=None` writes compact JSON (for tables with many per-fold matrices). `synthetic`: the inputs are a
    stand-in for an absent data set; the files are then `<name>_synthetic.*` (`results_name`), said on stdout."""
    if synthetic:
        synthetic_name = results_name(name, synthetic=True)
        print(
            f"the data set is absent and the inputs are synthetic: results go to {synthetic_name}.{{md,json}}, "
            f"not {name}.{{md,json}} (made on real data)"
        )
        name = synthetic_name
    folder = RESULTS if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    command = this_command()
    payload = {"command": command, "machine": machine(), **payload}
    jpath, mpath = folder / f"{name}.json", folder / f"{name}.md"
    for path, text in (
        (jpath, json.dumps(payload, indent=indent) + "\n"),
        (mpath, f"{markdown}\n\nMade by: `{command}`\n"),
    ):
        atomic_write(path, text)
    return jpath, mpath


def computed_records(*paths: Path) -> int:
    """Records of sweep JSONL files that a run computed (not those imported from another sweep with `reuse`,
    which carry `reused_from`)."""
    from converters.sweep import read_records  # imported here: converters pulls in numpy

    return sum(1 for p in paths for r in read_records(Path(p)) if "reused_from" not in r)


def resumed_seconds(
    name: str, elapsed: float, *, computed: int, resumed: int, folder: Path | None = None
) -> float:
    """The `seconds` a resumable sweep's results record: this run's wall time `elapsed` when it resumed nothing
    (`resumed`: records its sweep files held before it) or `<name>.json` was made by another command; else the
    time that file records, plus `elapsed` when this run `computed` records. A review: lms_search.py rerun with
    every point done wrote lms_sweep.json's seconds as 0.5, the resume's time, over the search's 1226."""
    path = (RESULTS if folder is None else Path(folder)) / f"{name}.json"
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return elapsed
    before = old.get("seconds") if isinstance(old, dict) and old.get("command") == this_command() else None
    if not resumed or not isinstance(before, (int, float)):
        return elapsed
    return before + (elapsed if computed else 0.0)


def write_replot(name: str, markdown: str, command: str, *, folder: Path | None = None) -> Path:
    """Write `<name>.md` again from a stored `<name>.json` (a script's `--replot`: no experiment is rerun, the
    JSON is left as it is). The "Made by" line keeps `command`, the run that made the figures, and a second
    line says which command re-rendered the Markdown, and on which date."""
    import datetime

    folder = RESULTS if folder is None else Path(folder)
    now = this_command()
    mpath = folder / f"{name}.md"
    atomic_write(
        mpath,
        f"{markdown}\n\nMade by: `{command}`\n\nRe-rendered from {name}.json (no rerun) by `{now}` on "
        f"{datetime.date.today().isoformat()}.\n",
    )
    return mpath


def doc_body(doc: str) -> str:
    """A benchmark module's docstring without its title and usage block (its first two paragraphs) and without
    its closing "Writes ..." line: the description its results file repeats above the table."""
    return doc.split("\n\n", 2)[2].split("\nWrites")[0].strip()
