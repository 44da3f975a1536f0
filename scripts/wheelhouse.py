#!/usr/bin/env python3
"""Build an offline wheelhouse of the device runtime for a Raspberry Pi OS or JetPack target.

    python scripts/wheelhouse.py --target pi-bookworm [--out wheelhouse/pi-bookworm] [--extras device,tflite]

Every device dependency is fetched from PyPI as a binary wheel for the *target's* Python, ABI and aarch64
platform tags (``pip download --only-binary=:all: --platform ...``), never for the machine this runs on. Each
package is resolved on its own first, so one without a wheel for the target is named in a clear error
(exit code 1) instead of a pip backtrace; ``--allow-missing PKG=REASON`` lets an optional one be left out,
and the reason is recorded. Writes:

- the wheels, plus edge-ser itself built from this checkout (pure Python), in OUT (default wheelhouse/<target>);
- ``OUT/requirements.lock``: ``name==version --hash=sha256:...`` for every wheel, so the device installs with
  ``pip install --no-index --find-links OUT --require-hashes -r OUT/requirements.lock``;
- ``OUT/index.html``: a link to every wheel, the page pip reads when OUT is served over HTTP(S) and given to
  ``--find-links`` as a URL (``edge-ser firstboot --wheelhouse-url``) by a server that does not list folders;
- a report ``deploy/wheelhouse/<target>.md`` + ``.json``: per package the version, wheel file, size, platform
  tag and sha256, or MISSING with the reason.

The pins come from requirements/<extra>.txt (else any requirements/*.txt, else pyproject's specifier);
``--pin NAME==VERSION`` overrides one for this target (recorded in the report with whether the original pin
had a wheel). pip runs with the machine's pip configuration ignored (no local find-links or extra indexes):
the only index is ``--index-url`` (PyPI by default).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import html
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/simple"
LOCK_NAME = "requirements.lock"
INDEX_NAME = "index.html"
DISTRIBUTIONS = ("*.whl", "*.tar.gz", "*.zip")
"""What pip installs from a find-links page (wheels, sdists); index.html lists each file of these in OUT."""


class WheelhouseError(Exception):
    """A failure with a message meant for the user (no traceback)."""


class MissingWheels(WheelhouseError):
    """One or more required packages have no wheel for the target."""


# ----------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    python: str  # "3.11"
    glibc: tuple[int, int]  # the target OS's glibc: the newest manylinux_2_N it accepts
    arch: str = "aarch64"
    notes: tuple[str, ...] = ()

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")


COMMON_NOTES = (
    (
        "sounddevice's wheel is pure Python and loads PortAudio at import: install the system package "
        "`libportaudio2` (apt) on the device."
    ),
    "soundfile's aarch64 wheel bundles libsndfile; no system package is needed for it.",
    "librosa / numba / llvmlite are host-only (features are numpy-only on the device): never in this set.",
    "tflite-runtime has no wheels for newer Pythons; the `tflite` extra uses ai-edge-litert, its replacement.",
)

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("pi-bookworm", "Raspberry Pi OS Bookworm 64-bit (Debian 12)", "3.11", (2, 36)),
        Target("pi-trixie", "Raspberry Pi OS Trixie 64-bit (Debian 13)", "3.13", (2, 41)),
        Target(
            "jetpack6",
            "NVIDIA JetPack 6 (Ubuntu 22.04, L4T r36)",
            "3.10",
            (2, 35),
            notes=(
                (
                    "onnxruntime-gpu (CUDA / TensorRT execution providers) is not on PyPI for aarch64: it comes "
                    "from NVIDIA's Jetson wheel index (jetson-ai-lab, per JetPack / CUDA version) and is installed "
                    "on the device separately. The CPU `onnxruntime` wheel from PyPI in this wheelhouse is the "
                    "fallback that always works."
                ),
            ),
        ),
    )
}


def platform_tags(target: Target) -> list[str]:
    """Every platform tag a wheel may carry to install on the target, most specific first."""
    major, minor = target.glibc
    tags = [f"manylinux_{major}_{m}_{target.arch}" for m in range(minor, 16, -1)]
    tags += [f"manylinux2014_{target.arch}", f"linux_{target.arch}", "any"]
    return tags


def pip_target_args(target: Target) -> list[str]:
    """The pip options that make it pick wheels for the target instead of this machine."""
    args = ["--only-binary=:all:"]
    for tag in platform_tags(target):
        args += ["--platform", tag]
    args += ["--python-version", target.python, "--implementation", "cp"]
    for abi in (target.abi, "abi3", "none"):
        args += ["--abi", abi]
    return args


# ------------------------------------------------------------------------------------------ requirements


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;#]*)")


def split_req(line: str) -> tuple[str, str]:
    """'numpy>=2.0  # x' -> ('numpy', '>=2.0')."""
    m = _REQ.match(line)
    if not m:
        raise WheelhouseError(f"cannot parse requirement {line!r}")
    return m.group(1), m.group(3).strip()


@dataclass
class Req:
    name: str
    spec: str  # "==2.4.6" or ">=1.0"
    source: str  # where the pin came from
    extra: str
    original: str | None = None  # the pin that --pin replaced

    @property
    def line(self) -> str:
        return f"{self.name}{self.spec}"


def read_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, spec = split_req(line)
        if spec.startswith("=="):
            pins[canonical(name)] = spec
    return pins


def load_extras(pyproject: Path) -> dict[str, list[str]]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError as e:
            raise WheelhouseError("reading pyproject.toml needs Python 3.11+ (or `tomli` on 3.10)") from e
    data = tomllib.loads(pyproject.read_text())
    return data["project"].get("optional-dependencies", {})


def load_requirements(root: Path, extras: list[str], pins: list[str]) -> list[Req]:
    """The extras' packages, each pinned from requirements/<extra>.txt, else another requirements file."""
    declared = load_extras(root / "pyproject.toml")
    req_dir = root / "requirements"
    other_files = sorted(req_dir.glob("*.txt")) if req_dir.is_dir() else []
    reqs: dict[str, Req] = {}
    for extra in extras:
        if extra not in declared:
            raise WheelhouseError(
                f"pyproject.toml has no extra {extra!r} (has: {', '.join(sorted(declared))})"
            )
        own = req_dir / f"{extra}.txt"
        files = ([own] if own.is_file() else []) + [f for f in other_files if f != own]
        tables = [(f, read_pins(f)) for f in files]
        for item in declared[extra]:
            name, spec = split_req(item)
            if canonical(name) == "edge-ser" or canonical(name) in reqs:
                continue
            source = f"pyproject.toml [{extra}] (unpinned)"
            for f, table in tables:
                if canonical(name) in table:
                    spec, source = table[canonical(name)], str(f.relative_to(root))
                    break
            reqs[canonical(name)] = Req(name, spec, source, extra)
    for p in pins:
        name, spec = split_req(p)
        if not spec.startswith("=="):
            raise WheelhouseError(f"--pin needs NAME==VERSION, got {p!r}")
        key = canonical(name)
        if key in reqs:
            old = reqs[key]
            reqs[key] = Req(old.name, spec, "--pin", old.extra, original=old.spec)
        else:
            reqs[key] = Req(name, spec, "--pin", "(added)")
    return list(reqs.values())


