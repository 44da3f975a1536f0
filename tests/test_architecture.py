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
