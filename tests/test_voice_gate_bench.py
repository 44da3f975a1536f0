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
    sr, quiet = vg.SR, np.zeros(vg.SR, np.float32)
    loud = (0.1 * np.sqrt(2) * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)  # -20 dBFS
    assert vg.clips_heard({"a": [np.full(sr, 0.1, np.float32)]}, -45.0) == (0, 1)  # a DC offset is no sound
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


def test_the_voicing_rule_guards_speech_and_prefers_the_floor_within_half_a_point():
    base = _row(pink_noise_open={"-40": 0.64}, labelled_noise_open=0.5, voicing=0.0, floor=True)
    added = _row(voicing=0.1, floor=True, labelled_noise_open=0.0)
    instead = _row(voicing=0.1, floor=False, labelled_noise_open=0.0, emodb_heard=0.878)
    assert vg.choose_voicing([base, instead, added]) is added  # 0.1 point more heard: the floor kept
    much = {**instead, "emodb_heard": 0.99}
    assert vg.choose_voicing([base, much, added]) is much  # 3.8 points more: the highest wins
    assert vg.choose_voicing([base, {**much, "room_tone_open": 0.01}, added]) is added  # more room tone: out
    assert vg.choose_voicing([base, {**added, "labelled_noise_open": 0.02}]) is None  # lets noise through
    assert vg.choose_voicing([base, {**added, "ravdess_heard": 0.83}]) is None  # loses speech
    assert vg.choose_voicing([base, added, {**added, "voicing": 0.2}])["voicing"] == 0.1
    assert vg.voicing_name(instead) == "voiced >= 0.1 of the hop, instead of the floor"


def test_labelled_hops_in_noise_and_the_gate_over_them():
    """A hop is speech where the clean hop reaches -45 dBFS, noise only under -60; the gate's share of each."""
    sr = vg.SR
    t = np.arange(sr) / sr
    voice = (0.1 * np.sin(2 * np.pi * 150 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    clips = {"a": [np.zeros(sr, np.float32), voice, np.zeros(sr, np.float32)]}
    [(stream, speech, noise)] = vg.labelled_in_noise(clips, -40.0)
    assert speech.tolist() == [False, False, True, True, False, False]
    assert noise.tolist() == [True, True, False, False, True, True]
    assert level_db(stream[:sr]) == pytest.approx(-40.0, abs=1.0)
    speech_open, noise_open = vg.labelled_open([(stream, speech, noise)], -45.0, voicing=0.1)
    assert speech_open == 1.0 and noise_open == 0.0  # the pink noise at -40 dBFS is not voiced
    assert vg.labelled_open([(stream, speech, noise)], -45.0) == (1.0, 1.0)  # level alone: opens on the noise
    h = vg.hum(-40.0, 1.0)
    assert level_db(h) == pytest.approx(-40.0, abs=0.01)


def test_the_hangover_rule_keeps_noise_out_and_speech_heard():
    before = _row(room_tone_open=0.006)
    plain = _row(voicing=0.1, floor=False, emodb_heard=1.0, labelled_noise_open=0.0)
    good = {**plain, "hangover": 1, "labelled_noise_open": 0.08}
    assert vg.hangover_passes(before, plain, good)
    assert not vg.hangover_passes(
        before, plain, {**good, "labelled_noise_open": 0.12}
    )  # too many pauses open
    assert not vg.hangover_passes(before, plain, {**good, "emodb_heard": 0.99})  # hears fewer clips
    assert not vg.hangover_passes(before, plain, {**good, "pink_noise_open": {"-40": 0.02}})
    assert vg.voicing_name(good) == "voiced >= 0.1 of the hop, instead of the floor, hangover 1"
