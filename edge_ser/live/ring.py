"""A preallocated float32 ring buffer between an audio callback (one producer) and the pipeline (one consumer).

Why a ring and not a queue: PortAudio calls the microphone callback on its own real-time thread every few
milliseconds; if the callback allocates, takes a lock the consumer may hold, or does model work, the driver's
buffer overruns and audio is lost. `AudioRing.write` only copies the block into at most two slices of a
buffer allocated once (`np.copyto`) and updates a few integer counters, whatever the consumer is doing.

Counters are absolute sample indices that only grow: `total_written` (producer) and `read_pos` (consumer
cursor). The sample with absolute index i lives at position i % capacity. A block larger than the free space
overwrites the oldest samples: the write counts one overflow event, and the samples the consumer had not
read are lost. The consumer settles losses when it reads: every sample index the producer wrote is either
returned by `read_new` or counted in `lost_samples`, exactly once (`read_pos == returned + lost`).

Memory ordering, honestly: there are no atomics in Python. The protocol relies on CPython's GIL: each
attribute store/load of a counter is one bytecode, and switching the GIL between threads is a full memory
barrier, so a thread sees the other's stores in program order. The producer announces the end of the write
in progress (`_writing`) *before* copying and publishes `_written` *after*; the consumer copies only up to a
`_written` it loaded, then re-loads `_writing` and discards any sample the producer may have been
overwriting during the copy (numpy may release the GIL inside a large copy, so the two copies can really
overlap). Hence a torn sample is never returned. What is approximate: `overflows` is counted by the
producer from a cursor it may see a moment late, so a race exactly at an overflow can count an event the
consumer just escaped. Under free-threaded CPython (3.13t, no GIL) the store order is not guaranteed by this
argument; the ring would need a real atomic (or a lock) there.

"No allocation" means no array allocation: `write` creates a few small view objects (Python cannot slice
without them, ~100 bytes each, freed at once), never a buffer proportional to the block; tests measure it
with tracemalloc. numpy only.
"""

from __future__ import annotations

import numpy as np

from edge_ser.audio.channels import Downmix
from edge_ser.errors import AudioFormatError, ConfigError


