"""JSON-lines output: one `LiveResult.to_dict()` per line, to a file or to stdout.

Crash safety: each line goes to the OS in one `write` of the complete line (newline included) straight to
the file descriptor, unbuffered, so a crash or SIGKILL leaves whole lines only; a reader that tails the
file never sees half a record. `close()` fsyncs a file so the last results survive a power cut too (a Pi
is often switched off at the plug). Reopening a damaged file in append mode first ends the torn last line.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, TextIO

from edge_ser.live.outputs._json import result_json
from edge_ser.live.outputs.base import OutputError
from edge_ser.live.result import LiveResult, StageTimes


def _lock(fd: int) -> bool:
    """An exclusive advisory lock on the open file `fd`, held until it is closed; False when another process holds
    it. Where there is no flock (Windows), True: no lock, as before."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True  # a file system without locks (some network mounts): write as before
    return True


class JsonlOutput:
    """Writes one JSON object per result to `target`: a path (created or replaced, its folder made if missing, as
    the other outputs' files are; appended to with `append=True`; a file this output created and never wrote a
    line to is removed on close, so a run that fails before its first result leaves no empty results file) or an
    open text stream such as sys.stdout (flushed per line, never closed here).

    fsync: on close, fsync a file target (default True). Raises OutputError when the file cannot be opened
    or a write fails (disk full, a FIFO whose reader left); BrokenPipeError when the stream's reader left.
    """

    def __init__(self, target: str | Path | TextIO, *, append: bool = False, fsync: bool = True) -> None:
        self._fd: int | None = None
        self._stream: TextIO | None = None
        self._fsync = fsync
        self._closed = False
        self._regular = False
        self.lines = 0
        """Lines written so far."""
        if isinstance(target, (str, Path)):
            self.path: Path | None = Path(target)
            # truncated only once locked: a second run on the same file wiped the first's lines and tore one
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
            self._created = not self.path.exists()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, flags, 0o644)
            except OSError as e:
                why = e.strerror
                blocking = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
                if blocking is not None:  # mkdir's bare "File exists"
                    why = f"{blocking} is a file, not a folder"
                raise OutputError(f"{self.path}: cannot open for JSON lines: {why}") from e
            regular = stat.S_ISREG(
                os.fstat(self._fd).st_mode
            )  # /dev/stdout, /dev/null, a FIFO: no lock, no truncate
            self._created = self._created and regular
            self._regular = regular
            if regular and not _lock(self._fd):
                os.close(self._fd)
                self._fd = None
                raise OutputError(
                    f"{self.path}: another run is writing JSON lines to this file (it is locked); give each run its "
                    "own --json file"
                )
            if regular and not append:
                os.ftruncate(self._fd, 0)
            if append:
                self._end_torn_line()
        else:
            self.path = None
            self._stream = target

    def _end_torn_line(self) -> None:
        """If the file does not end with a newline (a writer died mid-line before this format was used, or
        the file was edited), end that line so our first record starts on a line of its own."""
        assert self._fd is not None and self.path is not None
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                self._write_bytes(b"\n")

    def _write_bytes(self, data: bytes) -> None:
        """Write all of `data`. When a write fails part-way (a full disk, a file size limit: the first write takes
        what fits, the next one raises), what went in of it is cut off a regular file again, so the file still
        ends on a whole line; half a line was left, which `read_jsonl` refuses."""
        assert self._fd is not None
        view = memoryview(data)
        written = 0
        try:
            while view:  # a regular file takes it in one write; the loop only matters for pipes/FIFOs
                n = os.write(self._fd, view)
                view = view[n:]
                written += n
        except OSError:
            if written and self._regular:
                try:
                    os.ftruncate(self._fd, os.lseek(self._fd, 0, os.SEEK_CUR) - written)
                except OSError:
                    pass  # the error below says the write failed either way
            raise

    def emit(self, result: LiveResult) -> None:
        if self._closed:
            raise OutputError("JSON-lines output is closed")
        line = result_json(result) + "\n"
        try:
            if self._fd is not None:
                self._write_bytes(line.encode("ascii"))  # result_json is ASCII-only
            else:
                assert self._stream is not None
                self._stream.write(line)
                self._stream.flush()
        except (OSError, ValueError) as e:
            if isinstance(e, BrokenPipeError) and self._fd is None:
                # the stream's reader went away (`--json - | head -1`): a stop, which `edge-ser` ends quietly (exit
                # 0) as its other commands do; a --json FILE (a FIFO) whose reader left stays an error
                raise
            where = self.path if self.path is not None else getattr(self._stream, "name", "stream")
            raise OutputError(f"{where}: cannot write JSON line: {e}") from e
        self.lines += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._fd is not None:
            if self._created and not self.lines and self.path is not None:
                # nothing was written: no empty file left behind, removed while still locked (after the unlock
                # another run could lock it and write to a file no longer there)
                self.path.unlink(missing_ok=True)
            try:
                if self._fsync:
                    os.fsync(self._fd)
            except OSError:
                pass  # not every file supports fsync (pipes, some FUSE mounts); the data is written already
            finally:
                os.close(self._fd)
                self._fd = None
        elif self._stream is not None:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                pass  # closed pipe: every line was flushed when written

    def __enter__(self) -> JsonlOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def result_from_dict(d: dict[str, Any]) -> LiveResult:
    """The LiveResult a JSON line encodes (lists back to tuples; a null level_db back to -inf)."""
    times = StageTimes(**d.get("times", {}))
    box = d.get("face_box")
    size = d.get("frame_size")
    level = d.get("level_db")
    clips = d.get("speaker_clips")
    return LiveResult(
        t=float(d["t"]),
        labels=tuple(d["labels"]),
        probs=tuple(d["probs"]),
        smoothed=tuple(d["smoothed"]),
        label=d["label"],
        confidence=float(d["confidence"]),
        speech=bool(d["speech"]),
        level_db=float("-inf") if level is None else float(level),
        mode=d["mode"],
        fallback=d.get("fallback"),
        face_box=tuple(box) if box is not None else None,
        frame_size=tuple(size) if size is not None else None,
        overflows=int(d.get("overflows", 0)),
        times=times,
        notes=tuple(d.get("notes", ())),
        ood=bool(d.get("ood", False)),
        speaker_clips=None if clips is None else int(clips),
        voiced=None if d.get("voiced") is None else float(d["voiced"]),
    )


def read_jsonl(path: str | Path) -> list[LiveResult]:
    """Every result in a JSON-lines file written by `JsonlOutput`, in order (blank lines skipped).

    Raises OutputError naming the file and quoting the line that is not a LiveResult record."""
    out: list[LiveResult] = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        try:
            out.append(result_from_dict(json.loads(raw)))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise OutputError(f"{path}: not a LiveResult JSON line: {raw[:80]!r} ({e})") from e
    return out


__all__ = ["JsonlOutput", "read_jsonl", "result_from_dict"]
