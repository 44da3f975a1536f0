"""Files written whole or not at all, and files read with a size limit: the one copy of each in edge-ser.

    with atomic_writer(path) as f:          # a temporary sibling; renamed over `path` only on success
        np.save(f, x)
    atomic_write(path, text)                # the same for bytes or text in one call
    data = read_regular_file(path, limit=16 << 20, error=BundleError, label="bundle b: manifest.json")
    with open_regular_file(path, error=AudioFormatError) as fh:   # a FIFO or device is refused, never opened
    files = find_files(["clips/"], (".wav",))   # regular files only; others skipped with an InputWarning
    paths = walk_files("clips/")                # every non-folder path below, links to folders followed

A reader of the renamed file sees the old contents or the new, never a part (rename(2) is atomic within one
file system, and the data is fsynced before the rename). A failure, Ctrl-C included, removes the temporary
file and leaves `path` as it was.
"""

from __future__ import annotations

import os
import stat
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

from edge_ser.errors import EdgeSerError, InputWarning


@contextmanager
def atomic_writer(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    encoding: str | None = None,
    permissions: int | None = 0o644,
    fsync: bool = True,
) -> Iterator[IO[Any]]:
    """A file object on a temporary sibling of `path`; on a clean exit it is flushed, fsynced and renamed
    over `path` (the parent folder is created); on an exception it is removed and `path` is untouched.

    Args:
        mode: "wb" (default) or "w" (text; `encoding` defaults to UTF-8).
        permissions: mode bits of the new file (mkstemp makes 0600); None keeps 0600. A file system without
            modes (a FAT boot partition) is not an error.
        fsync: flush the data to the device before the rename (off only for caches that may be lost).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer: mode {mode!r} must be 'wb' or 'w'")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        kw = {"encoding": encoding or "utf-8"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kw) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if permissions is not None:
            try:
                os.chmod(tmp, permissions)
            except OSError:
                pass
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive lock on `folder` (flock on the folder itself, so no lock file is left behind) for a
    read-modify-write of a file in it that other processes may do at the same time. Where there is no flock
    (Windows), no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        fd = None
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # NFS emulates flock with write locks (EBADF on a folder); some FUSE mounts refuse it
            os.close(fd)
            fd = None
    if fd is None:
        warnings.warn(
            f"{folder}: cannot lock this folder (its file system does not allow it); written without a lock",
            InputWarning,
            stacklevel=3,
        )
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | bytearray | memoryview | str,
    *,
    encoding: str = "utf-8",
    permissions: int | None = 0o644,
) -> Path:
    """Write `data` (bytes, or text as `encoding`) to `path` through `atomic_writer`; returns the path."""
    blob = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_writer(path, "wb", permissions=permissions) as fh:
        fh.write(blob)
    return Path(path)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held until the block ends, then delivered: files written together in it (a bundle and
    the summary that describes it) are all new or all old. Outside the main thread it does nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    before = {k: signal.signal(k, lambda signum, frame: got.append(signum)) for k in kinds}
    try:
        yield
    finally:
        for k, h in before.items():
            signal.signal(k, signal.SIG_DFL if h is None else h)
        if got:
            signal.raise_signal(got[0])


def report_stem(out: str | os.PathLike[str], suffixes: Iterable[str]) -> Path:
    """The stem of a report's files named by an --out OUT: OUT without its extension only when it is one of the
    `suffixes` the report writes (`rep.md` -> `rep`), else OUT whole, dots and all (`pi4_1.5ghz`, `run.2026.12`:
    Path.with_suffix cut those at their last dot, so `--out pi4_1.5ghz` wrote pi4_1.json and a fusion bundle's
    branches, pi4_1.5ghz_audio and pi4_1.5ghz_face, wrote one pi4_1.json over the other). The extension matches
    whatever its case (`rep.MD` -> `rep`: it wrote rep.MD.json), as `edge-ser eval` cut it."""
    out = Path(out)
    return out.with_suffix("") if out.suffix.lower() in {s.lower() for s in suffixes} else out


def report_file(out: str | os.PathLike[str], suffix: str, suffixes: Iterable[str]) -> Path:
    """The file of a report with extension `suffix` that --out OUT names: `report_stem` + `suffix`."""
    stem = report_stem(out, suffixes)
    return stem.with_name(stem.name + suffix)


def write_png(path: str | os.PathLike[str], img: Any) -> Path:
    """Encode the BGR / grey image `img` as PNG and write it to `path` (parents made, temp file + rename)."""
    import cv2  # a device dependency, imported here so that fileio stays light

    from edge_ser.errors import ConfigError

    ok, png = cv2.imencode(".png", img)
    if not ok:
        raise ConfigError(f"{path}: cannot encode the PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, png.tobytes())


def file_type(mode: int) -> str:
    """What a stat mode is, for messages: "a regular file", "a FIFO (named pipe)", "a character device"..."""
    for test, what in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def _refuse(where: str, st: os.stat_result, error: type[Exception]) -> None:
    """Raise `error` unless `st` is a regular file, saying what the path is instead."""
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{where}: is a symbolic link; only regular files are read here")
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{where}: is a directory, not a file")
    raise error(
        f"{where}: is {file_type(st.st_mode)}, not a regular file; only regular files are read "
        "(a FIFO or a device would block or never end)"
    )


def check_regular_file(
    path: str | os.PathLike[str],
    *,
    error: type[Exception] = EdgeSerError,
    label: str | None = None,
    follow_links: bool = True,
) -> os.stat_result:
    """The stat of `path` if it is a regular file, else `error` naming it and saying what it is (missing, a
    directory, a FIFO, a device, a socket; a link when `follow_links` is false). Nothing is opened."""
    where = label if label is not None else str(path)
    try:
        st = os.stat(path) if follow_links else os.lstat(path)
    except FileNotFoundError:
        raise error(f"{where}: no such file") from None
    except OSError as e:
        raise error(f"{where}: cannot read: {e.strerror or e}") from None
    _refuse(where, st, error)
    return st


def open_regular_file(
    path: str | os.PathLike[str],
    *,
    error: type[Exception] = EdgeSerError,
    label: str | None = None,
    follow_links: bool = True,
) -> BinaryIO:
    """A binary file object on `path`, which must be a regular file (else `error`, as `check_regular_file`).

    The file is opened without blocking (O_NONBLOCK) and checked on the open descriptor (fstat), so a FIFO
    put in its place between a check and the open cannot hang the reader; the flag is cleared after the
    check (it means nothing for a regular file).
    """
    where = label if label is not None else str(path)
    check_regular_file(path, error=error, label=label, follow_links=follow_links)
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise error(f"{where}: cannot read: {e.strerror or e}") from None
    try:
        _refuse(where, os.fstat(fd), error)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular_file(
    path: str | os.PathLike[str],
    *,
    limit: int | None = None,
    error: type[Exception] = EdgeSerError,
    label: str | None = None,
    follow_links: bool = True,
) -> bytes:
    """The bytes of a regular file, read once, with every refusal as `error` naming the file.

    Refused: a missing file, a folder, a link (when `follow_links` is false), anything that is not a regular
    file (a FIFO would block, a device never ends), and a file larger than `limit` bytes, which is refused
    from its size before any byte is read (and again if it grew while being read).

    Args:
        limit: most bytes accepted; None reads any size.
        error: the exception class raised (BundleError, PackedFormatError, AudioFormatError, ...).
        label: how messages name the file (default: the path), e.g. "bundle b.tar: weights.esq".
        follow_links: False refuses a symbolic link instead of reading what it points to.
    """
    where = label if label is not None else str(path)
    size = check_regular_file(path, error=error, label=label, follow_links=follow_links).st_size
    if limit is not None and size > limit:  # refused before the file is even opened
        raise error(f"{where}: {size} bytes is more than the limit of {limit} bytes; refusing to read it")
    with open_regular_file(path, error=error, label=label, follow_links=follow_links) as fh:
        try:
            data = fh.read() if limit is None else fh.read(limit + 1)
        except OSError as e:
            raise error(f"{where}: cannot read: {e.strerror or e}") from None
    if limit is not None and len(data) > limit:  # it grew after the stat
        raise error(f"{where}: more than the limit of {limit} bytes; refusing to read it")
    return data


def walk_files(root: str | os.PathLike[str], *, warn_loops: bool = True) -> list[Path]:
    """Every path under the folder `root` that is not a folder (files, links to files, broken links, FIFOs...),
    recursively and sorted, following symbolic links to folders (`Path.rglob` does not on Python < 3.13, so a
    class or speaker folder that is a link vanished from a data set without a word).

    A link to a folder that contains it (an ancestor, or the folder itself) would recurse forever, and a link to
    a folder already listed would list its files twice: each is skipped, and named in one `InputWarning`
    (`warn_loops`). A folder that cannot be listed is passed over, as `rglob` does.
    """
    root = Path(root)
    out: list[Path] = []
    loops: list[str] = []
    twice: list[str] = []
    seen: dict[tuple[int, int], Path] = {}

    def visit(folder: Path, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            with os.scandir(folder) as it:
                names = sorted(e.name for e in it)  # sorted: which of two routes to a folder is kept is fixed
        except OSError:
            return
        for name in names:
            path = folder / name
            try:
                st = os.stat(path)
            except OSError:  # a broken link, a file gone since the listing: the caller says what it is
                out.append(path)
                continue
            if not stat.S_ISDIR(st.st_mode):
                out.append(path)
                continue
            key = (st.st_dev, st.st_ino)
            link = path.is_symlink()
            if key in ancestors:  # only a link can lead back to a folder above it
                loops.append(f"{path} -> {os.path.realpath(path)}")
            elif link and key in seen:  # the real folder is listed under its own name, whichever sorts first
                twice.append(f"{path} (the folder listed as {seen[key]})")
            else:
                seen.setdefault(key, path)
                visit(path, ancestors | {key})

    try:
        st = os.stat(root)
    except OSError:
        return []
    # every real folder under the root first (links not followed), so a link to one of them is the one skipped
    for dirpath, _dirs, _files in os.walk(root):
        try:
            d = os.stat(dirpath)
        except OSError:
            continue
        seen.setdefault((d.st_dev, d.st_ino), Path(dirpath))
    seen[(st.st_dev, st.st_ino)] = root
    visit(root, frozenset({(st.st_dev, st.st_ino)}))
    for found, why in (
        (loops, "to a folder that contains them (followed, they would loop forever)"),
        (twice, "to a folder already listed (its files would count twice)"),
    ):
        if found and warn_loops:
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            warnings.warn(
                f"{root}: skipped {len(found)} link(s) {why}: {'; '.join(found[:3])}{more}",
                InputWarning,
                stacklevel=2,
            )
    return sorted(out)


def find_files(
    roots: Iterable[str | os.PathLike[str]],
    extensions: Iterable[str],
    *,
    skip_hidden: bool = False,
    error: type[Exception] = EdgeSerError,
    what: str = "files",
    strict: bool = True,
) -> list[Path]:
    """The regular files among `roots` and, inside the folders among them, those with one of `extensions`
    (recursively, following links to folders, `walk_files`; sorted per folder).

    Anything else a folder holds under a wanted name (a FIFO, a device, a socket, a link to one, a broken
    link) is skipped with one `InputWarning` naming a few; a path given directly that is not a regular file or
    a folder is `error`, or (`strict` False: a batch of files) skipped with the others. `skip_hidden`: also skip
    names starting with "." (inside the folders).
    """
    exts = tuple(e.lower() for e in extensions)
    out: list[Path] = []
    skipped: list[str] = []
    for root in map(Path, roots):
        if root.is_dir():
            for p in walk_files(root):  # links to folders are followed (rglob skips them)
                if p.suffix.lower() not in exts:
                    continue
                if skip_hidden and any(part.startswith(".") for part in p.relative_to(root).parts):
                    continue
                try:
                    mode = os.stat(p).st_mode
                except OSError as e:  # a broken link, a file gone since the listing
                    skipped.append(f"{p} ({e.strerror or e})")
                    continue
                if stat.S_ISREG(mode):
                    out.append(p)
                elif not stat.S_ISDIR(mode):
                    skipped.append(f"{p} ({file_type(mode)})")
        else:
            try:
                check_regular_file(root, error=error, label=f"{root}")
            except error as e:
                if strict:
                    raise
                skipped.append(str(e))
                continue
            out.append(root)
    if skipped:
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        warnings.warn(
            f"skipped {len(skipped)} {what} that are not regular files: {'; '.join(skipped[:3])}{more}",
            InputWarning,
            stacklevel=2,
        )
    return out


def unread_files(root: str | os.PathLike[str], extensions: Iterable[str], *, depth: int = 1) -> list[Path]:
    """The regular files under the folder `root` (recursively, following links to folders, `walk_files`) that a
    reader of `extensions` passes over for their extension: at least `depth` path parts deep, not hidden (no part
    of the path below `root` starts with "."; macOS's `._take1.wav` forks stay silent, as `find_files`'
    `skip_hidden` passes them over). The data set loaders count them (`converters.data.scan.skip_ignored`, depth
    2: files beside the class folders are not the data set's), and `edge-ser predict` names them."""
    exts = {e.lower() for e in extensions}
    root = Path(root)
    out = []
    for path in walk_files(root, warn_loops=False):  # find_files warned of the loops
        rel = path.relative_to(root)
        if len(rel.parts) < depth or path.suffix.lower() in exts or any(p.startswith(".") for p in rel.parts):
            continue
        if path.is_file():
            out.append(path)
    return out


__all__ = [
    "atomic_write",
    "atomic_writer",
    "check_regular_file",
    "file_type",
    "find_files",
    "folder_lock",
    "open_regular_file",
    "read_regular_file",
    "unread_files",
    "walk_files",
]