def parse_allow_missing(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, reason = item.partition("=")
        if not sep or not reason.strip():
            raise WheelhouseError(
                f"--allow-missing needs PKG=REASON (the reason goes in the report), got {item!r}"
            )
        out[canonical(name.strip())] = reason.strip()
    return out


# ------------------------------------------------------------------------------------------------- pip


def pip_env() -> dict[str, str]:
    """The environment for pip: the machine's pip config files and index/find-links variables ignored."""
    keep = (
        "PIP_CERT",
        "PIP_CLIENT_CERT",
        "PIP_DEFAULT_TIMEOUT",
        "PIP_PROXY",
        "PIP_CACHE_DIR",
        "PIP_NO_CACHE_DIR",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in keep}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run_pip(args: list[str]) -> subprocess.CompletedProcess:
    """Run pip (the interpreter running this script). Tests replace this function."""
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=pip_env(), check=False
    )


def pip_errors(stderr: str, limit: int = 6) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip().startswith("ERROR")]
    if not lines:
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()][-limit:]
    return "\n    ".join(lines[:limit])


_NO_MATCH = re.compile(r"No matching distribution found for ([^\s]+)")
_VERSIONS = re.compile(r"satisfies the requirement ([^\s]+).*?\(from versions: ([^)]*)\)")


