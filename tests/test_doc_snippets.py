"""Every ```python example of README.md and docs/*.md runs, as a user would copy it.

Each block is run by exec() in a fresh module namespace, in a temporary folder that mirrors the repo root (each
top-level entry linked there), so a snippet reads `bundles/` as shipped and the files it writes (`tiny.esq`) land
in the temporary folder, not in the repo. What a snippet takes from the prose around it is supplied here, in
CONTEXT, keyed by "file#n" (the n-th ```python block of the file, from 1): the files it names (`clip.wav`, generated
by `converters.data.synthetic` and `edge_ser.audio.wav.write_wav`) and the names it leaves to the reader (`y`,
`chunk`, `rec`, `capture()`, `show()`); the snippet's own text is never edited.

Convention: a block whose first line is `# needs: WHAT` needs what no test machine has (`# needs: microphone`,
a camera, a device; a full data set and the user's own model files). Such a block is not run: it is compiled, and
every name it imports from the repo's packages (edge_ser, converters) must exist (its module imported, the name
taken with getattr), as must every attribute it takes of those names (`tb.calibration_set`) and of the context
names of STATIC_TYPES (`rec.stream`), and every keyword it passes when calling them (`quantile=`). Every block,
marked or not, gets those checks.

Blocks that need an optional package (torch, tensorflow) skip with a reason when it is absent.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("edge_ser", "converters")
NEEDS = re.compile(r"^# needs: (\S.*)$")
STATIC_TYPES = {"rec": "edge_ser.recognizer:Recognizer", "session": "edge_ser.live.session:AudioSession"}
"""What the context names a snippet uses without defining stand for, for the attribute and keyword checks."""


def python_blocks() -> list[tuple[str, int, str]]:
    """(id "file#n", line of the block's first code line, code) of every ```python block of the docs."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for n, m in enumerate(re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M), start=1):
            line = text.count("\n", 0, m.start(1)) + 1
            found.append((f"{path.relative_to(ROOT)}#{n}", line, m.group(1)))
    return found


BLOCKS = python_blocks()


def needs(code: str) -> str | None:
    """What a block needs that no test has (its first line `# needs: WHAT`), or None for a block that runs."""
    m = NEEDS.match(code.splitlines()[0] if code.strip() else "")
    return m.group(1) if m else None


# -- static checks: the names a snippet takes from the repo exist -------------------------------------------------


def _import_name(module: str, name: str) -> Any:
    """`from module import name`: the attribute, or the submodule of that name."""
    mod = importlib.import_module(module)
    if hasattr(mod, name):
        return getattr(mod, name)
    try:
        return importlib.import_module(f"{module}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{module}.{name}":
            raise
        raise AttributeError(f"{module} has no {name!r}") from None


def _has(obj: Any, attr: str) -> bool:
    """Whether `obj` has `attr`; for a class, also an instance attribute its source assigns (`self.attr =`)."""
    if hasattr(obj, attr):
        return True
    if inspect.isclass(obj):
        for cls in obj.__mro__:
            try:
                source = inspect.getsource(cls)
            except (OSError, TypeError):
                continue
            if re.search(rf"\bself\.{re.escape(attr)}\b\s*(:[^=\n]*)?=", source):
                return True
    return False


def _check_keywords(func: Any, call: ast.Call, what: str) -> list[str]:
    """Problems with the keyword arguments of `call` to `func` (a name it does not take)."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    params = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return []
    return [
        f"{what}() takes no keyword {k.arg!r} (it takes {list(params)})"
        for k in call.keywords
        if k.arg is not None and k.arg not in params
    ]


def _imported(tree: ast.Module, problems: list[str]) -> dict[str, Any]:
    """The names a snippet binds by importing from edge_ser / converters (a missing one goes to `problems`),
    and the STATIC_TYPES context names."""
    bound: dict[str, Any] = {}
    for name, target in STATIC_TYPES.items():
        module, attr = target.split(":")
        bound[name] = getattr(importlib.import_module(module), attr)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] not in PACKAGES:
                    continue
                try:
                    mod = importlib.import_module(a.name)
                except ImportError as e:
                    problems.append(f"import {a.name}: {e}")
                    continue
                if a.asname:
                    bound[a.asname] = mod
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            for a in node.names:
                try:
                    bound[a.asname or a.name] = _import_name(node.module, a.name)
                except (ImportError, AttributeError) as e:
                    problems.append(f"from {node.module} import {a.name}: {e}")
    return bound


def static_problems(code: str) -> list[str]:
    """What a snippet names from edge_ser / converters that does not exist: imported names, attributes of them
    (and of the STATIC_TYPES context names), and keywords passed to them."""
    tree = ast.parse(code)
    problems: list[str] = []
    bound = _imported(tree, problems)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            if not _has(bound[node.value.id], node.attr):
                problems.append(f"{node.value.id}.{node.attr}: no such attribute")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in bound:
                problems += _check_keywords(bound[f.id], node, f.id)
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in bound:
                obj = getattr(bound[f.value.id], f.attr, None)
                if obj is not None:
                    problems += _check_keywords(obj, node, f"{f.value.id}.{f.attr}")
    return problems


# -- what the snippets take from their context ----------------------------------------------------------------


def _clip(sr: int, label: str = "happy", seconds: float = 2.0) -> np.ndarray:
    """One synthetic speech clip, float32 in [-1, 1], at `sr`."""
    from converters.data.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(n_per_class=1, sr=sr, duration=seconds, n_speakers=1, labels=(label,))
    return generate(spec)[0][0]


def _stereo_int16(y: np.ndarray) -> np.ndarray:
    """A mono float clip as 16-bit stereo frames [n, 2], as a capture callback gives them."""
    q = np.round(np.clip(y, -1, 1) * 32767).astype(np.int16)
    return np.stack([q, q], axis=1)


def _readme_1(tmp: Path) -> dict[str, Any]:
    """README's Python example: `clip.wav`, `y` (at 44.1 kHz) and one 48 kHz 16-bit stereo `chunk` of 5 s (longer than a window)."""
    from edge_ser.audio.wav import write_wav

    write_wav(tmp / "clip.wav", _clip(16000, "happy"), 16000)
    return {"y": _clip(44100, "sad"), "chunk": _stereo_int16(_clip(48000, "angry", 5.0))}


def _live_1(tmp: Path) -> dict[str, Any]:
    """docs/live.md's session: `rec`, a `capture()` of 20 ms chunks of 5 s of 48 kHz stereo, and `show()`."""
    from edge_ser import Recognizer

    frames = _stereo_int16(_clip(48000, "angry", 5.0))
    shown: list[tuple[str, float]] = []

    def capture():  # noqa: ANN202 - the reader's own capture loop
        for i in range(0, len(frames), 960):
            yield frames[i : i + 960]

    return {
        "rec": Recognizer("bundles/ser_ravdess"),
        "capture": capture,
        "show": lambda label, confidence: shown.append((label, confidence)),
        "shown": shown,
    }


def _tflite_2(tmp: Path) -> dict[str, Any]:
    """docs/tflite.md's export_tflite example: an untrained LaqMLP and AVCNN frozen at 4 bits (the `c` of
    `compress(...)`, the `av, codes` of `freeze(model, plan)`) and a few rows of their inputs."""
    pytest.importorskip("torch", reason="export_tflite needs torch")
    pytest.importorskip("tensorflow", reason="export_tflite needs tensorflow")
    import torch

    from converters.models.av_cnn import av_cnn
    from converters.models.laq_mlp import laq_mlp
    from converters.quant.bitplan import BitPlan
    from converters.quant.qat import freeze

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    mlp = laq_mlp(in_features=12, num_classes=4, hidden=(16,))
    mean, std = np.linspace(-1, 1, 12), np.full(12, 2.0)
    mlp.set_normalization(torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32))
    model, codes = freeze(mlp.eval(), BitPlan.uniform(mlp, 4))
    X = (mean + std * rng.standard_normal((40, 12))).astype(np.float32)
    av = av_cnn()
    av.set_normalization(torch.full((40,), -5.0), torch.full((40,), 10.0))
    av, av_codes = freeze(av.eval(), BitPlan.uniform(av, 4))
    return {
        "c": types.SimpleNamespace(model=model, codes=codes),
        "X_train": X[:30],
        "X_test": X[30:],
        "av": av,
        "codes": av_codes,
        "F_train": rng.random((8, 6, 64, 64), dtype=np.float32),
        "A_train": (-5.0 + 10.0 * rng.standard_normal((8, 6, 40))).astype(np.float32),
    }


CONTEXT: dict[str, Callable[[Path], dict[str, Any]]] = {
    "README.md#1": _readme_1,
    "docs/live.md#1": _live_1,
    "docs/tflite.md#2": _tflite_2,
}
"""Per snippet: given the folder it runs in, the names it uses without defining (files it reads written there)."""


def _after_readme_1(ns: dict[str, Any], out: str) -> None:
    assert len(out.splitlines()) >= 3  # the file's prediction, the array's label, then one line per result


def _after_input_kinds_1(ns: dict[str, Any], out: str) -> None:
    """The waveform kind works as a kind: manifest round trip and check, a window's input, combine."""
    from edge_ser.inputs.base import InputKind
    from edge_ser.schema import Checker

    kind = ns["KIND"](ns["WaveformSpec"]())
    assert isinstance(kind, InputKind)
    manifest = kind.manifest_blocks()
    assert ns["KIND"].from_manifest(manifest).spec == kind.spec
    ns["KIND"].check_manifest(Checker("manifest"), manifest, [{"name": "wave", "shape": ["batch", 32000]}])
    with pytest.raises(Exception, match="must take 'wave'"):
        ns["KIND"].check_manifest(
            Checker("manifest"), manifest, [{"name": "wave", "shape": ["batch", 16000]}]
        )
    assert kind.window_inputs(np.zeros(1000))["wave"].shape == (1, 32000)
    assert kind.combine(np.array([[0.0, 1.0]])).sum() == pytest.approx(1.0)
    assert kind.sample_rate == 16000 and kind.feature_spec.sample_rate == 16000


def _after_live_1(ns: dict[str, Any], out: str) -> None:
    assert ns["shown"], "the session gave no result on 5 s of speech"


def _after_packed_1(ns: dict[str, Any], out: str) -> None:
    from edge_ser.packed import read_esq

    assert read_esq("tiny.esq") is not None


def _after_tflite_2(ns: dict[str, Any], out: str) -> None:
    assert ns["m"].inputs == ("faces", "audio") and ns["m"].data
    assert ns["logits"].shape == (10, 4)


AFTER: dict[str, Callable[[dict[str, Any], str], None]] = {
    "README.md#1": _after_readme_1,
    "docs/input-kinds.md#1": _after_input_kinds_1,
    "docs/live.md#1": _after_live_1,
    "docs/packed-format.md#1": _after_packed_1,
    "docs/tflite.md#2": _after_tflite_2,
}
"""Per snippet: what its run must have done, beyond not raising."""


# -- the tests ------------------------------------------------------------------------------------------------


def test_the_docs_have_python_examples() -> None:
    """The extraction finds the blocks (a broken pattern would make every test below vacuous), the context
    names snippets that exist, and the marked blocks are the ones this machine cannot run."""
    ids = {b[0] for b in BLOCKS}
    assert len(BLOCKS) >= 7
    assert set(CONTEXT) <= ids and set(AFTER) <= ids
    assert {b[0] for b in BLOCKS if needs(b[2])} == {"README.md#2", "docs/tflite.md#1"}


@pytest.mark.parametrize(("block", "line", "code"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_snippet_names_exist(block: str, line: int, code: str) -> None:
    """Every block compiles, and what it names from edge_ser / converters exists (marked blocks included)."""
    compile(code, f"{block} (line {line})", "exec")
    if "converters.export" in code:
        pytest.importorskip("torch", reason="converters.export needs torch")
    assert static_problems(code) == []


@pytest.mark.parametrize(("block", "line", "code"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_snippet_runs(
    block: str, line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Every block without a `# needs:` line runs from (a mirror of) the repo root with its context supplied."""
    what = needs(code)
    if what:
        pytest.skip(f"needs {what}: compiled and its names checked only")
    for entry in ROOT.iterdir():
        if not entry.name.startswith("."):
            (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    module = types.ModuleType("doc_snippet_" + re.sub(r"\W", "_", block))
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look the module up
    module.__dict__.update(CONTEXT[block](tmp_path) if block in CONTEXT else {})
    capsys.readouterr()
    exec(compile(code, f"{block} (line {line})", "exec"), module.__dict__)  # noqa: S102 - the docs' own code
    if block in AFTER:
        AFTER[block](module.__dict__, capsys.readouterr().out)
