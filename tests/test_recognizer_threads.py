"""One Recognizer shared by several threads (a web server's workers): its engine is called one thread at a time,
so a TFLite interpreter (not thread-safe: two threads raised its RuntimeError) and the out-of-range flags an
engine leaves for the call that made them are not another thread's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import edge_ser

REPO = Path(__file__).resolve().parents[1]
THREADS = 4


def _clips() -> list[np.ndarray]:
    """Short voiced clips (a harmonic tone with a moving pitch), different enough to get different answers."""
    t = np.arange(16000) / 16000
    return [
        (0.2 * np.sin(2 * np.pi * (120 + 40 * i) * t * (1 + 0.1 * np.sin(3 * t)))).astype(np.float32)
        for i in range(6)
    ]


class _Counting:
    """An engine wrapper that records how many calls were inside `predict` at once (each stays a moment)."""

    def __init__(self, engine: object) -> None:
        self._engine = engine
        self._guard = threading.Lock()
        self.inside = 0
        self.most = 0

    def predict(self, x: object) -> np.ndarray:
        with self._guard:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            time.sleep(0.01)  # widens the window two unlocked calls would overlap in
            return self._engine.predict(x)
        finally:
            with self._guard:
                self.inside -= 1

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)


def _together(work, n: int = THREADS) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run() -> None:
        start.wait()
        try:
            work()
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=run, name=f"t{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_engine_calls_from_several_threads_are_one_at_a_time() -> None:
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy", adapt=False)
    counting = _Counting(rec.engine)
    rec.engine = counting
    clips = _clips()
    want = [rec.predict_audio(y, 16000).probabilities for y in clips]
    got: list[list[dict[str, float]]] = []

    def work() -> None:
        got.append([rec.predict_audio(y, 16000).probabilities for y in clips])

    assert _together(work) == []
    assert counting.most == 1
    assert got == [want] * THREADS


def test_a_tflite_recognizer_shared_by_threads_answers_every_call() -> None:
    pytest.importorskip("edge_ser.engines.tflite")
    from edge_ser.engines.tflite import unavailable

    if unavailable() is not None:
        pytest.skip(f"no TFLite interpreter here: {unavailable()}")
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "tflite-int8", adapt=False)
    clips = _clips()
    want = [rec.predict_audio(y, 16000).probabilities for y in clips]
    got: list[list[dict[str, float]]] = []

    def work() -> None:
        for _ in range(3):
            got.append([rec.predict_audio(y, 16000).probabilities for y in clips])

    assert _together(work) == []  # was: RuntimeError "There is at least 1 reference to internal data ..."
    assert got == [want] * (3 * THREADS)


def test_a_live_session_takes_turns_on_the_engine_with_predict_calls() -> None:
    """`session()` / `stream()` called the engine outside the recognizer's lock: a live session beside `predict_*`
    on the same recognizer could enter a TFLite interpreter twice at once."""
    from tests._signals import voiced

    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy", adapt=False)
    counting = _Counting(rec.engine)
    rec.engine = counting
    session = rec.session(sr=16000)
    y = (voiced(16000, 8 * 16000) * 32767 * 0.8).astype(np.int16)
    clips = _clips()
    live: list[object] = []

    def work() -> None:
        if threading.current_thread().name == "t0":  # the live session, beside THREADS - 1 predict threads
            for i in range(0, len(y), 4000):  # quarter-second chunks, as a capture callback would push them
                live.extend(session.push(y[i : i + 4000]))
        else:
            for c in clips:
                rec.predict_audio(c, 16000)

    assert _together(work) == []
    assert sum(r.speech for r in live) >= 5  # the session did classify windows on the engine
    assert counting.most == 1