@dataclass
class Missing:
    requirement: str  # the requirement pip could not satisfy (may be a dependency of the package asked for)
    available: list[str]  # versions that do have a wheel for the target

    @property
    def name(self) -> str:
        return split_req(self.requirement)[0]


def parse_missing(stderr: str) -> Missing | None:
    """pip's 'no matching distribution' error -> which requirement, and which versions would have fitted."""
    m = _NO_MATCH.search(stderr)
    if not m:
        return None
    available: list[str] = []
    v = _VERSIONS.search(stderr)
    if v and v.group(2).strip() != "none":
        available = [s.strip() for s in v.group(2).split(",") if s.strip()]
    return Missing(m.group(1), available)


def dry_run(
    target: Target,
    index: str,
    requirements: list[str],
    *,
    no_deps: bool = False,
    constraints: Path | None = None,
    find_links: Path | None = None,
) -> tuple[dict | None, str]:
    """`pip install --dry-run --report`: what pip would install on the target; (report or None, stderr)."""
    args = [
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--report",
        "-",
        *pip_target_args(target),
    ]
    args += ["--no-index", "--find-links", str(find_links)] if find_links else ["--index-url", index]
    if no_deps:
        args.append("--no-deps")
    if constraints:
        args += ["-c", str(constraints)]
    args += requirements
    proc = run_pip(args)
    if proc.returncode != 0:
        return None, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def target_label(target: Target) -> str:
    return f"{target.abi} / manylinux_{target.glibc[0]}_{target.glibc[1]}_{target.arch}"


def missing_reason(req: Req, miss: Missing, target: Target) -> str:
    if canonical(miss.name) == canonical(req.name):
        why = f"no wheel of {miss.requirement} for {target_label(target)}"
    else:
        why = f"needs {miss.requirement}, which has no wheel for {target_label(target)}"
    if miss.available:
        why += f" (newest that has one: {miss.available[-1]}; e.g. --pin {miss.name}=={miss.available[-1]})"
    else:
        why += " (no version on the index has one)"
    return why


# ------------------------------------------------------------------------------------------- resolution


@dataclass
class Entry:
    name: str
    version: str | None = None
    status: str = "ok"  # ok | MISSING | ALLOWED-MISSING
    kind: str = "dependency"  # requested | dependency | project
    required_by: list[str] = field(default_factory=list)
    wheel: str | None = None
    tag: str | None = None
    size: int | None = None
    sha256: str | None = None
    url: str | None = None
    reason: str | None = None
    pin: str | None = None
    pin_source: str | None = None
    original_pin: str | None = None
    original_pin_has_wheel: bool | None = None


def wheel_tag(filename: str) -> str:
    parts = filename[: -len(".whl")].split("-")
    return "-".join(parts[-3:])


def check_requirements(
    target: Target, index: str, reqs: list[Req], allow: dict[str, str], workers: int = 4
) -> tuple[list[Req], list[Entry]]:
    """Resolve each package alone (then with its dependencies): which ones can go in, and why not."""

    def alone(r: Req) -> tuple[Req, Missing | None, str]:
        rep, err = dry_run(target, index, [r.line], no_deps=True)
        if rep is not None:
            return r, None, ""
        return r, parse_missing(err), err

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        first = list(pool.map(alone, reqs))
    failed: list[tuple[Req, Missing | None, str]] = [x for x in first if x[1] is not None or x[2]]
    ok = [r for r, miss, err in first if miss is None and not err]

    # with dependencies, every pin that has a wheel as a constraint: catches a dependency without a wheel
    with tempfile.TemporaryDirectory() as tmp:
        cons = Path(tmp) / "constraints.txt"
        cons.write_text("".join(f"{r.line}\n" for r in ok if r.spec.startswith("==")))

        def with_deps(r: Req) -> tuple[Req, Missing | None, str]:
            rep, err = dry_run(target, index, [r.line], constraints=cons)
            if rep is not None:
                return r, None, ""
            return r, parse_missing(err), err

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            second = list(pool.map(with_deps, ok))
    failed += [x for x in second if x[1] is not None or x[2]]
    good = [r for r, miss, err in second if miss is None and not err]

    entries: list[Entry] = []
    problems: list[str] = []
    for r, miss, err in failed:
        if miss is None:  # not a missing wheel: a conflict, a network error... show pip's own words
            raise WheelhouseError(f"pip could not resolve {r.line} for {target.name}:\n    {pip_errors(err)}")
        reason = missing_reason(r, miss, target)
        e = Entry(r.name, status="MISSING", kind="requested", reason=reason, pin=r.spec, pin_source=r.source)
        if canonical(r.name) in allow:
            e.status = "ALLOWED-MISSING"
            e.reason = f"{allow[canonical(r.name)]} [{reason}]"
        else:
            problems.append(f"  {r.line}: {reason}")
        entries.append(e)
    if problems:
        err = MissingWheels(
            f"{len(problems)} package(s) have no wheel for {target.name} ({target.description}, "
            f"Python {target.python}, {target_label(target)}):\n"
            + "\n".join(problems)
            + "\nPin a version that has one (--pin NAME==VERSION) or, if optional, --allow-missing NAME=REASON."
        )
        err.entries = entries + [  # type: ignore[attr-defined]
            Entry(
                r.name,
                r.spec.lstrip("="),
                status="resolvable",
                kind="requested",
                pin=r.spec,
                pin_source=r.source,
                reason="has a wheel; not fetched because the build failed",
            )
            for r in good
        ]
        raise err
    return good, entries


