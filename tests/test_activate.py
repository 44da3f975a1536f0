"""edge-ser-activate, the one on-device switch / rollback script, run for real under each POSIX shell here.

Every test builds a ROOT with real version folders and runs the script itself (`sh`, `dash`, `bash --posix`):
activate writes the marker before it switches, commit and rollback check the caller's token, boot-check rolls
back a version left unverified by an earlier boot (or past its time-to-live) and refuses a marker it cannot
read; edge-ser-start runs the check before it starts. Also: no other file in the repository switches
ROOT/current itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "edge_ser_deploy" / "edge-ser-activate"
START = REPO / "deploy" / "systemd" / "edge-ser-start"
BUSY = 75

SHELLS = [s for s in (["sh"], ["dash"], ["bash", "--posix"]) if shutil.which(s[0])]


@pytest.fixture(params=SHELLS, ids=[s[0] for s in SHELLS])
def shell(request) -> list[str]:
    return request.param


def _run(
    shell: list[str], root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run([*shell, str(SCRIPT), "--root", str(root), *args], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, **(env or {})})  # fmt: skip


def _facts(cp: subprocess.CompletedProcess) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in cp.stdout.splitlines() if "=" in ln)


def _root(tmp: Path, *versions: str) -> Path:
    root = tmp / "bundles"
    for v in versions:
        (root / "versions" / v).mkdir(parents=True)
        (root / "versions" / v / "manifest.json").write_text("{}")
    return root


def _current(root: Path) -> str | None:
    link = root / "current"
    return os.readlink(link) if link.is_symlink() else None


def _marker(root: Path) -> dict[str, str]:
    lines = (root / "pending").read_text().splitlines()
    assert lines[0] == "edge-ser-pending 1"
    return dict(ln.split("=", 1) for ln in lines[1:])


def _edit_marker(root: Path, **kv: str) -> None:
    lines = (root / "pending").read_text().splitlines()
    out = [lines[0]] + [
        f"{k}={kv.pop(k)}" if k in kv else ln for ln in lines[1:] for k in [ln.split("=", 1)[0]]
    ]
    (root / "pending").write_text("\n".join(out) + "\n")


def test_activate_commit_rollback(shell, tmp_path):
    root = _root(tmp_path, "a", "b")
    cp = _run(shell, root, "activate", "a", "--token", "t1", "--by", "test")
    assert cp.returncode == 0, cp.stderr
    assert _facts(cp) == {
        "previous": "",
        "current": "versions/a",
        "switched": "1",
        "marker": f"{root}/pending",
    }
    m = _marker(root)
    assert m["previous"] == "" and m["new"] == "versions/a" and m["token"] == "t1" and m["by"] == "test"
    assert m["boot"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert _run(shell, root, "commit", "--token", "t1").returncode == 0
    assert not (root / "pending").exists() and _current(root) == "versions/a"

    # b pending: a second activation is refused until it is resolved; a foreign token touches nothing
    assert _run(shell, root, "activate", "versions/b", "--token", "t2").returncode == 0
    assert _current(root) == "versions/b" and _marker(root)["previous"] == "versions/a"
    for cmd in (["activate", "a"], ["commit", "--token", "other"], ["rollback", "--token", "other"]):
        cp = _run(shell, root, *cmd)
        assert cp.returncode == BUSY, (cmd, cp.stderr)
        assert _current(root) == "versions/b" and (root / "pending").exists()
    cp = _run(shell, root, "rollback", "--token", "t2")
    assert (
        cp.returncode == 0 and _facts(cp)["restored"] == "versions/a" and _facts(cp)["undone"] == "versions/b"
    )
    assert _current(root) == "versions/a" and not (root / "pending").exists()
    # a second rollback (a retry whose first answer was lost) finds nothing to do and says where current is
    cp = _run(shell, root, "rollback", "--token", "t2")
    assert cp.returncode == 0 and _facts(cp) == {
        "current": "versions/a",
        "restored": "",
        "note": "nothing-pending",
    }
    # committing a token that was resolved meanwhile is refused: its caller must not believe it won
    assert _run(shell, root, "commit", "--token", "t2").returncode == BUSY
    # the same version again: nothing switched, no marker
    cp = _run(shell, root, "activate", "a")
    assert cp.returncode == 0 and _facts(cp)["switched"] == "0" and not (root / "pending").exists()
    assert not [p.name for p in root.iterdir() if p.name.startswith((".current.tmp", ".pending.tmp"))]


def test_rollback_without_previous_or_with_previous_gone(shell, tmp_path):
    root = _root(tmp_path, "a", "b")
    assert _run(shell, root, "activate", "a").returncode == 0
    cp = _run(shell, root, "rollback")
    assert cp.returncode == 0 and _facts(cp)["note"] == "no-previous" and _facts(cp)["current"] == ""
    assert not os.path.lexists(root / "current") and not (root / "pending").exists()

    assert _run(shell, root, "activate", "a", "--commit").returncode == 0
    assert _run(shell, root, "activate", "b").returncode == 0
    shutil.rmtree(root / "versions" / "a")  # the previous version vanished while b was being checked
    cp = _run(shell, root, "rollback")
    assert cp.returncode == 0 and _facts(cp)["note"] == "previous-missing", cp.stderr
    assert "versions/a is gone" in cp.stderr
    assert not os.path.lexists(root / "current")  # never left running the unverified b


def test_refuses_bad_input(shell, tmp_path):
    root = _root(tmp_path, "a")
    for bad in ("../a", "a/b", ".hidden", "-rf", "a b", "a\nb", "a;rm", ""):
        cp = _run(shell, root, "activate", bad)
        assert cp.returncode in (1, 2), (bad, cp.returncode)
        assert not os.path.lexists(root / "current") and not (root / "pending").exists()
    assert _run(shell, root, "activate", "nonexistent").returncode == 1
    assert _run(shell, root, "activate", "a", "--token", "x y").returncode == 2
    assert _run(shell, root, "activate", "a", "--ttl", "-5").returncode == 2
    assert subprocess.run([*shell, str(SCRIPT), "--root", "relative", "status"], capture_output=True,
                          check=False).returncode == 2  # fmt: skip
    (root / "current").mkdir()  # a real folder where the link belongs
    cp = _run(shell, root, "activate", "a")
    assert cp.returncode == 1 and "not a symbolic link" in cp.stderr and (root / "current").is_dir()


def test_boot_check(shell, tmp_path):
    root = _root(tmp_path, "a", "b")
    assert _run(shell, root, "boot-check").returncode == 0  # nothing pending: nothing to do
    # ... and writes nothing (ROOT may be read-only to the service user)
    assert not (root / ".activate.lock").exists()
    assert _run(shell, root, "activate", "a", "--commit").returncode == 0
    assert (
        _run(shell, root, "activate", "b", "--token", "t", "--ttl", "600", "--by", "deploy X").returncode == 0
    )

    # the same boot, within the time-to-live: a deploy's own restart, the pending version starts
    cp = _run(shell, root, "boot-check")
    assert cp.returncode == 0 and "being verified by deploy X" in cp.stderr
    assert _current(root) == "versions/b" and (root / "pending").exists()

    # after a reboot: rolled back, said on stderr (the journal) and recorded for the next deploy
    _edit_marker(root, boot="00000000-0000-0000-0000-000000000000")
    cp = _run(shell, root, "boot-check")
    assert cp.returncode == 0, cp.stderr
    assert "rolling back: the device restarted after versions/b was switched to" in cp.stderr
    assert _current(root) == "versions/a" and not (root / "pending").exists()
    status = _facts(_run(shell, root, "status"))
    assert status["pending"] == "0" and status["rolled_back_new"] == "versions/b"
    assert status["rolled_back_to"] == "versions/a" and "restarted" in status["rolled_back_reason"]
    # the next activation clears that record
    assert _run(shell, root, "activate", "b").returncode == 0
    assert not (root / "rolled-back").exists()

    # the same boot, but older than its time-to-live (the deploy never came back): rolled back too
    _edit_marker(root, uptime="0", ttl="1")
    cp = _run(shell, root, "boot-check")
    assert cp.returncode == 0 and "longer than the 1 s its deploy" in cp.stderr
    assert _current(root) == "versions/a"


@pytest.mark.parametrize(
    "content",
    [
        b"garbage\n",
        b"",
        b"edge-ser-pending 1\nprevious=versions/a\nnew=../../etc\nuptime=1\nttl=1\n",
        b"edge-ser-pending 1\nprevious=versions/a\nnew=versions/b\nuptime=x\nttl=1\n",
        b"edge-ser-pending 1\nprevious=versions/a\x1b[2J\nnew=versions/b\nuptime=1\nttl=1\n",
        b"edge-ser-pending 1\n" + b"x" * 100_000 + b"\n",
        "symlink",
    ],
    ids=["garbage", "empty", "bad-new", "bad-uptime", "control-chars", "huge", "symlink"],
)
def test_unreadable_marker_is_refused_not_guessed(tmp_path, content):
    sh = ["sh"]
    root = _root(tmp_path, "a", "b")
    assert _run(sh, root, "activate", "a", "--commit").returncode == 0
    assert _run(sh, root, "activate", "b").returncode == 0
    (root / "pending").unlink()
    if content == "symlink":
        (root / "pending").symlink_to("/etc/passwd")
    else:
        (root / "pending").write_bytes(content)
    cp = _run(sh, root, "boot-check")
    assert cp.returncode == 1 and "refusing to start" in cp.stderr and "rollback --to" in cp.stderr
    assert _current(root) == "versions/b"  # left alone: the previous version is unknown
    assert _run(sh, root, "activate", "a").returncode == BUSY
    assert _run(sh, root, "rollback").returncode == 1
    assert _facts(_run(sh, root, "status"))["pending_ok"] == "0"
    cp = _run(sh, root, "rollback", "--to", "a")  # the way out a person (or the deploy's message) takes
    assert cp.returncode == 0, cp.stderr
    assert _current(root) == "versions/a" and not os.path.lexists(root / "pending")


def test_commit_force_keeps_current(tmp_path):
    root = _root(tmp_path, "a")
    assert _run(["sh"], root, "activate", "a").returncode == 0
    (root / "pending").write_text("garbage")
    assert _run(["sh"], root, "commit").returncode == 1
    assert _run(["sh"], root, "commit", "--force").returncode == 0
    assert _current(root) == "versions/a" and not (root / "pending").exists()


def test_stale_marker_is_dropped_not_acted_on(tmp_path):
    root = _root(tmp_path, "a", "b", "c")
    assert _run(["sh"], root, "activate", "a", "--commit").returncode == 0
    assert _run(["sh"], root, "activate", "b").returncode == 0
    os.unlink(root / "current")
    os.symlink("versions/c", root / "current")  # someone switched by hand meanwhile
    _edit_marker(root, boot="another-boot")
    cp = _run(["sh"], root, "boot-check")
    assert cp.returncode == 0 and "not current" in cp.stderr
    assert _current(root) == "versions/c" and not (root / "pending").exists()


def test_marker_reaches_disk_before_the_switch(tmp_path):
    """A failed switch removes the marker; a death between marker and switch leaves current untouched and a
    marker the boot check drops (the pending version never became current)."""
    root = _root(tmp_path, "a", "b")
    assert _run(["sh"], root, "activate", "a", "--commit").returncode == 0
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mv").write_text('#!/bin/sh\n[ "$1" = -T ] && exit 1\nexec /bin/mv "$@"\n')
    (fake / "ln").write_text("#!/bin/sh\nkill -9 $PPID\n")  # the script dies right after writing the marker
    for f in fake.iterdir():
        f.chmod(0o755)
    path = os.environ["PATH"]
    (fake / "ln").rename(fake / "ln.off")
    cp = _run(["sh"], root, "activate", "b", env={"PATH": f"{fake}:{path}"})
    assert cp.returncode == 1 and "nothing switched" in cp.stderr
    assert _current(root) == "versions/a" and not (root / "pending").exists()
    (fake / "mv").unlink()
    (fake / "ln.off").rename(fake / "ln")
    cp = _run(["sh"], root, "activate", "b", env={"PATH": f"{fake}:{path}"})
    assert cp.returncode != 0
    assert _current(root) == "versions/a" and _marker(root)["new"] == "versions/b"
    _edit_marker(root, boot="another-boot")
    assert _run(["sh"], root, "boot-check").returncode == 0
    assert _current(root) == "versions/a" and not (root / "pending").exists()


def test_switch_is_atomic_for_a_reader(tmp_path):
    root = _root(tmp_path, "a", "b")
    assert _run(["sh"], root, "activate", "a", "--commit").returncode == 0
    seen: set[str | None] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add(os.readlink(root / "current"))
            except FileNotFoundError:
                seen.add(None)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(15):
            assert _run(["sh"], root, "activate", "b").returncode == 0
            assert _run(["sh"], root, "rollback").returncode == 0
    finally:
        stop.set()
        t.join()
    assert seen <= {"versions/a", "versions/b"} and None not in seen


def test_concurrent_activations_one_wins(tmp_path):
    if shutil.which("flock") is None:
        pytest.skip("util-linux flock not installed")
    root = _root(tmp_path, "a", "b", "c")
    assert _run(["sh"], root, "activate", "a", "--commit").returncode == 0
    procs = [subprocess.Popen(["sh", str(SCRIPT), "--root", str(root), "activate", v, "--token", v],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for v in ("b", "c")]  # fmt: skip
    codes = {v: p.wait(timeout=60) for v, p in zip("bc", procs, strict=True)}
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert sorted(codes.values()) == [0, BUSY], codes
    winner = next(v for v, c in codes.items() if c == 0)
    assert _current(root) == f"versions/{winner}" and _marker(root)["token"] == winner
    assert _marker(root)["previous"] == "versions/a"


def test_prune_keeps_current_previous_and_newest(tmp_path):
    root = _root(tmp_path, "v1", "v2", "v3", "v4", "v5")
    for v in ("v1", "v2", "v3", "v4"):
        assert _run(["sh"], root, "activate", v, "--commit").returncode == 0
        os.utime(root / "versions" / v, (1000 + int(v[1]), 1000 + int(v[1])))  # distinct activation times
    os.utime(root / "versions" / "v5", (2000, 2000))  # uploaded last, never activated
    assert _run(["sh"], root, "activate", "v1", "--token", "t").returncode == 0  # back to v1, from v4
    cp = _run(["sh"], root, "commit", "--token", "t", "--keep", "2")
    assert cp.returncode == 0, cp.stderr
    left = sorted(p.name for p in (root / "versions").iterdir())
    assert left == ["v1", "v4", "v5"], left  # v1 current, v4 previous, v5 newest; v2, v3 pruned
    pruned = sorted(v for k, v in (ln.split("=", 1) for ln in cp.stdout.splitlines()) if k == "pruned")
    assert pruned == ["v2", "v3"]


def _fake_prefix(tmp: Path) -> Path:
    prefix = tmp / "opt"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "venv" / "bin").mkdir(parents=True)
    shutil.copy(SCRIPT, prefix / "bin" / "edge-ser-activate")
    (prefix / "venv" / "bin" / "edge-ser").write_text(f'#!/bin/sh\necho "$@" > {tmp}/ran\n')
    for f in (prefix / "bin" / "edge-ser-activate", prefix / "venv" / "bin" / "edge-ser"):
        f.chmod(0o755)
    return prefix


def test_start_script_rolls_back_before_it_runs(tmp_path):
    root = _root(tmp_path, "a", "b")
    prefix = _fake_prefix(tmp_path)
    assert _run(["sh"], root, "activate", "a", "--commit").returncode == 0
    assert _run(["sh"], root, "activate", "b").returncode == 0
    env = {**os.environ, "EDGE_SER_PREFIX": str(prefix), "EDGE_SER_BUNDLE": f"{root}/current"}
    r = subprocess.run(["sh", str(START)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0 and _current(root) == "versions/b"  # same boot: the deploy's own restart
    assert (tmp_path / "ran").read_text().split()[:3] == ["run", f"{root}/current", "--no-console"]
    (tmp_path / "ran").unlink()

    _edit_marker(root, boot="another-boot")
    r = subprocess.run(["sh", str(START), "--boot-check"], env=env, capture_output=True, text=True, timeout=60,
                       check=False)  # fmt: skip
    assert r.returncode == 0 and "rolling back" in r.stderr and _current(root) == "versions/a"
    assert not (tmp_path / "ran").exists()  # --boot-check (ExecStartPre) checks only

    assert _run(["sh"], root, "activate", "b").returncode == 0
    (root / "pending").write_text("garbage")
    r = subprocess.run(["sh", str(START)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1 and "not starting an unverified bundle" in r.stderr
    assert not (tmp_path / "ran").exists()


def test_start_script_passes_extra_args_as_words_not_file_names(tmp_path):
    """Review: EDGE_SER_EXTRA_ARGS was split unquoted, so `--web-allow-host *` (the live page's "any host") became
    the names of the files in the service's working folder. It is split on spaces only (set -f)."""
    prefix = _fake_prefix(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "a-file").write_text("")
    env = {**os.environ, "EDGE_SER_PREFIX": str(prefix), "EDGE_SER_BUNDLE": str(tmp_path / "bundle"),
           "EDGE_SER_EXTRA_ARGS": "--threads 2 --web-allow-host *"}  # fmt: skip
    r = subprocess.run(["sh", str(START)], env=env, cwd=work, capture_output=True, text=True, timeout=60,
                       check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ran").read_text().split()[-4:] == ["--threads", "2", "--web-allow-host", "*"]


def test_no_other_file_switches_current():
    """The switch (`ln -s` of the link, `mv -T` over it, `.current.tmp`) lives in edge-ser-activate only."""
    ls = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False)
    if ls.returncode != 0:
        pytest.skip(f"not a git checkout: {ls.stderr.strip()}")
    files = ls.stdout
    pattern = re.compile(
        r"ln\s+-[a-zA-Z]*s|\.current\.tmp|mv\s+-[a-zA-Z]*T[^\n]*\bcurrent\b|os\.symlink\([^)]*current"
    )
    offenders = []
    for name in files.splitlines():
        path = REPO / name
        skip = name.startswith(("tests/", "docs/")) or name.endswith(".md") or path.is_symlink()
        if skip or not path.is_file() or path.resolve() == SCRIPT or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert offenders == []


def test_a_refused_activation_says_whether_another_deploy_is_running(shell, tmp_path):
    """A pending activation made moments ago, within its time-to-live, is most likely another deploy that is
    still running: the refusal said 'resolve it first (rollback or commit)', which would undo that deploy. It now
    says to wait; a marker past its time-to-live (or from before a reboot) is an interrupted deploy's, and the
    advice names the rollback."""
    root = _root(tmp_path, "a", "b")
    assert (
        _run(shell, root, "activate", "a", "--token", "t1", "--ttl", "600", "--by", "alice").returncode == 0
    )
    cp = _run(shell, root, "activate", "b", "--by", "bob")
    msg = " ".join(cp.stderr.split())
    assert cp.returncode == BUSY and _current(root) == "versions/a", msg
    assert "another deploy is probably still running" in msg and "Wait for it to finish" in msg, msg
    assert "rolling it back now would undo that deploy" in msg and "resolve it first" not in msg
    assert _facts(_run(shell, root, "status"))["pending_ttl"] == "600"
    _edit_marker(root, uptime="0", ttl="1")  # switched long ago, past the 1 s it allowed itself
    cp = _run(shell, root, "activate", "b")
    msg = " ".join(cp.stderr.split())
    assert cp.returncode == BUSY and "left by an interrupted deploy" in msg and "rollback" in msg, msg
    assert "probably still running" not in msg


def test_a_version_given_with_a_trailing_slash_is_accepted(shell, tmp_path):
    """Shell completion of `versions/NAME` adds a slash: `activate versions/NAME/` was refused as 'not a version
    name'. Trailing slashes are dropped (activate and rollback --to); a name with a slash inside still is not one."""
    root = _root(tmp_path, "a", "b")
    cp = _run(shell, root, "activate", "versions/a/", "--commit")
    assert cp.returncode == 0 and _current(root) == "versions/a", cp.stderr
    cp = _run(shell, root, "activate", "b//", "--token", "t")
    assert cp.returncode == 0 and _current(root) == "versions/b", cp.stderr
    cp = _run(shell, root, "rollback", "--to", "versions/a/")
    assert cp.returncode == 0 and _current(root) == "versions/a", cp.stderr
    for bad in ("versions/a/b", "/", "a b/"):
        cp = _run(shell, root, "activate", bad)
        assert cp.returncode == 2 and "not a version name" in cp.stderr, (bad, cp.stderr)


def test_a_symlink_planted_in_root_is_never_written_through(shell, tmp_path):
    """ROOT belongs to the unprivileged deploy user, and boot-check runs as root (ExecStartPre=+): it did
    `touch ROOT/.activate.lock`, so a link planted there made root create a file anywhere. Now a link where the
    script creates a file is removed (the link itself) and logged, and the file is made in ROOT."""
    root = _root(tmp_path, "a", "b")
    outside = tmp_path / "outside"
    outside.mkdir()
    assert _run(shell, root, "activate", "a", "--commit").returncode == 0
    assert _run(shell, root, "activate", "b").returncode == 0
    _edit_marker(root, boot="00000000-0000-0000-0000-000000000000")
    (root / ".activate.lock").unlink()
    (root / ".activate.lock").symlink_to(outside / "created-by-root")
    cp = _run(shell, root, "boot-check")
    assert cp.returncode == 0, cp.stderr
    assert "removed the symbolic link" in cp.stderr and ".activate.lock" in cp.stderr
    assert not (outside / "created-by-root").exists() and list(outside.iterdir()) == []
    lk = root / ".activate.lock"
    assert lk.is_file() and not lk.is_symlink()
    assert _current(root) == "versions/a" and (root / "rolled-back").is_file()
    # a version folder replaced by a link: activate's touch does not create or touch its target
    (root / "versions" / "c").symlink_to(outside / "c")
    (outside / "c").mkdir()
    before = (outside / "c").stat().st_mtime_ns
    os.utime(outside / "c", ns=(before - 10**10, before - 10**10))
    assert _run(shell, root, "activate", "c", "--commit").returncode == 0
    assert (outside / "c").stat().st_mtime_ns == before - 10**10


def _fake_ln_swapping_marker(tmp: Path, root: Path, secret: Path) -> dict[str, str]:
    """PATH with an `ln` that, as the owner of ROOT could at any moment, replaces ROOT/pending by a link to
    `secret` after the script has read and checked the marker (the switch runs `ln`), then does the real ln."""
    bin_dir = tmp / "fakebin"
    bin_dir.mkdir()
    real_ln = shutil.which("ln")
    fake = bin_dir / "ln"
    fake.write_text(
        f'#!/bin/sh\nrm -f "{root}/pending"; {real_ln} -s "{secret}" "{root}/pending"\nexec {real_ln} "$@"\n'
    )
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_boot_check_record_never_copies_a_file_swapped_in_for_the_marker(tmp_path):
    """The rolled-back record holds the checked marker's fields, not whatever ROOT/pending is by then: the
    boot check runs as root in a folder the deploy user owns, who could swap in a link to /etc/shadow."""
    root = _root(tmp_path, "a", "b")
    secret = tmp_path / "secret"
    secret.write_text("root:SECRET-HASH:19000:0:99999:7:::\n")
    assert _run(["sh"], root, "activate", "a", "--commit").returncode == 0
    assert _run(["sh"], root, "activate", "b", "--by", "deploy X").returncode == 0
    _edit_marker(root, boot="another-boot")
    cp = _run(["sh"], root, "boot-check", env=_fake_ln_swapping_marker(tmp_path, root, secret))
    assert cp.returncode == 0, cp.stderr
    assert _current(root) == "versions/a"
    record = (root / "rolled-back").read_text()
    assert "SECRET" not in record
    assert "new=versions/b" in record and "previous=versions/a" in record and "by=deploy X" in record
    assert "reason=the device restarted" in record


@pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("setpriv") or shutil.which("runuser")),
                    reason="needs root (the unit's boot check runs as root)")  # fmt: skip
