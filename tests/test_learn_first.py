"""Offline files with a speaker-normalised bundle: `learn_first` (`edge-ser predict --adapt all`, `edge-ser eval
--adapt all`) learns the speaker from every file before classifying any, so the result does not depend on the
files' order; `eval --adapt online` meets each speaker's files in a seeded random order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _speaker import SHIPPED, SR, _voice, _with_block

from edge_ser.audio.wav import write_wav
from edge_ser.errors import AudioFormatError, ConfigError
from edge_ser.recognizer import Recognizer


def _files(folder: Path, n: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        paths.append(folder / f"{i}.wav")
        write_wav(paths[-1], _voice(i), SR)
    return paths


def _log_p(p: dict[str, float], labels) -> np.ndarray:  # a synthetic vowel saturates the model
    return np.log(np.maximum([p[k] for k in labels], 1e-300))


def test_every_file_gets_the_statistics_of_all_of_them_whatever_the_order(tmp_path: Path) -> None:
    b = _with_block(tmp_path)
    paths = _files(tmp_path / "v", 4)
    rec = Recognizer(b, "numpy")
    got = rec.predict_files(paths, learn_first=True)
    assert rec.speaker.clips == 4  # learnt once; classifying did not add them again
    back = Recognizer(b, "numpy").predict_files(paths[::-1], learn_first=True)[::-1]
    for a, z in zip(got, back, strict=True):
        assert np.allclose(
            _log_p(a.probabilities, rec.labels), _log_p(z.probabilities, rec.labels), atol=1e-4
        )
    online = Recognizer(b, "numpy").predict_files(paths)  # in order: only the last file saw all four
    last = _log_p(online[-1].probabilities, rec.labels)
    assert np.allclose(_log_p(got[-1].probabilities, rec.labels), last, atol=1e-4)
    assert not np.allclose(
        _log_p(got[0].probabilities, rec.labels), _log_p(online[0].probabilities, rec.labels)
    )
    assert rec.adapting  # adaptation is back on after the classifying pass


def test_short_files_are_read_once_and_a_bad_one_is_reported_once(tmp_path: Path, monkeypatch) -> None:
    import edge_ser.audio.stream as stream

    rec = Recognizer(_with_block(tmp_path), "numpy")
    paths = _files(tmp_path / "v", 3)
    bad = tmp_path / "v" / "bad.wav"
    bad.write_bytes(b"not a wav")
    reads: list[Path] = []
    read_windows = stream.file_windows

    def counting(
        path, *args, **kw
    ):  # every reader of a file's windows (the kind's, and the pauses cut's) is here
        reads.append(Path(path))
        return read_windows(path, *args, **kw)

    monkeypatch.setattr(stream, "file_windows", counting)
    skipped: list[Path] = []
    out = list(
        rec.iter_predict_files([*paths, bad], on_bad_file=lambda p, e: skipped.append(p), learn_first=True)
    )
    assert len(out) == 3 and skipped == [bad]
    assert sorted(reads.count(p) for p in paths) == [1, 1, 1]  # features kept from the learning pass
    with pytest.raises(AudioFormatError):
        list(rec.iter_predict_files([bad], learn_first=True))


def test_a_long_file_damaged_part_way_teaches_nothing(tmp_path: Path) -> None:
    """The first pass kept the windows read before a NaN at 35 s (11 clips) of a file then reported as skipped:
    the other files were classified with them, and a speaker file saved them (enroll_file already rolled back)."""
    b = _with_block(tmp_path)
    good = _files(tmp_path / "v", 2)
    y = np.concatenate([_voice(i, 3.0) for i in range(12)]).astype(np.float32)  # 36 s: read in 3 s windows
    y[SR * 35] = np.nan
    bad = write_wav(tmp_path / "long.wav", y, SR, subtype="FLOAT")
    rec = Recognizer(b, "numpy")
    skipped = []
    got = list(
        rec.iter_predict_files([bad, *good], learn_first=True, on_bad_file=lambda p, e: skipped.append(p))
    )
    assert skipped == [bad] and rec.speaker_clips == 2 and not rec.enrolled(bad)
    alone = Recognizer(b, "numpy").predict_files(good, learn_first=True)
    for a, z in zip(got, alone, strict=True):
        assert a.probabilities == pytest.approx(z.probabilities, abs=1e-9)


def test_a_bundle_that_does_not_adapt_is_unchanged(tmp_path: Path) -> None:
    paths = _files(tmp_path / "v", 2)
    plain = Recognizer(SHIPPED, "numpy")
    assert [p.probabilities for p in plain.predict_files(paths, learn_first=True)] == [
        p.probabilities for p in plain.predict_files(paths)
    ]
    fixed = Recognizer(_with_block(tmp_path), "numpy", adapt=False)
    fixed.predict_files(paths, learn_first=True)
    assert fixed.speaker.clips == 0  # adapt=False: the prior stays


def _records(tmp_path: Path):
    from converters.data.records import Record

    records = []
    for i, spk in enumerate(["a", "a", "a", "b", "b"]):
        path = tmp_path / f"{spk}{i}.wav"
        write_wav(path, _voice(i), SR)
        records.append(Record(path, "happy", spk, "synthetic", "happy"))
    return records


def test_eval_modes(tmp_path: Path) -> None:
    from converters.evaluate import _sessions, evaluate

    b = _with_block(tmp_path)
    records = _records(tmp_path)
    rec = Recognizer(b, "numpy")
    # all: each speaker's files learnt first, then classified: every file of a speaker sees the same statistics
    got = {}
    calls = []
    real = Recognizer.iter_predict_files

    def spy(self, paths, **kw):
        for p in real(self, paths, **kw):
            calls.append((p.source, self.speaker.clips))
            got[p.source] = p
            yield p

    rec.iter_predict_files = spy.__get__(rec)
    report = evaluate(rec, records, data="synthetic", selection="all", adapt="all")
    assert report.to_dict()["files"]["scored"] == 5
    assert [c for _, c in calls] == [
        3,
        3,
        3,
        2,
        2,
    ]  # a's three, then (reset) b's two, learnt before classifying
    ref = Recognizer(b, "numpy")
    for r in records[:3]:
        ref.enroll_file(r.source)
    with ref.frozen_speaker():
        want = ref.predict_file(records[0].source).probabilities
    assert np.allclose(
        _log_p(got[str(records[0].source)].probabilities, rec.labels), _log_p(want, rec.labels), atol=1e-4
    )
    # online: each speaker's files in an order seeded by the seed and the speaker; off: one group, the prior
    orders = [[str(r.source) for g in _sessions(rec, records, "online", s) for r in g] for s in range(6)]
    assert orders[0] == [str(r.source) for g in _sessions(rec, records, "online", 0) for r in g]
    assert len({tuple(o) for o in orders}) > 1 and all(sorted(o) == sorted(orders[0]) for o in orders)
    assert [len(g) for g in _sessions(rec, records, "online", 0)] == [3, 2]
    assert [len(g) for g in _sessions(rec, records, "off", 0)] == [5]
    with pytest.raises(ConfigError, match="adapt must be one of"):
        _sessions(rec, records, "sometimes", 0)


def test_the_commands_take_adapt(tmp_path: Path, capsys) -> None:
    from edge_ser.cli import main

    b = _with_block(tmp_path)
    paths = _files(tmp_path / "v", 3)

    def probs(*extra: str, files=paths) -> list[np.ndarray]:
        assert main(["predict", str(b), *map(str, files), "--engine", "numpy", "--json", *extra]) == 0
        rows = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
        labels = sorted(rows[0]["probabilities"])
        return [_log_p(r["probabilities"], labels) for r in rows]

    default, online = probs(), probs("--adapt", "online")
    assert np.allclose(default, probs("--adapt", "all")) and np.allclose(default[-1], online[-1], atol=1e-4)
    assert np.allclose(default[::-1], probs(files=paths[::-1]), atol=1e-4)  # the order does not matter
    assert not np.allclose(default[0], online[0])
    off = probs("--adapt", "off")
    assert np.allclose(probs("--no-adapt"), off) and np.allclose(probs("--no-adapt", "--adapt", "off"), off)
    assert main(["predict", str(b), str(paths[0]), "--engine", "numpy", "--no-adapt", "--adapt", "all"]) != 0
    assert "--adapt all and --no-adapt ask for opposite things" in capsys.readouterr().err
    # eval on a folder-per-class tree: the selection line says how the speakers were met
    for i, p in enumerate(paths):
        (tmp_path / "set" / "happy").mkdir(parents=True, exist_ok=True)
        (tmp_path / "set" / "happy" / f"s{i % 2}_{i}.wav").write_bytes(p.read_bytes())
    for mode, said in [
        ("all", "from all of each speaker's files"),
        ("online", "order seeded 3"),
        ("off", "prior"),
    ]:
        rc = main(
            ["eval", str(b), "--data", str(tmp_path / "set"), "--engine", "numpy", "--json"]
            + ["--adapt", mode, "--seed", "3"]
        )
        assert rc == 0
        assert said in json.loads(capsys.readouterr().out)["selection"]


def test_the_first_pass_reports_progress_and_predict_names_files_apart(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """`predict --adapt all` showed nothing until every file had been learnt (42 s for EMODB's 535 files); two
    files of one name in class folders (angry/take1.wav, sad/take1.wav) printed the same name."""
    import sys

    from edge_ser.cli import main
    from edge_ser.cli.predict import display_names

    b = _with_block(tmp_path)
    paths = _files(tmp_path / "angry", 2) + _files(tmp_path / "sad", 1)
    calls: list[tuple[int, int]] = []
    got = list(
        Recognizer(b, "numpy").iter_predict_files(
            paths, learn_first=True, progress=lambda *a: calls.append(a)
        )
    )
    assert len(got) == 3 and calls == [(1, 3), (2, 3), (3, 3)]
    assert display_names(paths) == {str(p): f"{p.parent.name}/{p.name}" for p in paths}
    assert display_names(paths[:2]) == {str(p): p.name for p in paths[:2]}
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["predict", str(b), str(tmp_path / "angry"), str(tmp_path / "sad"), "--engine", "numpy"]) == 0
    out, err = capsys.readouterr()
    # one line per file, named apart, with the top 3 the API's learn-first pass gave it
    expected = [
        f"  {p.parent.name}/{p.name}: " + ", ".join(f"{lab} {q:.2f}" for lab, q in r.top(3))
        for p, r in zip(paths, got, strict=True)
    ]
    lines = [line for line in out.splitlines() if line.startswith("  ") and not line.startswith("  (")]
    assert [line.split("  [")[0] for line in lines] == expected, out
    assert "learning the speaker from every file first: 3/3\n" in err


def test_names_apart_with_a_relative_and_an_absolute_path(tmp_path: Path, monkeypatch) -> None:
    """Two take1.wav, one given relative and one absolute: os.path.commonpath raised ValueError (a traceback)."""
    from edge_ser.cli.predict import display_names

    for d in ("d1", "d2"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "take1.wav").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    names = display_names([Path("d1/take1.wav"), tmp_path / "d2" / "take1.wav"])
    assert sorted(names.values()) == ["d1/take1.wav", "d2/take1.wav"]
