"""Reading a bundle's bytes, from a folder or an uncompressed `.tar`: the manifest first, everything bounded.

The order is the defence: the manifest's checksum (`manifest.sha256`) and the manifest are read first (each
at most a few MB), the manifest is checked in full, and only then are the files it lists read, each after
its size on disk (or in the tar header) has been compared with the manifest's byte count. A file or member
the manifest does not list is refused, never read. Compressed tars are refused (a 700 KB `.tar.gz` can
expand to gigabytes). Limits: `edge_ser.limits`; the layout and the limits are documented in docs/bundle.md.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import tarfile
from collections.abc import Iterable
from pathlib import Path

from edge_ser.bundle.manifest import MANIFEST_NAME, MANIFEST_SUM_NAME, SIDE_FILES
from edge_ser.errors import BundleError
from edge_ser.fileio import read_regular_file
from edge_ser.limits import MAX_MANIFEST_BYTES, MAX_TAR_MEMBERS
from edge_ser.schema import short

MAX_SUM_BYTES = 1024
"""`manifest.sha256` holds one line: 64 hex digits, two spaces, `manifest.json`."""
TAR_SLACK_BYTES = 1 << 20
"""Tar headers and padding allowed on top of the files' own bytes."""
COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\x5d\x00\x00": "lzma",
}
_SUM_LINE = re.compile(rb"([0-9a-f]{64})[ \t]+\*?manifest\.json\r?\n?")


def manifest_sum_line(manifest_bytes: bytes) -> bytes:
    """The content of `manifest.sha256` for these manifest bytes (the `sha256sum manifest.json` format)."""
    return f"{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST_NAME}\n".encode()


def check_manifest_sum(sum_bytes: bytes, manifest_bytes: bytes, src: str) -> None:
    """`manifest.sha256` names the sha256 of `manifest.json` (BundleError otherwise)."""
    m = _SUM_LINE.fullmatch(sum_bytes)
    if m is None:
        raise BundleError(
            f"bundle {src}: {MANIFEST_SUM_NAME}: not one line '<64 hex digits>  {MANIFEST_NAME}' "
            f"(got {short(sum_bytes[:100])})"
        )
    want, got = m.group(1).decode(), hashlib.sha256(manifest_bytes).hexdigest()
    if want != got:
        raise BundleError(
            f"bundle {src}: {MANIFEST_NAME}: sha256 mismatch ({MANIFEST_SUM_NAME} {want[:12]}..., file "
            f"{got[:12]}...): the manifest was modified or damaged after the bundle was made"
        )


def missing_sum(src: str) -> BundleError:
    return BundleError(
        f"bundle {src}: {MANIFEST_SUM_NAME} is missing, so nothing covers {MANIFEST_NAME} against damage. "
        "Bundles exported before edge-ser wrote it (builds before 2026-12-02) lack it: export the bundle again, "
        "or, having checked the manifest by "
        f"hand, add it in the bundle folder with `sha256sum {MANIFEST_NAME} > {MANIFEST_SUM_NAME}`"
    )


class BundleSource:
    """The files of a bundle on disk, read one at a time within a byte limit (a folder or a tar)."""

    src: str

    def names(self) -> list[str]:
        """Every file (member) present, without reading any."""
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def read(self, name: str, limit: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> BundleSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_exact(self, name: str, size: int) -> bytes:
        """File `name`, whose size must be `size` bytes (compared before it is read)."""
        have = self.size(name)
        if have != size:
            raise BundleError(
                f"bundle {self.src}: {name}: size mismatch (manifest {size} bytes, file {have} bytes): "
                "the file was truncated, modified or replaced"
            )
        data = self.read(name, size)
        if len(data) != size:
            raise BundleError(
                f"bundle {self.src}: {name}: truncated while reading ({len(data)} of {size} bytes)"
            )
        return data

    def refuse_unlisted(self, listed: Iterable[str]) -> None:
        """Anything present that the manifest does not list (and is not a known side file) is an error."""
        allowed = {MANIFEST_NAME, *SIDE_FILES, *listed}
        extra = sorted(n for n in self.names() if n not in allowed)
        if extra:
            raise BundleError(
                f"bundle {self.src}: {short(extra, 200)} not listed in {MANIFEST_NAME}; a bundle holds only the "
                "files its manifest lists (remove them, or export the bundle again)"
            )


def _hint(name: str) -> str:
    """What to do about a listed file that is missing: a TFLite variant deleted by hand has a command that does it."""
    if name.endswith(".tflite"):
        return (
            " (a TFLite variant cannot be deleted by hand: the manifest lists and signs it; put it back, then make a "
            "copy without the variants: edge-ser slim BUNDLE OUT; slim reads the whole bundle, so it cannot mend "
            "this one as it is)"
        )
    return ""


class DirSource(BundleSource):
    """A bundle folder: regular files only (no links, FIFOs or sub-folders among the listed names)."""

    def __init__(self, root: Path, src: str) -> None:
        self.root, self.src = root, src
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            out = []
            with os.scandir(self.root) as it:
                for entry in it:
                    out.append(entry.name)
                    if len(out) > MAX_TAR_MEMBERS:
                        raise BundleError(
                            f"bundle {self.src}: more than {MAX_TAR_MEMBERS} entries in the folder; "
                            "a bundle holds only the files its manifest lists"
                        )
            self._names = out
        return self._names

    def size(self, name: str) -> int:
        p = self.root / name
        try:
            st = p.lstat()
        except FileNotFoundError:
            raise BundleError(
                f"bundle {self.src}: {name}: listed in {MANIFEST_NAME} but missing" + _hint(name)
            ) from None
        except OSError as e:
            raise BundleError(f"bundle {self.src}: {name}: cannot be read ({e.strerror})") from e
        if stat.S_ISLNK(st.st_mode):
            raise BundleError(
                f"bundle {self.src}: {name}: is a symbolic link; a bundle holds regular files only"
            )
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"bundle {self.src}: {name}: is not a regular file (a folder, FIFO or device)")
        return st.st_size

    def read(self, name: str, limit: int) -> bytes:
        return read_regular_file(
            self.root / name,
            limit=limit,
            error=BundleError,
            label=f"bundle {self.src}: {name}",
            follow_links=False,
        )


