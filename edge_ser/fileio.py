"""Files written whole or not at all, and files read with a size limit: the one copy of each in edge-ser.

    with atomic_writer(path) as f:          # a temporary sibling; renamed over `path` only on success
        np.save(f, x)
    atomic_write(path, text)                # the same for bytes or text in one call
    data = read_regular_file(path, limit=16 << 20, error=BundleError, label="bundle b: manifest.json")

A reader of the renamed file sees the old contents or the new, never a part (rename(2) is atomic within one
file system, and the data is fsynced before the rename). A failure, Ctrl-C included, removes the temporary
file and leaves `path` as it was.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from edge_ser.errors import EdgeSerError


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
    p = Path(path)
    where = label if label is not None else str(p)
    try:
        st = os.stat(p) if follow_links else os.lstat(p)
    except FileNotFoundError:
        raise error(f"{where}: no such file") from None
    except OSError as e:
        raise error(f"{where}: cannot read: {e.strerror or e}") from None
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{where}: is a symbolic link; only regular files are read here")
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{where}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{where}: not a regular file")
    if limit is not None and st.st_size > limit:
        raise error(
            f"{where}: {st.st_size} bytes is more than the limit of {limit} bytes; refusing to read it"
        )
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(p, flags)
    except OSError as e:
        raise error(f"{where}: cannot read: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read() if limit is None else fh.read(limit + 1)
        except OSError as e:
            raise error(f"{where}: cannot read: {e.strerror or e}") from None
    if limit is not None and len(data) > limit:  # it grew after the stat
        raise error(f"{where}: more than the limit of {limit} bytes; refusing to read it")
    return data


__all__ = ["atomic_write", "atomic_writer", "read_regular_file"]
