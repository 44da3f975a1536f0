"""What native code writes straight to file descriptor 2, where Python's warnings and logging filters cannot
reach it: TensorFlow Lite's log ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") is held back
(`native_stderr_held`), and a decoder's complaint about a file ("Premature end of JPEG file", mpg123's notes) is
shown with the file's name (`native_messages_named`)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_held() -> Iterator[None]:
    """Inside the block, what native code writes to stderr is kept aside; it is shown only if the block raises
    (it may explain the error), and dropped otherwise."""
    fd = 2  # where native code writes, whatever Python's sys.stderr is
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)


_naming = False
"""Whether a `native_messages_named` block is open (in the main thread, the only one that opens them)."""


@contextlib.contextmanager
def native_messages_named(label: object, *, show: bool = True) -> Iterator[list[str]]:
    """Inside the block, what native code writes to stderr is held, then written after it with each line
    prefixed by `label` (a file's path), so that among hundreds of files the one a decoder complained about is
    named. The block gets a list that holds the lines after it (`show=False`: they are not written, the caller
    says what they mean). Only in the main thread (fd 2 is the process's: another thread's output would be delayed
    and named wrongly); elsewhere, and inside an outer block, the list stays empty and nothing is held. Keep the
    block to one decoder call, not a loop that writes progress."""
    global _naming
    lines: list[str] = []
    if _naming or threading.current_thread() is not threading.main_thread():
        yield lines  # inside an outer block (which names the file already), or another thread
        return
    held = saved = None
    try:
        if sys.stderr is None:  # pythonw, a daemon started without stderr: nothing to name, nothing held
            raise ValueError("no stderr")
        sys.stderr.flush()
        held = tempfile.TemporaryFile()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2, a closed stderr, or no temporary space
        if held is not None:
            held.close()
        yield lines
        return
    with held:
        os.dup2(held.fileno(), 2)
        _naming = True
        try:
            yield lines
        finally:
            _naming = False
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines += [ln for ln in held.read().decode(errors="replace").splitlines() if ln.strip()]
            if lines and show and sys.stderr is not None:
                sys.stderr.write("".join(f"{label}: {ln}\n" for ln in lines))
                sys.stderr.flush()


__all__ = ["native_messages_named", "native_stderr_held"]