class AudioRing:
    """Single-producer / single-consumer ring of float32 samples, `channels` wide.

    capacity: samples (frames) the ring holds; channels: values per sample. The producer calls `write`; one
    consumer calls `read_new` (advances its cursor) and may call `latest` (does not). Reads are mono: with
    more than one channel the channels are averaged.
    """

    def __init__(self, capacity: int, channels: int = 1) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ConfigError(f"AudioRing: capacity must be a positive int of samples, got {capacity!r}")
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
            raise ConfigError(f"AudioRing: channels must be a positive int, got {channels!r}")
        self.capacity = int(capacity)
        self.channels = int(channels)
        shape = (self.capacity,) if self.channels == 1 else (self.capacity, self.channels)
        self._buf = np.zeros(shape, dtype=np.float32)
        # Producer-owned (only `write` stores them):
        self._written = 0  # samples completely written and published
        self._writing = 0  # end of the write in progress (== _written between writes)
        self._overflows = 0  # writes that overwrote samples the consumer had not read
        # Consumer-owned (only `read_new` / `skip_to_end` store them):
        self._read = 0  # the consumer's cursor
        self._lost = 0  # samples the cursor skipped because they were overwritten
        self._downmix = Downmix(
            "the microphone"
        )  # the channel mean, or the loudest when they cancel (warned)

    @property
    def channel_note(self) -> str | None:
        """Why the channels are not averaged (they cancel: the loudest alone is used), once that happened."""
        return self._downmix.message

    # ------------------------------------------------------------------ producer
    def write(self, block: np.ndarray) -> None:
        """Append `block` (float [n] or [n, channels]; [n, 1] is accepted for one channel). Never blocks.

        Called from the audio callback: copies into the preallocated buffer, allocates no array.
        When the block does not fit in the free space the oldest samples are overwritten (an overflow).
        """
        if self.channels == 1:
            if block.ndim == 2 and block.shape[1] == 1:
                block = block[:, 0]
            elif block.ndim != 1:
                raise AudioFormatError(
                    f"AudioRing.write: need [n] or [n, 1] samples, got shape {block.shape}"
                )
        elif block.ndim != 2 or block.shape[1] != self.channels:
            raise AudioFormatError(
                f"AudioRing.write: need [n, {self.channels}] samples, got shape {block.shape}"
            )
        n = block.shape[0]
        if n == 0:
            return
        cap = self.capacity
        end = self._written + n
        self._writing = end  # announce before touching the buffer (see the module docstring)
        if end - cap > self._read:
            self._overflows += 1
        if n > cap:  # only the newest `cap` samples of the block can be kept
            block = block[n - cap :]
            n = cap
        start = (end - n) % cap
        first = min(n, cap - start)
        np.copyto(self._buf[start : start + first], block[:first])
        if first < n:
            np.copyto(self._buf[: n - first], block[first:])
        self._written = end  # publish after the data is in place

    # ------------------------------------------------------------------ consumer
    def read_new(self, max: int | None = None) -> np.ndarray:
        """Samples written since the last `read_new`, oldest first, at most `max` (mono float32 [k]).

        If the producer lapped the cursor, the overwritten samples are skipped and counted in
        `lost_samples`; the result starts at the oldest sample still intact.
        """
        if max is not None and (isinstance(max, bool) or not isinstance(max, (int, np.integer)) or max < 0):
            raise ConfigError(f"AudioRing.read_new: max must be a non-negative int or None, got {max!r}")
        cap = self.capacity
        written = self._written
        r = self._read
        lost = 0
        if r < written - cap:
            lost = written - cap - r
            r = written - cap
        n = written - r if max is None else min(written - r, int(max))
        out = self._copy(r, n)
        # Samples with index < _writing - cap may have been overwritten while we copied: drop them.
        torn = min(n, self._writing - cap - r)
        if torn > 0:
            lost += torn
            out = out[torn:]
        self._lost += lost
        self._read = r + n
        return out

    def latest(self, n: int) -> np.ndarray:
        """The newest min(n, available in the buffer) samples, mono float32; does not move the cursor."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"AudioRing.latest: n must be a non-negative int, got {n!r}")
        written = self._written
        k = min(int(n), written, self.capacity)
        start = written - k
        out = self._copy(start, k)
        torn = min(k, self._writing - self.capacity - start)
        return out[torn:] if torn > 0 else out

    def skip_to_end(self) -> int:
        """Move the cursor to the newest sample without reading (not counted as lost); returns how many
        samples were skipped. For a consumer that only wants `latest`, or after a restart."""
        written = self._written
        skipped = written - self._read
        self._read = written
        return skipped

    def _copy(self, start: int, n: int) -> np.ndarray:
        """Samples [start, start + n) (absolute indices) as a new mono float32 array."""
        out = np.empty((n,) + self._buf.shape[1:], dtype=np.float32)
        if n:
            pos = start % self.capacity
            first = min(n, self.capacity - pos)
            out[:first] = self._buf[pos : pos + first]
            if first < n:
                out[first:] = self._buf[: n - first]
        return out if self.channels == 1 else self._downmix(out)

    # ------------------------------------------------------------------ state
    @property
    def total_written(self) -> int:
        """Samples written since creation (monotonic; / rate = stream time at the producer)."""
        return self._written

    @property
    def read_pos(self) -> int:
        """The consumer's cursor: samples returned by `read_new` plus samples lost or skipped."""
        return self._read

    @property
    def available(self) -> int:
        """Samples `read_new()` would return now (at most `capacity`)."""
        return min(self._written - self._read, self.capacity)

    @property
    def overflows(self) -> int:
        """Writes that overwrote samples the consumer had not read yet (events, not samples)."""
        return self._overflows

    @property
    def lost_samples(self) -> int:
        """Samples the consumer will never see: those skipped so far, plus those already overwritten and
        not yet skipped (exact once the consumer has read; see the module docstring)."""
        return self._lost + max(0, self._written - self.capacity - self._read)

    def __repr__(self) -> str:
        return (
            f"AudioRing(capacity={self.capacity}, channels={self.channels}, written={self._written}, "
            f"read_pos={self._read}, overflows={self._overflows}, lost={self.lost_samples})"
        )