class TarSource(BundleSource):
    """An uncompressed tar of top-level regular files. Its headers are scanned once (no payload is read), so
    names and sizes are known before any file is; a folder, a path, a link, a device or a duplicate name in
    it is refused."""

    def __init__(self, path: Path, src: str, max_file: int, max_total: int) -> None:
        self.src = src
        size = path.stat().st_size
        if size > max_total + TAR_SLACK_BYTES:
            raise BundleError(
                f"bundle {src}: {size:,} bytes is more than a bundle may hold ({max_total:,} bytes of files); "
                "refusing to read it"
            )
        with open(path, "rb") as f:
            head = f.read(8)
        for magic, kind in COMPRESSED_MAGIC.items():
            if head.startswith(magic):
                raise BundleError(
                    f"bundle {src}: a {kind}-compressed archive; bundles are loaded from plain .tar files only "
                    "(a small compressed file can expand to gigabytes): decompress it first"
                )
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            self.tf = tarfile.open(path, mode="r:")
        except (tarfile.TarError, OSError, ValueError, EOFError) as e:
            media = _media_kind(Path(path))
            if media:  # `info clip.wav`, or the bundle and the files swapped in predict
                raise BundleError(
                    f"bundle {src}: is {media}, not a bundle (a bundle is a folder or a .tar holding "
                    "manifest.json); did you give the file where the bundle goes?"
                ) from None
            folder = Path(path).resolve().parent
            if (folder / MANIFEST_NAME).is_file():  # `bench bundles/av_cnn/manifest.json`, or its model.onnx
                raise BundleError(
                    f"bundle {src}: is a file of the bundle folder {folder}, not a bundle (a bundle is a folder or a "
                    f".tar holding manifest.json); give the folder: {folder}"
                ) from None
            raise BundleError(f"bundle {src}: not a readable .tar archive ({e})") from e
        try:
            self._scan(max_file, max_total)
        except BaseException:
            self.tf.close()
            raise

    def _scan(self, max_file: int, max_total: int) -> None:
        total = 0
        # the one top-level folder of `tar -cf b.tar BUNDLE_FOLDER`, if the first member is in it
        folder: str | None = None
        first = True
        try:
            while (m := self.tf.next()) is not None:
                if len(self.members) >= MAX_TAR_MEMBERS:
                    raise BundleError(f"bundle {self.src}: more than {MAX_TAR_MEMBERS} archive members")
                if first:
                    folder, first = archive_folder(m), False
                name = member_name(m, self.src, folder)
                if name is None:
                    continue  # the "." entry of `tar -C dir -cf b.tar .`
                if name in self.members:
                    raise BundleError(f"bundle {self.src}: archive member {name!r}: appears more than once")
                limit = MAX_MANIFEST_BYTES if name == MANIFEST_NAME else max_file
                if m.size > limit:
                    raise BundleError(
                        f"bundle {self.src}: archive member {name!r}: {m.size:,} bytes is more than the limit "
                        f"of {limit:,} bytes; refusing to read it"
                    )
                total += m.size
                if total > max_total:
                    raise BundleError(
                        f"bundle {self.src}: archive members total more than {max_total:,} bytes"
                    )
                self.members[name] = m
        except BundleError:
            raise
        except (tarfile.TarError, EOFError) as e:
            raise BundleError(f"bundle {self.src}: not a readable .tar archive ({e})") from e
        except (
            OSError,
            ValueError,
            UnicodeError,
            OverflowError,
            struct.error,
            AttributeError,
            KeyError,
        ) as e:
            raise BundleError(f"bundle {self.src}: damaged archive ({type(e).__name__}: {e})") from e

    def names(self) -> list[str]:
        return list(self.members)

    def size(self, name: str) -> int:
        if name not in self.members:
            raise BundleError(
                f"bundle {self.src}: {name}: listed in {MANIFEST_NAME} but missing from the archive"
                + _hint(name)
            )
        return self.members[name].size

    def read(self, name: str, limit: int) -> bytes:
        size = self.size(name)
        if size > limit:
            raise BundleError(f"bundle {self.src}: {name}: {size:,} bytes is more than {limit:,}; not read")
        try:
            f = self.tf.extractfile(self.members[name])
            data = f.read(size) if f is not None else b""
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BundleError(f"bundle {self.src}: archive member {name!r}: cannot be read ({e})") from e
        if len(data) != size:
            raise BundleError(
                f"bundle {self.src}: archive member {name!r}: truncated ({len(data)} of {size} bytes)"
            )
        return data

    def close(self) -> None:
        self.tf.close()


