"""scripts/wheelhouse.py without the network: target tags, pins, the missing-wheel error, lock and report."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("wheelhouse", REPO / "scripts" / "wheelhouse.py")
wh = importlib.util.module_from_spec(_spec)
sys.modules["wheelhouse"] = wh
_spec.loader.exec_module(wh)

NO_NUMPY = (
    "ERROR: Could not find a version that satisfies the requirement numpy==2.4.6 (from versions: 1.26.4, "
    "2.0.2, 2.2.6)\nERROR: No matching distribution found for numpy==2.4.6\n"
)


# ------------------------------------------------------------------------------------------ a fake pip

VALUED = {
    "--report",
    "--platform",
    "--python-version",
    "--implementation",
    "--abi",
    "--index-url",
    "--find-links",
    "-c",
    "-r",
    "-d",
    "-w",
}


def positional(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
        elif a in VALUED:
            skip = True
        elif not a.startswith("-"):
            out.append(a)
    return out


def opt(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


class FakePip:
    """Answers the pip calls wheelhouse.py makes, for a tiny index: numpy, tqdm (+ a local edge-ser wheel)."""

    def __init__(self, index: dict[str, tuple[str, list[str]]], fail: dict[str, str] | None = None):
        self.index = index  # name -> (version, deps)
        self.fail = fail or {}  # requirement text -> stderr, for the dry runs that name it
        self.calls: list[list[str]] = []

    @staticmethod
    def content(name: str, version: str) -> bytes:
        return f"{name}-{version}".encode()

    def wheel_name(self, name: str, version: str) -> str:
        return f"{name.replace('-', '_')}-{version}-cp311-cp311-manylinux_2_28_aarch64.whl"

    def __call__(self, args: list[str]) -> subprocess.CompletedProcess:
        self.calls.append(args)

        def ok(out: str = "") -> subprocess.CompletedProcess:
            return subprocess.CompletedProcess(args, 0, out, "")

        if args[0] == "--version":
            return ok("pip 26.3 from /x (python 3.11)\n")
        if args[0] == "wheel":
            dest = Path(opt(args, "-w"))
            dest.mkdir(parents=True, exist_ok=True)
            (dest / "edge_ser-0.1.0-py3-none-any.whl").write_bytes(b"edge-ser")
            return ok()
        if args[0] == "download":
            dest = Path(opt(args, "-d"))
            dest.mkdir(parents=True, exist_ok=True)
            for line in Path(opt(args, "-r")).read_text().splitlines():
                name, version = line.split()[0].split("==")
                (dest / self.wheel_name(name, version)).write_bytes(self.content(name, version))
            return ok()
        assert args[0] == "install" and "--dry-run" in args
        reqs = positional(args)
        for r in reqs:
            if r in self.fail and ("--no-deps" in args) == ("nodeps" in self.fail[r][:6]):
                return subprocess.CompletedProcess(args, 1, "", self.fail[r].removeprefix("nodeps"))
        if "--no-index" in args:
            return ok(json.dumps({"install": []}))
        names = {wh.split_req(r)[0] for r in reqs if not r.endswith(".whl")}
        if "--no-deps" not in args:
            names |= {wh.split_req(d)[0] for n in list(names) for d in self.index[n][1]}
        install = []
        for n in sorted(names):
            version, deps = self.index[n]
            url = f"https://files.example/{self.wheel_name(n, version)}"
            sha = hashlib.sha256(self.content(n, version)).hexdigest()
            install.append(
                {
                    "download_info": {"url": url, "archive_info": {"hashes": {"sha256": sha}}},
                    "requested": True,
                    "metadata": {"name": n, "version": version, "requires_dist": deps},
                }
            )
        for r in reqs:
            if r.endswith(".whl"):
                install.append(
                    {
                        "download_info": {"url": "file://" + r, "archive_info": {}},
                        "requested": True,
                        "metadata": {
                            "name": "edge-ser",
                            "version": "0.1.0",
                            "requires_dist": ["numpy>=2.0", "pytest; extra == 'test'"],
                        },
                    }
                )
        return ok(json.dumps({"install": install}))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "requirements").mkdir(parents=True)
    (root / "edge_ser").mkdir()
    (root / "edge_ser" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "edge-ser"\nversion = "0.1.0"\n'
        '[project.optional-dependencies]\ndevice = ["numpy>=2.0", "tqdm>=4.60"]\ntflite = ["ai-edge-litert>=1.0"]\n'
        '[tool.setuptools.packages.find]\ninclude = ["edge_ser*"]\n'
    )
    (root / "requirements" / "device.txt").write_text("# pins\nnumpy==2.4.6\ntqdm==4.70.1  # progress\n")
    (root / "requirements" / "main.txt").write_text("-r host.txt\nai-edge-litert==2.3.0\n")
    return root


INDEX = {"numpy": ("2.4.6", []), "tqdm": ("4.70.1", []), "ai-edge-litert": ("2.3.0", ["numpy>=1.23"])}


def run(project: Path, monkeypatch, fake: FakePip, *extra: str) -> int:
    monkeypatch.setattr(wh, "run_pip", fake)
    return wh.main(
        [
            "--target",
            "pi-bookworm",
            "--root",
            str(project),
            "--out",
            str(project / "wheelhouse" / "pi"),
            "--report-dir",
            str(project / "deploy" / "wheelhouse"),
            *extra,
        ]
    )


# --------------------------------------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("target", "py", "newest"),
    [("pi-bookworm", "3.11", 36), ("pi-trixie", "3.13", 41), ("jetpack6", "3.10", 35)],
)
def test_target_tags(target, py, newest):
    t = wh.TARGETS[target]
    tags = wh.platform_tags(t)
    assert t.python == py and t.abi == "cp" + py.replace(".", "")
    assert tags[0] == f"manylinux_2_{newest}_aarch64" and f"manylinux_2_{newest + 1}_aarch64" not in tags
    assert {f"manylinux_2_{m}_aarch64" for m in range(17, newest + 1)} <= set(tags)
    assert tags[-3:] == ["manylinux2014_aarch64", "linux_aarch64", "any"]
    assert not any("x86_64" in x or "manylinux_2_16" in x for x in tags)
    args = wh.pip_target_args(t)
    assert "--only-binary=:all:" in args
    assert args[args.index("--python-version") + 1] == py
    abis = [args[i + 1] for i, a in enumerate(args) if a == "--abi"]
    assert abis == [t.abi, "abi3", "none"]
    assert args.count("--platform") == len(tags)


def test_pip_env_ignores_machine_config(monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///opt/pypi/simple")
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca.crt")
    env = wh.pip_env()
    assert "PIP_FIND_LINKS" not in env and "PIP_EXTRA_INDEX_URL" not in env
    assert env["PIP_CERT"] == "/etc/ssl/certs/ca.crt"
    assert env["PIP_CONFIG_FILE"] == wh.os.devnull


# ------------------------------------------------------------------------------------------------ pins


def test_requirements_come_from_the_pin_files(project):
    reqs = {r.name: r for r in wh.load_requirements(project, ["device", "tflite"], [])}
    assert {n: r.spec for n, r in reqs.items()} == {
        "numpy": "==2.4.6",
        "tqdm": "==4.70.1",
        "ai-edge-litert": "==2.3.0",
    }
    assert reqs["numpy"].source == "requirements/device.txt"
    assert reqs["ai-edge-litert"].source == "requirements/main.txt"


def test_pin_override_keeps_the_original(project):
    reqs = {r.name: r for r in wh.load_requirements(project, ["device"], ["numpy==2.2.6"])}
    assert reqs["numpy"].spec == "==2.2.6" and reqs["numpy"].original == "==2.4.6"
    with pytest.raises(wh.WheelhouseError, match="NAME==VERSION"):
        wh.load_requirements(project, ["device"], ["numpy>=2"])
    with pytest.raises(wh.WheelhouseError, match="no extra 'gpu'"):
        wh.load_requirements(project, ["gpu"], [])


def test_the_repo_device_set_is_the_pinned_one():
    reqs = {wh.canonical(r.name): r.spec for r in wh.load_requirements(REPO, ["device"], [])}
    pins = wh.read_pins(REPO / "requirements" / "device.txt")
    assert reqs == pins
    assert not {"librosa", "numba", "torch", "tensorflow"} & set(reqs)


def test_allow_missing_needs_a_reason():
    assert wh.parse_allow_missing(["AI_Edge_LiteRT=no cp313 wheels"]) == {"ai-edge-litert": "no cp313 wheels"}
    with pytest.raises(wh.WheelhouseError, match="PKG=REASON"):
        wh.parse_allow_missing(["ai-edge-litert"])


# --------------------------------------------------------------------------------------- missing wheels


def test_parse_missing():
    miss = wh.parse_missing(NO_NUMPY)
    assert miss.requirement == "numpy==2.4.6" and miss.name == "numpy" and miss.available[-1] == "2.2.6"
    none = wh.parse_missing(
        "ERROR: Could not find a version that satisfies the requirement onnxruntime-gpu "
        "(from versions: none)\nERROR: No matching distribution found for onnxruntime-gpu\n"
    )
    assert none.available == []
    assert wh.parse_missing("ERROR: ResolutionImpossible") is None


def test_missing_wheel_is_named_not_a_backtrace(project, monkeypatch, capsys):
    fake = FakePip(INDEX, fail={"numpy==2.4.6": "nodeps" + NO_NUMPY})
    assert run(project, monkeypatch, fake) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "1 package(s) have no wheel for pi-bookworm" in err
    assert "numpy==2.4.6: no wheel of numpy==2.4.6 for cp311 / manylinux_2_36_aarch64" in err
    assert "--pin numpy==2.2.6" in err
    report = json.loads((project / "deploy" / "wheelhouse" / "pi-bookworm.json").read_text())
    assert report["status"] == "FAILED"
    by = {p["name"]: p for p in report["packages"]}
    assert by["numpy"]["status"] == "MISSING" and by["tqdm"]["status"] == "resolvable"
    assert not (project / "wheelhouse" / "pi" / "requirements.lock").exists()
    assert not any(c[0] == "download" for c in fake.calls)


def test_missing_dependency_names_the_dependency(project, monkeypatch, capsys):
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement numpy>=1.23 (from ai-edge-litert) "
        "(from versions: none)\nERROR: No matching distribution found for numpy>=1.23\n"
    )
    fake = FakePip(INDEX, fail={"ai-edge-litert==2.3.0": stderr})
    assert run(project, monkeypatch, fake, "--extras", "device,tflite") == 1
    err = capsys.readouterr().err
    assert "ai-edge-litert==2.3.0: needs numpy>=1.23, which has no wheel" in err
    assert "no version on the index has one" in err


def test_allowed_missing_is_recorded(project, monkeypatch):
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement ai-edge-litert==2.3.0 "
        "(from versions: none)\nERROR: No matching distribution found for ai-edge-litert==2.3.0\n"
    )
    fake = FakePip(INDEX, fail={"ai-edge-litert==2.3.0": "nodeps" + stderr})
    assert (
        run(
            project,
            monkeypatch,
            fake,
            "--extras",
            "device,tflite",
            "--allow-missing",
            "ai-edge-litert=optional backend; onnxruntime is used",
        )
        == 0
    )
    report = json.loads((project / "deploy" / "wheelhouse" / "pi-bookworm.json").read_text())
    assert report["status"] == "ok"
    assert report["allowed_missing"]["ai-edge-litert"].startswith(
        "optional backend; onnxruntime is used [no wheel"
    )
    md = (project / "deploy" / "wheelhouse" / "pi-bookworm.md").read_text()
    assert "**ALLOWED-MISSING**" in md and "## Allowed missing" in md
    lock = [
        ln
        for ln in (project / "wheelhouse" / "pi" / "requirements.lock").read_text().splitlines()
        if not ln.startswith("#")
    ]
    assert [ln.split("==")[0] for ln in lock] == ["edge-ser", "numpy", "tqdm"]


def test_other_pip_failures_show_pips_error_lines(project, monkeypatch, capsys):
    fake = FakePip(
        INDEX,
        fail={
            "tqdm==4.70.1": "nodepsERROR: Could not fetch URL https://pypi.org/simple: connection refused\n"
        },
    )
    assert run(project, monkeypatch, fake) == 2
    err = capsys.readouterr().err
    assert (
        "pip could not resolve tqdm==4.70.1" in err and "connection refused" in err and "Traceback" not in err
    )


# -------------------------------------------------------------------------------------- lock and report


LOCK_LINE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*==[^\s=]+ --hash=sha256:[0-9a-f]{64}$")


def test_full_build_writes_wheels_lock_and_report(project, monkeypatch):
    fake = FakePip(INDEX)
    out = project / "wheelhouse" / "pi"
    out.mkdir(parents=True)
    (out / "stale-1.0-py3-none-any.whl").write_bytes(b"old")
    assert run(project, monkeypatch, fake, "--extras", "device,tflite") == 0
    lock = (out / "requirements.lock").read_text().splitlines()
    body = [ln for ln in lock if not ln.startswith("#")]
    assert all(LOCK_LINE.match(ln) for ln in body), body
    assert [ln.split("==")[0] for ln in body] == ["ai-edge-litert", "edge-ser", "numpy", "tqdm"]
    # every lock line's hash is the file in OUT, and OUT holds exactly the locked wheels
    wheels = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("*.whl")}
    assert sorted(wheels.values()) == sorted(ln.rsplit(":", 1)[1] for ln in body)
    assert "stale-1.0-py3-none-any.whl" not in wheels
    # the lock is checked offline: --no-index --find-links OUT --require-hashes
    check = fake.calls[-1]
    assert "--no-index" in check and opt(check, "--find-links") == str(out) and "--require-hashes" in check
    # the edge-ser wheel was built from a copy, not in the checkout
    assert not (project / "build").exists() and not list(project.glob("*.egg-info"))
    # index.html links every wheel of the lock and nothing else (the stale wheel went)
    page = (out / "index.html").read_text()
    assert sorted(re.findall(r'<a href="([^"]+)">([^<]+)</a>', page)) == [(n, n) for n in sorted(wheels)]

    report = json.loads((project / "deploy" / "wheelhouse" / "pi-bookworm.json").read_text())
    assert report["status"] == "ok" and report["target"]["python"] == "3.11"
    by = {p["name"]: p for p in report["packages"]}
    assert by["edge-ser"]["kind"] == "project" and by["numpy"]["kind"] == "requested"
    assert by["numpy"]["tag"] == "cp311-cp311-manylinux_2_28_aarch64"
    assert by["numpy"]["size"] == len(b"numpy-2.4.6")
    assert by["numpy"]["required_by"] == ["ai-edge-litert", "edge-ser"]
    assert report["total_bytes"] == sum(p["size"] for p in report["packages"])
    md = (project / "deploy" / "wheelhouse" / "pi-bookworm.md").read_text()
    assert "| numpy | 2.4.6 | ok | `numpy-2.4.6-cp311-cp311-manylinux_2_28_aarch64.whl` |" in md
    assert "libportaudio2" in md and "--require-hashes" in md


def test_render_markdown_lists_missing_with_reason_and_overrides():
    report = {
        "target": {
            "name": "jetpack6",
            "description": "JetPack 6",
            "python": "3.10",
            "abi": "cp310",
            "glibc": "2.35",
            "arch": "aarch64",
            "platform_tags": ["manylinux_2_35_aarch64"],
        },
        "status": "ok",
        "error": None,
        "extras": ["device"],
        "index": wh.PYPI,
        "command": "x",
        "pip_version": "26.3",
        "generated": "now",
        "seconds": 3.0,
        "total_bytes": 2048,
        "lock": "l",
        "allowed_missing": {},
        "notes": ["onnxruntime-gpu comes from NVIDIA's Jetson index"],
        "packages": [
            wh.asdict(
                wh.Entry(
                    "numpy",
                    "2.2.6",
                    kind="requested",
                    wheel="numpy.whl",
                    tag="cp310-cp310-x",
                    size=2048,
                    sha256="ab" * 32,
                    pin="==2.2.6",
                    pin_source="--pin",
                    original_pin="==2.4.6",
                    original_pin_has_wheel=False,
                )
            ),
            wh.asdict(
                wh.Entry(
                    "onnxruntime",
                    status="MISSING",
                    kind="requested",
                    pin="==1.32.0",
                    reason="no wheel of onnxruntime==1.32.0 for cp310",
                )
            ),
        ],
    }
    md = wh.render_markdown(report)
    assert "| numpy | 2.2.6 | ok | `numpy.whl` | `cp310-cp310-x` | 2.0 KB |" in md
    assert "| onnxruntime | ==1.32.0 | **MISSING** | no wheel of onnxruntime==1.32.0 for cp310 |" in md
    assert "numpy: ==2.4.6 in the requirement files (has **no** wheel for this target) -> ==2.2.6 here" in md
    assert "NVIDIA's Jetson index" in md


def test_committed_reports_match_the_targets():
    """The committed reports (deploy/wheelhouse/) are for known targets and their locks resolved."""
    reports = sorted((REPO / "deploy" / "wheelhouse").glob("*.json"))
    if not reports:
        pytest.skip("no committed wheelhouse reports")
    for path in reports:
        report = json.loads(path.read_text())
        assert report["target"]["name"] == path.stem and path.stem in wh.TARGETS
        assert path.with_suffix(".md").is_file()
        for p in report["packages"]:
            assert p["status"] in ("ok", "MISSING", "ALLOWED-MISSING", "resolvable")
            if p["status"] == "ok":
                assert re.fullmatch(r"[0-9a-f]{64}", p["sha256"]) and p["wheel"].endswith(".whl")
                assert p["tag"].endswith(("aarch64", "any")) or "aarch64" in p["tag"]


@pytest.mark.parametrize(
    ("version", "ok"),
    [("22.3.1", False), ("23.0", False), ("23.2.1", False), ("23.3", True), ("23.3.2", True), ("24.0", True),
     ("26.3", True), ("not-a-version", False)],
)  # fmt: skip
def test_pip_older_than_23_3_is_refused_with_the_upgrade_command(monkeypatch, version, ok):
    """pip 23.2.1 fails the target resolution ("Can not use any platform or abi specific options unless
    installing via '--target'"), 23.3.2 works: the check asks for 23.3, not 23, and says how to upgrade."""
    monkeypatch.setattr(
        wh,
        "run_pip",
        lambda args: subprocess.CompletedProcess(args, 0, f"pip {version} from /x (python 3.11)\n", ""),
    )
    if ok:
        assert wh._pip_version() == version
        return
    with pytest.raises(wh.WheelhouseError) as ei:
        wh._pip_version()
    msg = str(ei.value)
    assert "needs pip >= 23.3" in msg and f"has pip {version}" in msg
    assert f"{sys.executable} -m pip install -U 'pip>=23.3'" in msg


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel pip accepts (metadata, WHEEL, RECORD)."""
    import zipfile

    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for n, text in files.items():
            z.writestr(n, text)
        z.writestr(f"{info}/RECORD", "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n")
    return path


def test_index_html_lists_every_wheel_and_sdist_and_escapes_names(tmp_path):
    out = tmp_path / "wh"
    out.mkdir()
    names = ["numpy-2.2.6-cp310-cp310-manylinux_2_17_aarch64.whl", "torch-2.5.0+cpu-cp311-none-any.whl",
             "tiny-1.0.tar.gz", "old-1.0.zip"]  # fmt: skip
    for n in names:
        (out / n).write_bytes(b"x")
    (out / "requirements.lock").write_text("")
    (out / "notes.txt").write_text("")
    page = wh.write_index(out, "edge-ser wheelhouse <pi>").read_text()
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', page)
    assert sorted(t for _, t in links) == sorted(names)  # every distribution, nothing else
    assert ("torch-2.5.0%2Bcpu-cp311-none-any.whl", "torch-2.5.0+cpu-cp311-none-any.whl") in links
    assert "<title>edge-ser wheelhouse &lt;pi&gt;</title>" in page and not list(out.glob(".*"))


def test_pip_finds_the_wheels_through_index_html_on_a_server_that_lists_no_folders(tmp_path):
    """Static hosting: a folder URL answers with its index.html or 404, never a listing. pip's --find-links
    with that URL (what `edge-ser firstboot --wheelhouse-url` runs on the device) finds the wheel through the
    index.html the wheelhouse writes, and finds nothing without it. Real pip, a local HTTP server."""
    import http.server
    import threading

    www = tmp_path / "www"
    folder = www / "wh" / "pi-trixie"
    folder.mkdir(parents=True)
    _wheel(folder, "demo_pkg", "1.0")

    class Static(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def list_directory(self, path):
            self.send_error(404, "no listing")
            return None

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Static)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/wh/pi-trixie/"

    def download() -> subprocess.CompletedProcess:
        dest = tmp_path / "got"
        shutil.rmtree(dest, ignore_errors=True)
        return subprocess.run([sys.executable, "-m", "pip", "download", "--no-index", "--find-links", url,
                               "--no-deps", "--no-cache-dir", "-d", str(dest), "demo_pkg==1.0"], capture_output=True,
                              text=True, env={**wh.pip_env(), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
                              timeout=120, check=False)  # fmt: skip

    try:
        r = download()
        assert r.returncode != 0 and "demo_pkg" in r.stderr  # no listing: pip sees no wheel
        wh.write_index(folder, "edge-ser wheelhouse pi-trixie")
        r = download()
        assert r.returncode == 0, r.stderr
        assert [p.name for p in (tmp_path / "got").iterdir()] == ["demo_pkg-1.0-py3-none-any.whl"]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_deploy_readme_builds_the_wheelhouses_as_wheelhouse_sh_does():
    """deploy/README.md's `scripts/wheelhouse.py --target T` commands left out the `--extras device,tflite` that
    scripts/wheelhouse.sh passes: following them gave a wheelhouse without TFLite and overwrote the committed
    deploy/wheelhouse/T reports with it. Every such command in the README names the script's extras and pins."""
    import re
    import shlex

    repo = Path(__file__).resolve().parents[1]
    sh = (repo / "scripts" / "wheelhouse.sh").read_text()
    extras = re.search(r"--extras (\S+)", sh).group(1)
    pins = {t: p.split() for t, p in re.findall(r'^\s*(\S+)\) echo "([^"]*)" ;;$', sh, re.M)}
    assert pins.get("jetpack6"), sh
    readme = (repo / "deploy" / "README.md").read_text()
    commands = re.findall(r"python scripts/wheelhouse\.py --target [^`\n]*", readme)
    assert len(commands) >= 4, commands
    for cmd in commands:
        words = shlex.split(cmd.replace("[", " ").replace("]", " "))
        target = words[words.index("--target") + 1]
        assert "--extras" in words and words[words.index("--extras") + 1] == extras, cmd
        for i in range(0, len(pins.get(target, [])), 2):
            assert " ".join(pins[target][i : i + 2]) in cmd, (cmd, pins[target])


def test_wheelhouse_sh_passes_each_target_its_pins(tmp_path):
    """scripts/wheelhouse.sh kept its per-target pins in an associative array (`declare -A`), which macOS's
    /bin/bash 3.2 lacks: there `${PINS[jetpack6]}` read as `${PINS[0]}`, empty, and jetpack6 was built without
    numpy==2.2.6 / onnxruntime==1.23.2. A case now; PYTHON is a stand-in that logs the arguments it gets."""
    import os

    repo = Path(__file__).resolve().parents[1]
    log = tmp_path / "args.log"
    py = tmp_path / "python"
    py.write_text(f'#!/bin/sh\nshift\necho "$*" >> {log}\n')
    py.chmod(0o755)
    r = subprocess.run(["bash", str(repo / "scripts" / "wheelhouse.sh"), "pi-bookworm", "jetpack6", "--", "--x", "y"],
                       env={**os.environ, "PYTHON": str(py)}, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert log.read_text().splitlines() == [
        "--target pi-bookworm --extras device,tflite --x y",
        "--target jetpack6 --extras device,tflite --pin numpy==2.2.6 --pin onnxruntime==1.23.2 --x y",
    ]
    assert not re.search(
        r"^\s*(declare|local|typeset) -A", (repo / "scripts" / "wheelhouse.sh").read_text(), re.M
    )
