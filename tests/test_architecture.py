"""The shape of the code, checked: imports point down (no cycles), the device package holds device code only,
and only the input kinds know what kind of input a bundle takes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("edge_ser", "converters", "edge_ser_deploy")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (REPO / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


MODULES = _modules()


def _imports(path: Path, module: str) -> set[str]:
    """Every module of ours that `path` imports, at the top or inside functions (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names]  # a submodule, else a name of `base`
        else:
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != module:
                found.add(t)
    return found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    """Every arrow points down, lazy imports inside functions included."""
    edges = {m: _imports(p, m) for m, p in MODULES.items()}
    assert _cycles(edges) == []


def test_the_device_package_imports_no_host_code() -> None:
    """edge_ser imports neither converters nor the workstation tools, not even inside a function."""
    bad = {
        m: sorted(t for t in _imports(p, m) if not t.startswith("edge_ser.") and t != "edge_ser")
        for m, p in MODULES.items()
        if m == "edge_ser" or m.startswith("edge_ser.")
    }
    assert {m: t for m, t in bad.items() if t} == {}


KIND_BRANCHES = [
    (re.compile(r"(?<!kind\.)\b(lms_input|av_input|face_crop)\b"), "a kind's manifest block read outside its kind"),
    (re.compile(r"isinstance\([^)]*\b(LMSSpec|AVInputSpec|FeatureSpec|VectorKind|PatchesKind|AVKind)\b"), "isinstance on a kind"),
    (re.compile(r"input_kind\.name\s*(==|!=|in)"), "a branch on the kind's name"),
    (re.compile(r"\"faces\"\s+(not\s+)?in\s+\S*input_names|input_names\s*==\s*\("), "a branch on the model's inputs"),
]  # fmt: skip
"""What a branch on the kind of a bundle looks like (edge_ser.inputs is where such branches belong)."""
KIND_HOME = ("edge_ser/inputs/", "edge_ser/bundle/manifest.py")