TAR_HINT = (  # how to make an archive the reader takes, for its errors
    " (a bundle archive holds the bundle's files at its root or in one folder: make it with "
    "`tar -C BUNDLE_FOLDER -cf bundle.tar .` or `tar -cf bundle.tar BUNDLE_FOLDER`, or `edge-ser laq --tar`)"
)


def archive_folder(first: tarfile.TarInfo) -> str | None:
    """The folder every member of an archive is in, read from its first member (`tar -cf b.tar ser_emodb` writes
    "ser_emodb/" first, `tar -cf b.tar ser_emodb/*` "ser_emodb/manifest.json"); None for files at the root."""
    name = first.name.removeprefix("./")
    head, sep, rest = name.partition("/")
    if head in ("", ".", "..") or "\\" in head:
        return None
    if first.isdir() and rest.strip("/") == "":
        return head
    return head if sep and rest and "/" not in rest else None


def member_name(m: tarfile.TarInfo, src: str, folder: str | None = None) -> str | None:
    """The file name of a tar member that may be in a bundle (None for the archive's own "." entry, or its one
    top-level `folder`'s entry): a regular file at the top level (or directly in `folder`, the whole archive's),
    under a valid name; a folder, a path, a link, a device or a sparse file is refused."""
    raw = m.name
    name = raw.removeprefix("./")
    if folder is not None:
        if m.isdir() and name.rstrip("/") == folder:
            return None
        if not name.startswith(folder + "/"):
            raise BundleError(
                f"bundle {src}: archive member {short(raw)}: is outside the folder {short(folder)} the archive "
                f"starts with; a bundle archive holds one bundle's files{TAR_HINT}"
            )
        name = name[len(folder) + 1 :]
    if m.isdir() and name.rstrip("/") in ("", "."):
        return None
    if not name or name.startswith("/") or "/" in name or "\\" in name or name in (".", ".."):
        raise BundleError(
            f"bundle {src}: archive member {short(raw)}: has a folder, absolute or parent path; "
            f"a bundle archive holds top-level files only{TAR_HINT}"
        )
    if "\x00" in name or len(name) > 255:
        raise BundleError(f"bundle {src}: archive member {short(raw)}: invalid file name")
    if m.issym() or m.islnk():
        raise BundleError(
            f"bundle {src}: archive member {short(raw)}: is a link (to {short(m.linkname)}); "
            "a bundle archive holds regular files only"
        )
    if m.isdir() and folder is not None:
        # `tar -cf b.tar nest/b1`: the files are a level deeper than one folder
        raise BundleError(
            f"bundle {src}: archive member {short(raw)}: is a folder inside {short(folder)}; the bundle's files must "
            f"be directly in the archive's one folder: make it from the bundle folder itself "
            f"(`tar -C {short(folder)} -cf bundle.tar {short(name)}`){TAR_HINT}"
        )
    if m.isdir():
        raise BundleError(f"bundle {src}: archive member {short(raw)}: is a folder{TAR_HINT}")
    if not m.isreg() or m.issparse():
        raise BundleError(f"bundle {src}: archive member {short(raw)}: is not a regular file")
    return name


def open_source(path: Path, src: str, max_file: int, max_total: int) -> BundleSource:
    """The folder or tar at `path` (BundleError if it is neither, or does not exist)."""
    if path.is_dir():
        return DirSource(path, src)
    if path.is_file():
        return TarSource(path, src, max_file, max_total)
    if path.exists():
        raise BundleError(f"bundle {src}: not a directory or a .tar archive")
    raise BundleError(
        f"bundle {src}: does not exist (a bundle is a directory or a .tar made by the exporter)"
    )


__all__ = [
    "BundleSource",
    "DirSource",
    "TarSource",
    "check_manifest_sum",
    "manifest_sum_line",
    "member_name",
    "missing_sum",
    "open_source",
]


def _media_kind(path: Path) -> str | None:
    """'an audio file' / 'a video' / 'an image' by the file's extension, None for anything else."""
    from edge_ser.inputs.base import AUDIO_EXTENSIONS
    from edge_ser.vision.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    ext = path.suffix.lower()
    for kinds, name in (
        (AUDIO_EXTENSIONS, "an audio file"),
        (VIDEO_EXTENSIONS, "a video"),
        (IMAGE_EXTENSIONS, "an image"),
    ):
        if ext in kinds:
            return name
    return None