def required_by(install: list[dict]) -> dict[str, list[str]]:
    """child -> parents, from each package's Requires-Dist (markers other than extras not evaluated)."""
    names = {canonical(i["metadata"]["name"]): i["metadata"]["name"] for i in install}
    parents: dict[str, list[str]] = {k: [] for k in names}
    for i in install:
        for dep in i["metadata"].get("requires_dist", []) or []:
            if re.search(r"\bextra\s*==", dep):
                continue
            child = canonical(split_req(dep)[0])
            if child in parents and i["metadata"]["name"] not in parents[child]:
                parents[child].append(i["metadata"]["name"])
    return parents


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


DEVICE_PACKAGE = "edge_ser"
"""The one package of the device wheel: the host side (converters) and the workstation tools (edge_ser_deploy)
stay on the workstation, and so do their `edge_ser.commands` entry points."""
DEVICE_EXTRAS = ("device", "tflite")
PROFILES_IN_WHEEL = "profiles/firmware"
"""Where the device wheel carries firmware_profiles/*.yaml inside edge_ser (edge_ser.profiles.profile_dirs)."""


def _toml(value: object) -> str:
    """A TOML value for the strings and lists of strings a pyproject needs (JSON's quoting is TOML's)."""
    return json.dumps(value)


def device_pyproject(meta: dict) -> str:
    """The device wheel's pyproject.toml, from the checkout's: the same name, version, core dependencies,
    device extras and `edge-ser` script, with `edge_ser` as the only package and no command plug-ins."""
    proj = meta["project"]
    extras = proj.get("optional-dependencies", {})
    lines = [
        "[build-system]",
        f"requires = {_toml(meta.get('build-system', {}).get('requires', ['setuptools>=77']))}",
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        *(
            f"{k} = {_toml(proj[k])}"
            for k in ("name", "version", "description", "readme", "requires-python", "license")
            if k in proj
        ),
        f"dependencies = {_toml(proj.get('dependencies', []))}",
        "",
        "[project.optional-dependencies]",
        *(f"{k} = {_toml(extras[k])}" for k in DEVICE_EXTRAS if k in extras),
        "",
        "[project.scripts]",
        *(f"{k} = {_toml(v)}" for k, v in proj.get("scripts", {}).items()),
        "",
        "[tool.setuptools.packages.find]",
        f"include = {_toml([DEVICE_PACKAGE, DEVICE_PACKAGE + '.*'])}",
        "",
        "[tool.setuptools.package-data]",
        f'"{DEVICE_PACKAGE}.profiles" = {_toml([PROFILES_IN_WHEEL.split("/", 1)[1] + "/*.yaml"])}',
        f'"{DEVICE_PACKAGE}" = {_toml(["py.typed"])}',  # PEP 561: the type hints reach the users' checkers
    ]
    return "\n".join(lines) + "\n"


