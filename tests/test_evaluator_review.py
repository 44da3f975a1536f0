"""A researcher evaluating the shipped bundles on recordings we do not have (review of 2026-12-06): telephone WAVs
are read by the loaders too, --out keeps a dotted stem, an eval that scores nothing says so, corpus stand-ins in
other formats are found, silent clips are counted, and ignored options are named."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from _speaker import SR, _voice

from edge_ser.audio import write_wav
from edge_ser.cli import main

ROOT = Path(__file__).resolve().parents[1]
SER = str(ROOT / "bundles" / "ser_emodb")


def test_telephone_wavs_are_scored_by_eval(tmp_path, capsys) -> None:
    """mu-law WAVs were dropped by eval and data as 'unsupported WAV format tag' while predict read them."""
    sf = pytest.importorskip("soundfile")
    for i, label in enumerate(("angry", "sad")):
        (tmp_path / "mine" / label).mkdir(parents=True)
        sf.write(str(tmp_path / "mine" / label / f"s1_{i}.wav"), _voice(i), SR, subtype="ULAW")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["eval", SER, "--data", str(tmp_path / "mine"), "--json", "--adapt", "off"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"]["scored"] == 2 and not report["skipped"]


def test_a_dotted_out_stem_is_kept_and_nothing_scored_is_an_error(tmp_path, capsys) -> None:
    mine = tmp_path / "mine"
    (mine / "angry").mkdir(parents=True)
    write_wav(mine / "angry" / "s1_a.wav", _voice(1), SR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for stem in ("ser_emodb.tess", "ser_emodb.cremad"):
            assert (
                main(["eval", SER, "--data", str(mine), "--out", str(tmp_path / stem), "--adapt", "off"]) == 0
            )
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert (
        "ser_emodb.tess.json" in names and "ser_emodb.cremad.json" in names
    )  # both kept (one overwrote the other)
    calm = tmp_path / "calm_only"
    (calm / "calm").mkdir(parents=True)
    write_wav(calm / "calm" / "s1_a.wav", _voice(2), SR)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["eval", SER, "--data", str(calm)]) == 2  # it exited 0 with 'chance UAR 100.0%'
    assert "no file was scored: none has a label ser_emodb knows" in capsys.readouterr().err


def test_corpus_stand_ins_in_flac_are_found_and_silent_clips_are_counted(tmp_path, capsys) -> None:
    sf = pytest.importorskip("soundfile")
    cremad = tmp_path / "cremad"
    cremad.mkdir()
    sf.write(str(cremad / "1001_DFA_ANG_XX.flac"), _voice(3), SR)
    sf.write(str(cremad / "1001_DFA_SAD_XX.flac"), _voice(4), SR)
    write_wav(cremad / "1002_DFA_ANG_XX.wav", np.zeros(SR, np.float32), SR)  # digital silence
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["eval", SER, "--data", "cremad", "--root", str(cremad), "--json", "--adapt", "off"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"]["scored"] == 3 and report["silent"] == 1  # the FLACs were ignored without a word


def test_predict_says_an_adapt_mode_changes_nothing(tmp_path, capsys) -> None:
    clip = write_wav(tmp_path / "a.wav", _voice(5), SR)
    assert main(["predict", str(ROOT / "bundles" / "laq_mlp_emodb"), str(clip), "--adapt", "online"]) == 0
    assert "--adapt online changes nothing" in capsys.readouterr().err
    assert main(["predict", str(ROOT / "bundles" / "laq_mlp_emodb"), str(clip)]) == 0
    assert "changes nothing" not in capsys.readouterr().err


def test_a_hot_float_wav_names_its_first_sample_over_full_scale(tmp_path) -> None:
    from edge_ser.audio import load
    from edge_ser.errors import InputWarning

    y = np.zeros(SR, np.float32)
    y[3348], y[9000] = 1.5, 4.0
    path = tmp_path / "hot.wav"
    pytest.importorskip("soundfile").write(str(path), y, SR, subtype="FLOAT")  # float WAV beyond full scale
    with pytest.warns(InputWarning, match="the first at frame 3348"):
        load(path)