def test_only_the_input_kinds_branch_on_the_kind_of_a_bundle() -> None:
    """The bundle, predict, the live loop, the benchmarks, the exporter and the scripts ask the kind."""
    hits = []
    for folder in ("edge_ser", "converters", "edge_ser_deploy", "benchmarks", "scripts"):
        for p in sorted((REPO / folder).rglob("*.py")):
            rel = p.relative_to(REPO).as_posix()
            if rel.startswith(KIND_HOME):
                continue
            for i, line in enumerate(p.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                code = re.sub(r"(\"\"\"|''').*", "", code)
                for pattern, what in KIND_BRANCHES:
                    if pattern.search(code) and not _in_docstring(p, i):
                        hits.append(f"{rel}:{i}: {what}: {line.strip()}")
    assert hits == []


def _in_docstring(path: Path, line: int) -> bool:
    """Whether `line` of `path` lies inside a string literal (docstrings describe the kinds by name)."""
    tree = _TREES.setdefault(path, ast.parse(path.read_text()))
    return any(
        isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and n.lineno <= line <= (n.end_lineno or n.lineno)
        for n in ast.walk(tree)
    )


_TREES: dict[Path, ast.Module] = {}


# -- tests never assert elapsed wall-clock time ------------------------------------------------------------
_CLOCKS = {"monotonic", "perf_counter", "time", "process_time", "monotonic_ns", "perf_counter_ns", "time_ns"}
MIN_HANG_GUARD_S = 30.0
"""A deadline an assert checks must be a hang guard: at least this long, so a loaded machine never trips it."""


def _is_clock_call(node: ast.AST) -> bool:
    """`time.monotonic()`, `time.perf_counter()`, `time.time()`, ... or a bare `monotonic()`."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    if isinstance(f, ast.Attribute):
        return f.attr in _CLOCKS and isinstance(f.value, ast.Name) and f.value.id == "time"
    return isinstance(f, ast.Name) and f.id in _CLOCKS - {"time"}


def _has(node: ast.AST, pred) -> bool:
    return any(pred(n) for n in ast.walk(node))


class _ClockNames:
    """What a function's assignments make of the clock: stamps (`t0 = time.monotonic()`), durations
    (`elapsed = time.monotonic() - t0`) and short deadlines (`end = time.monotonic() + 5`)."""

    def __init__(self, fn: ast.AST) -> None:
        self.stamps: set[str] = set()
        self.durations: set[str] = set()
        self.short: set[str] = set()
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign):
                for tgt in node.targets:
                    if isinstance(tgt, ast.Name):
                        self._classify(tgt.id, node.value)
                    elif isinstance(tgt, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        for t, v in zip(tgt.elts, node.value.elts, strict=False):
                            if isinstance(t, ast.Name):  # returned, deadline = 0, time.monotonic() + 0.4
                                self._classify(t.id, v)

    def _classify(self, name: str, value: ast.AST) -> None:
        if _is_clock_call(value):
            self.stamps.add(name)
        elif isinstance(value, ast.BinOp) and _has(value, _is_clock_call):
            if isinstance(value.op, ast.Sub):
                self.durations.add(name)
            elif isinstance(value.op, ast.Add):
                addend = value.right if _is_clock_call(value.left) else value.left
                if isinstance(addend, ast.Constant) and isinstance(addend.value, (int, float)):
                    if addend.value < MIN_HANG_GUARD_S:
                        self.short.add(name)

    def is_clock(self, n: ast.AST) -> bool:
        return _is_clock_call(n) or (isinstance(n, ast.Name) and n.id in self.stamps)

    def is_duration(self, e: ast.AST) -> bool:
        if isinstance(e, ast.Name):
            return e.id in self.durations
        return isinstance(e, ast.BinOp) and isinstance(e.op, ast.Sub) and _has(e.left, self.is_clock)

    def bad_compare(self, cmp: ast.Compare) -> bool:
        """An upper bound (or equality) on a duration, or a check against a too-short deadline."""
        ops = [cmp.left, *cmp.comparators]
        for op, a, b in zip(cmp.ops, ops, ops[1:], strict=False):
            if isinstance(op, (ast.Lt, ast.LtE, ast.Eq)) and self.is_duration(a):
                return True
            if isinstance(op, (ast.Gt, ast.GtE, ast.Eq)) and self.is_duration(b):
                return True
            if any(isinstance(x, ast.Name) and x.id in self.short for x in (a, b)):
                return True
        return False


def timing_asserts(source: str) -> list[str]:
    """The asserts in `source` that bound elapsed wall-clock time from above (a measured duration compared as
    less than, at most, or equal to a number of seconds) or check a deadline shorter than a hang guard (a
    clock reading compared with "now plus a few seconds"); the snippets in the test below show each form.
    Lower bounds ("not before it is due") are allowed: a slow machine only makes them more true."""
    found = set()
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        names = _ClockNames(fn)
        for node in ast.walk(fn):
            if isinstance(node, ast.Assert) and any(
                isinstance(c, ast.Compare) and names.bad_compare(c) for c in ast.walk(node.test)
            ):
                found.add(f"line {node.lineno}: {ast.unparse(node)[:100]}")
    return sorted(found)


def test_the_timing_checker_catches_what_it_should() -> None:
    bad = [
        "def t():\n    t0 = time.monotonic()\n    run()\n    elapsed = time.monotonic() - t0\n"
        "    assert 0.98 <= elapsed <= 1.3, elapsed\n",
        "def t():\n    t_stop = time.monotonic()\n    stop()\n    assert time.monotonic() - t_stop < 0.5\n",
        "def t():\n    t0 = time.perf_counter()\n    run()\n    assert time.perf_counter() - t0 == pytest.approx(1)\n",
        "def t():\n    end = time.monotonic() + 5\n    while x():\n        assert time.monotonic() < end\n",
        "def t():\n    t0 = time.time()\n    run()\n    assert 2.0 > time.time() - t0\n",
    ]
    good = [
        "def t():\n    t0 = time.monotonic()\n    f = read()\n    assert time.monotonic() - t0 >= f.t - 0.01\n",
        "def t():\n    end = time.monotonic() + HANG_S\n    while x():\n        assert time.monotonic() < end\n",
        "def t():\n    end = time.monotonic() + 60\n    while x():\n        assert time.monotonic() < end, 'hang'\n",
        "def t():\n    t0 = time.perf_counter()\n    run()\n    print(time.perf_counter() - t0)\n",
        "def t():\n    assert abs(report['stream_seconds'] - 3.0) < 0.01\n",  # stream time, not the clock
    ]
    assert all(timing_asserts(src) for src in bad), [src for src in bad if not timing_asserts(src)]
    assert not any(timing_asserts(src) for src in good), [timing_asserts(src) for src in good]


def test_no_test_asserts_elapsed_wall_clock_time() -> None:
    """A loaded machine is slow: tests assert behaviour (order, counts, mode, "not before it is due") and use
    long deadlines only as hang guards; timings belong in benchmarks/."""
    bad = {}
    for path in sorted((REPO / "tests").glob("*.py")):
        hits = timing_asserts(path.read_text())
        if hits:
            bad[path.name] = hits
    assert bad == {}