def project_source(root: Path, dest: Path) -> Path:
    """What the device wheel is built from, in a folder of its own (so build/ and *.egg-info land there, not in
    the checkout): the device package, the firmware profiles inside it, the README and a device pyproject."""
    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib  # type: ignore[no-redef]
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    dest.mkdir(parents=True)
    for name in ("README.md", "LICENSE"):
        if (root / name).is_file():
            shutil.copy2(root / name, dest / name)
    shutil.copytree(root / DEVICE_PACKAGE, dest / DEVICE_PACKAGE, ignore=skip)
    profiles = sorted((root / "firmware_profiles").glob("*.yaml"))
    if profiles:
        target = dest / DEVICE_PACKAGE / PROFILES_IN_WHEEL
        target.mkdir(parents=True, exist_ok=True)  # a checkout links it to firmware_profiles/
        for f in profiles:
            shutil.copy2(f, target / f.name)
    (dest / "pyproject.toml").write_text(device_pyproject(meta))
    return dest


def _local_setuptools_ok() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


def build_project_wheel(root: Path, dest: Path, index: str) -> Path:
    """The device's edge-ser wheel (pure Python, no dependencies bundled): `edge_ser` only, built from a copy
    of the source (`project_source`)."""
    src = project_source(root, dest.parent / "project-src")
    # the local setuptools builds it when it is new enough (no index needed), else pip fetches one
    isolation = [] if _local_setuptools_ok() else ["--index-url", index]
    proc = run_pip(["wheel", "--no-deps", "--quiet", *(["--no-build-isolation"] if not isolation else isolation),
                    "-w", str(dest), str(src)])  # fmt: skip
    if proc.returncode != 0:
        raise WheelhouseError(f"building the edge-ser wheel failed:\n    {pip_errors(proc.stderr)}")
    wheels = sorted(dest.glob("edge_ser-*.whl"))
    if not wheels:
        raise WheelhouseError(f"pip wheel built no edge_ser-*.whl in {dest}")
    if not wheels[-1].name.endswith("-py3-none-any.whl"):
        raise WheelhouseError(f"the edge-ser wheel is not pure Python: {wheels[-1].name}")
    return wheels[-1]


