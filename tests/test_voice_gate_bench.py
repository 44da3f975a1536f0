"""benchmarks/voice_gate.py: its sets and the rules that chose the gate's defaults (docs/live.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import voice_gate as vg
from edge_ser.audio.level import level_db


def _row(**kw) -> dict:
    row = {"vad_db": -45.0, "steady_hops": 0, "steady_db": 3.0, "ravdess_heard": 0.84, "emodb_heard": 0.875,
           "ravdess_noisy_heard": 0.79, "room_tone_open": 0.006, "pink_noise_open": {"-70": 0.0, "-40": 0.0}}  # fmt: skip
    return {**row, **kw}


def test_pink_noise_has_its_level_and_a_falling_spectrum():
    y = vg.pink_noise(-40.0, 4.0)
    assert level_db(y) == pytest.approx(-40.0, abs=0.01)
    power = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(y.size, 1 / vg.SR)
    low, high = power[(f > 100) & (f < 200)].mean(), power[(f > 1000) & (f < 2000)].mean()
    assert 10 * math.log10(low / high) == pytest.approx(10.0, abs=1.5)  # 1/f: 10 dB per decade


def test_clips_heard_counts_a_clip_by_the_hops_whose_middle_it_holds():
    sr, quiet, loud = vg.SR, np.zeros(vg.SR, np.float32), np.full(vg.SR, 0.1, np.float32)  # -20 dBFS
    heard, total = vg.clips_heard({"a": [quiet, loud, quiet * 0.5, loud]}, -45.0)
    assert (heard, total) == (2, 4)
    assert vg.clips_heard({"a": [loud[: sr // 8]]}, -45.0) == (0, 1)  # shorter than a hop: never judged


def test_the_level_rule_needs_speech_heard_and_no_noise_let_through():
    rows = [_row(), _row(vad_db=-55.0, ravdess_heard=0.993), _row(vad_db=-60.0, ravdess_heard=1.0)]
    assert vg.choose(rows) == -55.0  # the highest level that passes
    rows[1]["room_tone_open"] = 0.014
    rows[2]["pink_noise_open"] = {"-70": 0.0, "-40": 0.02}
    assert vg.choose(rows) is None  # -45 itself hears < 99 % of RAVDESS: nothing passes, -45 stays


def test_the_floor_rules_guard_speech_and_room_tone():
    base = _row(pink_noise_open={"-40": 0.64})
    good = _row(steady_hops=4, pink_noise_open={"-40": 0.02})
    assert vg.choose_tracker([base, good, _row(steady_hops=6, pink_noise_open={"-40": 0.04})], 3.0) == 4
    assert vg.choose_tracker([base, {**good, "emodb_heard": 0.60}], 3.0) == 0  # loses speech
    assert vg.choose_tracker([base, good], 1.0) == 0  # only the candidates of that range count
    assert vg.start_passes([base, _row(pink_noise_open={"-40": 0.08})])
    assert not vg.start_passes([base, _row(pink_noise_open={"-40": 0.08}, ravdess_noisy_heard=0.71)])
