"""Quiet TensorFlow Lite's native log: the converter's "fully_quantize: 0, inference_type: 6, ..." and the
interpreter's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", which C++ code writes straight to file
descriptor 2, where Python's warnings and logging filters cannot reach it."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
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


__all__ = ["native_stderr_held"]