def render_lock(entries: list[Entry], target: Target, command: str) -> str:
    lines = [
        (
            f"# edge-ser wheelhouse lock for {target.name}: {target.description}, "
            f"Python {target.python}, {target_label(target)}"
        ),
        f"# generated by: {command}",
        (
            "# install offline: pip install --no-index --find-links <this folder> --require-hashes "
            f"-r {LOCK_NAME}"
        ),
    ]
    for e in sorted((e for e in entries if e.status == "ok"), key=lambda e: canonical(e.name)):
        lines.append(f"{canonical(e.name)}=={e.version} --hash=sha256:{e.sha256}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- report


def human(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def render_markdown(report: dict) -> str:
    t = report["target"]
    ok = [e for e in report["packages"] if e["status"] == "ok"]
    out = [
        f"# Wheelhouse: {t['name']}",
        "",
        f"{t['description']}: Python {t['python']} (`{t['abi']}`), glibc {t['glibc']}, {t['arch']}.",
        "",
        f"- Status: **{report['status']}**" + (f" ({report['error']})" if report.get("error") else ""),
        f"- Extras: {', '.join(report['extras'])}; index: {report['index']}",
        (
            f"- Generated {report['generated']} by `{report['command']}` (pip {report['pip_version']}, "
            f"{report['seconds']:.0f} s)"
        ),
        f"- {len(ok)} wheels, {human(report['total_bytes'])} in total; lock: `{report['lock']}`"
        if report["status"] == "ok"
        else f"- {len(ok)} wheels resolved; no lock written",
        f"- Platform tags accepted: {', '.join('`' + p + '`' for p in t['platform_tags'])}",
        "",
        "| package | version | status | wheel | tag | size | sha256 | pinned by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {"project": 0, "requested": 1, "dependency": 2}
    for e in sorted(report["packages"], key=lambda e: (order.get(e["kind"], 3), canonical(e["name"]))):
        pinned = e.get("pin_source") or (
            "dependency of " + ", ".join(e["required_by"]) if e["required_by"] else ""
        )
        if e["status"] == "ok":
            out.append(
                f"| {e['name']} | {e['version']} | ok | `{e['wheel']}` | `{e['tag']}` | {human(e['size'])} "
                f"| `{e['sha256'][:16]}…` | {pinned} |"
            )
        else:
            bold = e["status"] if e["status"] == "resolvable" else f"**{e['status']}**"
            out.append(f"| {e['name']} | {e.get('pin') or ''} | {bold} | {e['reason']} | | | | {pinned} |")
    overrides = [e for e in report["packages"] if e.get("original_pin")]
    if overrides:
        out += ["", "## Pins overridden for this target", ""]
        for e in overrides:
            had = {True: "has a wheel", False: "has **no** wheel", None: "not checked"}[
                e.get("original_pin_has_wheel")
            ]
            out.append(
                f"- {e['name']}: {e['original_pin']} in the requirement files ({had} for this target) "
                f"-> {e['pin']} here"
            )
    if report.get("allowed_missing"):
        out += ["", "## Allowed missing", ""]
        out += [f"- {k}: {v}" for k, v in report["allowed_missing"].items()]
    out += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    if report["status"] == "ok":
        out += [
            "",
            "Full hashes: the `.json` beside this file. Install on the device:",
            "",
            "```",
            (
                f"pip install --no-index --find-links wheelhouse/{t['name']} --require-hashes "
                f"-r wheelhouse/{t['name']}/{LOCK_NAME}"
            ),
            "```",
        ]
    return "\n".join(out) + "\n"


def write_report(report: dict, report_dir: Path) -> tuple[Path, Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    name = report["target"]["name"]
    js, md = report_dir / f"{name}.json", report_dir / f"{name}.md"
    js.write_text(json.dumps(report, indent=2) + "\n")
    md.write_text(render_markdown(report))
    return js, md


# ------------------------------------------------------------------------------------------------ main


MIN_PIP = (23, 3)
"""The oldest pip that resolves for another platform: `install --dry-run --report` with `--platform` / `--abi`
(pip 23.0-23.2 refuse them: "Can not use any platform or abi specific options unless installing via
'--target'"; 23.2.1 fails, 23.3.2 works)."""


def _pip_version() -> str:
    """The version of the pip that builds; WheelhouseError below MIN_PIP, with the upgrade command."""
    pip_version = run_pip(["--version"]).stdout.split()[1:2] or ["?"]
    parts = re.match(r"(\d+)(?:\.(\d+))?", pip_version[0])
    have = (int(parts.group(1)), int(parts.group(2) or 0)) if parts else None
    if have is None or have < MIN_PIP:
        need = ".".join(map(str, MIN_PIP))
        raise WheelhouseError(
            f"needs pip >= {need} (`install --dry-run --report` with --platform / --abi; older pip refuses "
            f"them without --target); {sys.executable} has pip {pip_version[0]}: upgrade it with "
            f"`{sys.executable} -m pip install -U 'pip>={need}'`"
        )
    return pip_version[0]


def _new_report(target: Target, extras: list[str], index: str, command: str, pip_version: str) -> dict:
    """The report before anything is resolved: the target, extras, index, command and pip; status ok."""
    report = {
        "schema": 1,
        "target": {
            **asdict(target),
            "abi": target.abi,
            "glibc": f"{target.glibc[0]}.{target.glibc[1]}",
            "platform_tags": platform_tags(target),
        },
        "extras": extras,
        "index": index,
        "command": command,
        "pip_version": pip_version,
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "status": "ok",
        "error": None,
        "allowed_missing": {},
        "notes": list(COMMON_NOTES) + list(target.notes),
        "lock": None,
        "total_bytes": 0,
        "seconds": 0.0,
        "packages": [],
    }
    report["target"].pop("notes", None)
    return report


def _original_pins(target: Target, index: str, reqs: list[Req]) -> dict[str, tuple[str, bool]]:
    """For each pin replaced with --pin: the original pin and whether it has a wheel for the target."""
    originals = {}
    for r in reqs:
        if r.original:
            rep, _ = dry_run(target, index, [f"{r.name}{r.original}"], no_deps=True)
            originals[canonical(r.name)] = (r.original, rep is not None)
    return originals


def _resolved_entries(install: list[dict], good: list[Req], project: Path | None) -> list[Entry]:
    """An Entry per wheel of pip's joint resolution, with its parents, pin and the index's sha256."""
    parents = required_by(install)
    pins = {canonical(r.name): r for r in good}
    entries = []
    for item in install:
        md = item["metadata"]
        key = canonical(md["name"])
        url = item["download_info"]["url"]
        e = Entry(
            md["name"],
            md["version"],
            wheel=url.rsplit("/", 1)[-1],
            url=url,
            required_by=parents.get(key, []),
        )
        e.tag = wheel_tag(e.wheel)
        if project is not None and key == "edge-ser":
            e.kind, e.url, e.pin_source = "project", None, "built from this checkout"
        else:
            e.sha256 = item["download_info"].get("archive_info", {}).get("hashes", {}).get("sha256")
            if not e.sha256:
                raise WheelhouseError(f"the index gave no sha256 for {e.wheel}")
            if key in pins:
                e.kind, e.pin, e.pin_source = "requested", pins[key].spec, pins[key].source
        entries.append(e)
    return entries


def _write_fetch_list(entries: list[Entry], path: Path) -> Path:
    """Write the list of wheels to download: each index wheel pinned to its version and sha256."""
    path.write_text(
        "".join(
            f"{canonical(e.name)}=={e.version} --hash=sha256:{e.sha256}\n"
            for e in entries
            if e.status == "ok" and e.kind != "project"
        )
    )
    return path


def _pip_download(target: Target, index: str, fetch: Path, out: Path) -> None:
    """Download exactly the wheels in `fetch` for the target into `out`; WheelhouseError if pip fails."""
    proc = run_pip(
        [
            "download",
            "--no-deps",
            "--require-hashes",
            "--quiet",
            "-d",
            str(out),
            "--index-url",
            index,
            *pip_target_args(target),
            "-r",
            str(fetch),
        ]
    )
    if proc.returncode != 0:
        raise WheelhouseError(f"pip download failed for {target.name}:\n    {pip_errors(proc.stderr)}")


def _check_downloads(entries: list[Entry], out: Path) -> None:
    """Check each wheel in `out` against the index's sha256 and record its sha256 and size in its Entry."""
    for e in entries:
        if e.status != "ok":
            continue
        path = out / e.wheel
        if not path.is_file():
            raise WheelhouseError(f"{e.wheel} is not in {out} after the download")
        digest = sha256_of(path)
        if e.sha256 and digest != e.sha256:
            raise WheelhouseError(f"{e.wheel}: sha256 {digest} does not match the index's {e.sha256}")
        e.sha256, e.size = digest, path.stat().st_size


def _remove_stale_wheels(out: Path, keep: set[str]) -> None:
    """Delete the wheels in `out` left from an earlier build, so the folder holds this resolution alone."""
    for stale in sorted(out.glob("*.whl")):
        if stale.name not in keep:
            print(f"wheelhouse: removing {stale.name} (not in this resolution)", file=sys.stderr)
            stale.unlink()


def write_index(out: Path, title: str) -> Path:
    """OUT/index.html: one `<a href="FILE">FILE</a>` per wheel and sdist in OUT.

    A device given the wheelhouse as a URL (`edge-ser firstboot --wheelhouse-url`) runs `pip install --no-index
    --find-links URL`, and pip reads a find-links URL as an HTML page of links. A server that lists folders
    answers with such a page; static hosting (object storage, GitHub Pages, nginx without autoindex) serves
    the folder's index.html, or nothing: this file is that page. The links are relative, so the folder can be
    served from any address."""
    names = sorted({p.name for pattern in DISTRIBUTIONS for p in out.glob(pattern) if p.is_file()})
    lines = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head><body>',
        *(f'<a href="{html.escape(quote(n), quote=True)}">{html.escape(n)}</a><br>' for n in names),
        "</body></html>",
    ]
    path = out / INDEX_NAME
    tmp = out / f".{INDEX_NAME}.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _display_path(path: Path, root: Path) -> str:
    """`path` relative to the checkout when it is inside it, else absolute: how the report names the lock."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def build(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    target = TARGETS[args.target]
    root = Path(args.root).resolve()
    out = Path(args.out or root / "wheelhouse" / target.name).resolve()
    report_dir = Path(args.report_dir or root / "deploy" / "wheelhouse")
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    allow = parse_allow_missing(args.allow_missing)
    reqs = load_requirements(root, extras, args.pin)
    unknown = set(allow) - {canonical(r.name) for r in reqs}
    if unknown:
        print(
            f"wheelhouse: --allow-missing names packages not in the set: {', '.join(sorted(unknown))}",
            file=sys.stderr,
        )
    command = shlex.join(["python", "scripts/wheelhouse.py", *args.argv])
    pip_version = _pip_version()
    report = _new_report(target, extras, args.index, command, pip_version)
    print(
        f"wheelhouse: {target.name} ({target.description}, Python {target.python}, {target_label(target)}): "
        f"{len(reqs)} requirements from extras {','.join(extras)}",
        file=sys.stderr,
    )

    originals = _original_pins(target, args.index, reqs)

    def finish(status: str, error: str | None, entries: list[Entry]) -> None:
        for e in entries:
            if canonical(e.name) in originals:
                e.original_pin, e.original_pin_has_wheel = originals[canonical(e.name)]
        report["status"], report["error"] = status, error
        report["packages"] = [asdict(e) for e in entries]
        report["allowed_missing"] = {e.name: e.reason for e in entries if e.status == "ALLOWED-MISSING"}
        report["total_bytes"] = sum(e.size or 0 for e in entries if e.status == "ok")
        report["seconds"] = round(time.monotonic() - t0, 1)
        _, md = write_report(report, report_dir)
        print(f"wheelhouse: report {md} (+ .json)", file=sys.stderr)

    try:
        good, entries = check_requirements(target, args.index, reqs, allow)
    except MissingWheels as e:
        finish("FAILED", "missing wheels", getattr(e, "entries", []))
        stale = out / LOCK_NAME
        if stale.exists():
            stale.unlink()
        raise

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        requirements = [r.line for r in good]
        project = None
        if not args.no_project:
            print("wheelhouse: building the edge-ser wheel", file=sys.stderr)
            project = build_project_wheel(root, tmp / "project", args.index)
            requirements.append(str(project))
        cons = tmp / "constraints.txt"
        cons.write_text("".join(f"{r.line}\n" for r in good if r.spec.startswith("==")))
        rep, err = dry_run(target, args.index, requirements, constraints=cons)
        if rep is None:
            raise WheelhouseError(f"the joint resolution failed for {target.name}:\n    {pip_errors(err)}")

        install = rep["install"]
        entries += _resolved_entries(install, good, project)

        # download exactly the resolved files: the hashes make pip take those and nothing else
        out.mkdir(parents=True, exist_ok=True)
        fetch = _write_fetch_list(entries, tmp / "fetch.txt")
        print(f"wheelhouse: downloading {len(install)} wheels into {out}", file=sys.stderr)
        _pip_download(target, args.index, fetch, out)
        if project is not None:
            shutil.copy2(project, out / project.name)

    _check_downloads(entries, out)
    keep = {e.wheel for e in entries if e.status == "ok"}
    _remove_stale_wheels(out, keep)
    lock = out / LOCK_NAME
    lock.write_text(render_lock(entries, target, command))
    write_index(out, f"edge-ser wheelhouse {target.name}")
    report["lock"] = _display_path(lock, root)

    # the lock must install offline, with hashes, from OUT alone
    rep, err = dry_run(target, args.index, ["--require-hashes", "-r", str(lock)], find_links=out)
    if rep is None:
        finish("FAILED", "the lock does not install offline", entries)
        raise WheelhouseError(f"the offline check of {lock} failed:\n    {pip_errors(err)}")
    finish("ok", None, entries)
    print(
        f"wheelhouse: {len(keep)} wheels, {human(report['total_bytes'])}, lock {lock} "
        f"({report['seconds']:.0f} s)",
        file=sys.stderr,
    )
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--target", required=True, choices=sorted(TARGETS))
    p.add_argument("--out", help="where the wheels and requirements.lock go (default wheelhouse/<target>)")
    p.add_argument("--extras", default="device", help="comma-separated extras of edge-ser (default: device)")
    p.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="NAME==VERSION",
        help="override one pin for this target (repeatable; recorded in the report)",
    )
    p.add_argument(
        "--allow-missing",
        action="append",
        default=[],
        metavar="PKG=REASON",
        help="leave out PKG if it has no wheel for the target (repeatable; the reason is reported)",
    )
    p.add_argument("--index-url", dest="index", default=PYPI, help=f"the package index (default {PYPI})")
    p.add_argument("--report-dir", help="where <target>.md/.json go (default deploy/wheelhouse)")
    p.add_argument("--no-project", action="store_true", help="do not build and include the edge-ser wheel")
    p.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = argv
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        return build(args)
    except MissingWheels as e:
        print(f"wheelhouse: ERROR: {e}", file=sys.stderr)
        return 1
    except WheelhouseError as e:
        print(f"wheelhouse: ERROR: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