def test_root_acts_as_the_owner_of_root(tmp_path):
    """Run as root (the unit's `+` ExecStartPre, first boot) in a ROOT another user owns, the script does its
    work as that user: whatever it creates is the owner's, and no link the owner plants can make root write
    (a device, a system file) or read outside ROOT."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="edge-ser-activate-"))
    try:
        base.chmod(0o755)
        root = _root(base, "a", "b")
        uid = gid = 54321
        for p in [root, *root.rglob("*")]:
            os.lchown(p, uid, gid)
        assert _run(["sh"], root, "activate", "a", "--commit").returncode == 0
        assert _run(["sh"], root, "activate", "b").returncode == 0
        assert (root / "pending").stat().st_uid == uid and (root / "current").lstat().st_uid == uid
        _edit_marker(root, boot="another-boot")
        os.chown(root / "pending", uid, gid)
        cp = _run(["sh"], root, "boot-check")
        assert cp.returncode == 0, cp.stderr
        assert _current(root) == "versions/a"
        for name in ("rolled-back", "current", ".activate.lock"):
            assert (root / name).lstat().st_uid == uid, name
        # a script piped to `sh -s` cannot start itself again as the owner: refused, nothing done
        cp = subprocess.run(["sh", "-s", "--", "--root", str(root), "activate", "b"], input=SCRIPT.read_text(),
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert cp.returncode == 1 and "owned by uid 54321" in cp.stderr
        assert _current(root) == "versions/a"
    finally:
        shutil.rmtree(base)
