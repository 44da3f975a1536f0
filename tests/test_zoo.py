"""The model zoo: classical baselines, segment-level LMS training, the zoo objective and `edge-ser zoo`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from converters.classical import fit_classical
from converters.data.splits import Split
from converters.lms_train import ClipSet, SpecAugment, patch_set, train_lms, vote_accuracy
from converters.models import squeezenet_lms
from converters.quant.bitplan import BitPlan
from converters.quant.laq import sensitivity_allocation
from converters.train import TrainConfig, train_classifier
from converters.zoo import ZooPoint, run_point, split_for
from converters.zoo_cli import comparison_table, parse_sets, zoo_points
from edge_ser.errors import ConfigError
from edge_ser.inputs.patches import LMSSpec

REPO = Path(__file__).resolve().parents[1]


def blobs(n_per: int = 40, d: int = 12, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (k, d))
    X = np.concatenate([c + rng.normal(0, 1, (n_per, d)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(k), n_per)


@pytest.mark.parametrize("kind", ["rf", "svm"])
def test_classical_baselines_learn_and_report_their_size(kind: str) -> None:
    X, y = blobs()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    tr, va, te = order[:80], order[80:100], order[100:]
    fit = fit_classical(kind, X[tr], y[tr], X[va], y[va], seed=0)
    assert fit.accuracy(X[te], y[te]) > 0.9
    assert len(fit.val_scores) >= 2 and fit.choice in [
        {k: v for k, v in s.items() if k != "val_acc"} for s in fit.val_scores
    ]
    est = fit.pipeline[-1]
    if kind == "svm":
        assert fit.stored_values == est.support_vectors_.size + est.dual_coef_.size + est.intercept_.size
    else:
        assert fit.stored_values > 2 * len(est.estimators_)  # at least a split per tree
    with pytest.raises(ConfigError, match="rf"):
        fit_classical("knn", X[tr], y[tr], X[va], y[va])


def test_spec_augment_masks_bands_and_spans_with_the_patch_mean() -> None:
    x = torch.randn(8, 1, 40, 30)
    aug = SpecAugment(freq_masks=1, freq_width=0.2, time_masks=1, time_width=0.2)
    a = aug(x, torch.Generator().manual_seed(0))
    b = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    changed = a != x
    assert changed.any()
    mean = x.mean(dim=(1, 2, 3))
    for i in range(8):
        rows = changed[i, 0].all(dim=1).sum().item()  # whole masked mel rows
        assert rows <= round(0.2 * 40)
        assert torch.allclose(a[i][changed[i]], mean[i].expand(int(changed[i].sum())))


def tone_clips(n_per: int = 12, sr: int = 8000, seed: int = 0) -> ClipSet:
    """Two classes a CNN must tell apart from the spectrogram: a low and a high tone in noise, 0.5 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(sr // 2) / sr
    clips, y = [], []
    for label, (lo, hi) in enumerate(((200, 400), (1800, 2600))):
        for _ in range(n_per):
            f = rng.uniform(lo, hi)
            clips.append(
                (0.5 * np.sin(2 * np.pi * f * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
            )
            y.append(label)
    spk = tuple(f"s{i % 4}" for i in range(len(y)))
    return ClipSet("tones", tuple(clips), np.array(y), ("low", "high"), spk, sr)


def test_segment_training_votes_per_utterance_and_learns_tones() -> None:
    clips = tone_clips()
    spec = LMSSpec(
        sample_rate=8000,
        n_mels=32,
        win_length=200,
        hop_length=80,
        n_fft=256,
        segment_frames=32,
        segment_hop=16,
    )
    ps = patch_set(clips, spec)
    assert ps.X.shape[1:] == (1, 32, 32) and ps.patches_per_clip >= 2
    assert patch_set(clips, spec) is ps  # cached
    idx = np.arange(len(clips))
    split = Split(idx[idx % 4 != 3][::2], idx[idx % 4 != 3][1::2], idx[idx % 4 == 3])
    torch.manual_seed(0)
    model = squeezenet_lms(n_mels=32, segment_frames=32, num_classes=2, width=0.25)
    run = train_lms(model, ps, split, TrainConfig(epochs=12, patience=12, batch_size=16, threads=1, lr=3e-3))
    assert run.test_acc >= 0.9 and 0 <= run.test_segment_acc <= 1
    assert float(model.std) != 1.0  # normalisation set from the training patches
    # the validation accuracy that chose the epoch is the utterance vote, not the patch accuracy
    logits = np.zeros((4, 2))
    logits[[0, 1, 2], 0] = 5.0
    assert vote_accuracy(logits, np.array([0, 0, 1, 1]), np.array([0, 1])) == 0.5


def test_channels_last_training_is_deterministic_and_returns_a_default_layout_model() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 1, 28, 28)).astype(np.float32)
    y = (X[:, 0, :14].mean(axis=(1, 2)) > X[:, 0, 14:].mean(axis=(1, 2))).astype(np.int64)
    cfg = TrainConfig(epochs=2, patience=2, batch_size=16, threads=1, channels_last=True)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = squeezenet_lms(n_mels=28, segment_frames=28, num_classes=2, width=0.25)
        res = train_classifier(m, X[:32], y[:32], X[32:], y[32:], cfg, progress=False)
        w = res.model.features[0].weight
        assert w.is_contiguous()
        outs.append(w.detach().clone())
    assert torch.equal(outs[0], outs[1])


def test_lazy_sensitivity_greedy_matches_the_exact_one_when_costs_only_rise() -> None:
    """A separable loss (each layer's term depends on its own bits only): lowering one layer never changes
    another's cost, so the lazy greedy must pick the same plan, with far fewer loss evaluations."""
    params = {f"l{i}": 100 * (i + 1) for i in range(6)}
    weight = {f"l{i}": 0.1 * (i + 1) ** 1.5 for i in range(6)}
    start = BitPlan({n: 32 for n in params}, params, "sensitivity")
    calls = {"n": 0}

    def loss_of(p: BitPlan) -> float:
        calls["n"] += 1
        return sum(weight[n] * 2.0 ** (-p.bits[n]) for n in params)

    exact, _ = sensitivity_allocation(start, loss_of, 2.0)
    n_exact, calls["n"] = calls["n"], 0
    lazy, _ = sensitivity_allocation(start, loss_of, 2.0, lazy=True)
    assert lazy.bits == exact.bits and lazy.average_bits <= 2.0 + 1e-9
    assert calls["n"] < n_exact / 2


def test_zoo_points_validate_their_keys() -> None:
    with pytest.raises(ConfigError, match="unknown point keys"):
        ZooPoint.from_point({"model": "rf", "mels": 64})
    with pytest.raises(ConfigError, match="not one of"):
        ZooPoint.from_point({"model": "resnet"})
    with pytest.raises(ConfigError, match="no weights"):
        ZooPoint.from_point({"model": "svm", "laq": "sensitivity@1.75"})
    pts = zoo_points(["svm", "laq_mlp"], "loso", [0, 1], {"data": "emodb"}, laq="sensitivity@1.75")
    assert [p["fold"] for p in pts] == [0, 1, 0, 1]
    assert "laq" not in pts[0] and pts[2]["laq"] == "sensitivity@1.75" and pts[2]["epochs"] == 300
    assert parse_sets(["width=0.5", "augment=false", "data=emodb"]) == {
        "width": 0.5,
        "augment": False,
        "data": "emodb",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_sets(["width"])
    # review: `--set epochs=abc` failed every point alone (TypeError), each failure stored and kept
    for bad, says in [("epochs=abc", "epochs='abc' must be int"), ("augment=1", "augment=1 must be bool"),
                      ("lr=true", "lr=True must be float"), ("root=3", "root=3 must be str or None")]:  # fmt: skip
        with pytest.raises(ConfigError, match=re.escape(says)):
            zoo_points(["laq_mlp"], "random", [0], parse_sets([bad]))
    assert zoo_points(["laq_mlp"], "random", [0], parse_sets(["lr=1", "level_dbfs=-26", "sample_rate=null"]))


@pytest.mark.parametrize(
    ("model", "item", "says"),
    [
        ("small_cnn", "T=5000", "segment_frames: must be between 1 and 4096, got 5000"),
        ("squeezenet_lms", "n_fft=100", "n_fft: must be between"),
        ("rf", "sample_rate=0", "FeatureSpec: sample_rate: must be between"),
        ("laq_mlp", "level_dbfs=10", "level_dbfs: must be between"),
    ],
)
def test_a_zoo_front_end_value_out_of_range_is_refused_before_any_point_runs(
    tmp_path, capsys, model, item, says
):
    """Review: `zoo --set T=5000` (or a sweep point's) trained nothing but failed every point alone, each failure
    stored and kept, exit 1; the point's front end is now built with the point, so it is one line, exit 2,
    nothing written."""
    from edge_ser.cli import main

    with pytest.raises(ConfigError, match=re.escape(says)):
        ZooPoint.from_point({"model": model, **parse_sets([item])})
    out = tmp_path / "runs"
    argv = ["zoo", "--data", "synthetic", "--models", model, "--seeds", "1", "--set", item, "--out", str(out)]
    assert main([*argv, "-q", "--backend", "serial"]) == 2
    assert says in capsys.readouterr().err and not out.exists()


def test_comparison_table_aggregates_per_model() -> None:
    rows = [
        {"model": "svm", "acc": 0.6, "uar": 0.5, "params": 10},
        {
            "model": "svm",
            "acc": 0.8,
            "params": 10,
        },  # stored before the zoo computed UAR: left out of its mean
        {
            "model": "squeezenet_lms",
            "acc": 0.7,
            "params": 5,
            "flops": 100,
            "utterance_flops": 1600,
            "laq_acc": 0.65,
            "bits": 1.7,
            "packed_kb": 12.5,
            "latency_ms": 0.2,
        },
        {"model": "svm", "error": "boom"},
    ]
    t = comparison_table(rows).splitlines()
    assert "| UAR % |" in t[0] and "| LAQ UAR % |" in t[0]
    assert t[2].startswith("| svm | features | 70.00 ± 14.14 | 50.00 ± 0.00 | 2 | 10 |")
    assert (
        "| squeezenet_lms | log-Mel | 70.00 ± 0.00 | - | 1 | 5 | 100 | 1,600 | 65.00 ± 0.00 | - | 1.70 | 12.5 | 0.200 |"
        in t[3]
    )


def test_loso_split_leaves_one_speaker_out(emodb_dir: Path) -> None:
    from converters.lms_train import load_clips

    clips = load_clips("emodb", str(emodb_dir))
    assert len(clips) == 535 and clips.sample_rate == 16000 and len(set(clips.speakers)) == 10
    spk = np.array(clips.speakers)
    for fold in (0, 9):
        sp, where = split_for(ZooPoint("svm", split="loso", fold=fold), clips.y, clips.speakers)
        left, val = set(spk[sp.test]), sorted(set(spk[sp.val]))
        assert (
            len(left) == 1
            and where == f"speaker {left.pop()} left out, validation speaker(s) {', '.join(val)}"
        )
        assert not set(spk[sp.test]) & set(spk[sp.train]) and not set(spk[sp.val]) & set(spk[sp.train])
    with pytest.raises(ConfigError, match="has 10 speakers; loso fold 10 needs at least 11"):
        split_for(ZooPoint("svm", split="loso", fold=10), clips.y, clips.speakers)


def test_zoo_point_trains_compresses_bundles_and_times_a_patch_model(emodb_dir: Path, tmp_path: Path) -> None:
    """The whole patch-model path on real EMODB at a toy size: train, LAQ at <= 2 bits, bundle, latency."""
    from edge_ser.bundle import load_bundle

    p = ZooPoint(
        "squeezenet_lms",
        root=str(emodb_dir),
        M=32,
        L=400,
        H=320,
        n_fft=512,
        T=32,
        seg_hop=32,
        width=0.25,
        epochs=1,
        patience=1,
        qat_epochs=1,
        laq="sensitivity@1.75",
        calibration=64,
    )
    r = run_point(p, bundle_out=tmp_path / "b")
    assert 0 <= r["acc"] <= 1 and 0 <= r["laq_acc"] <= 1 and r["bits"] <= 1.75 + 1e-9
    assert r["params"] == sum(
        x.numel() for x in squeezenet_lms(n_mels=32, segment_frames=32, width=0.25).parameters()
    )
    b = load_bundle(tmp_path / "b")
    assert b.manifest["lms_input"]["n_mels"] == 32 and b.manifest["zoo_point"]["laq"] == "sensitivity@1.75"
    assert r["packed_kb"] == pytest.approx((tmp_path / "b" / "weights.esq").stat().st_size / 1000)
    assert r["latency_ms"] > 0 and r["utterance_latency_ms"] > 0 and r["bundle_flops"] >= r["flops"]


def test_edge_ser_zoo_prints_the_table_and_resumes(emodb_dir: Path, tmp_path: Path) -> None:
    env_cache = {"EDGE_SER_CACHE": str(tmp_path / "cache")}
    cmd = [
        sys.executable,
        "-m",
        "edge_ser",
        "zoo",
        "--models",
        "svm,rf",
        "--seeds",
        "2",
        "--root",
        str(emodb_dir),
        "--out",
        str(tmp_path / "out"),
        "--backend",
        "serial",
        "-q",
    ]
    import os

    env = {**os.environ, **env_cache, "PYTHONPATH": str(REPO)}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "| svm | features |" in first.stdout and "| rf | features |" in first.stdout
    lines = (tmp_path / "out" / "zoo-emodb-random.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["metrics"]["acc"] > 0.4 for x in lines)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and again.stdout == first.stdout
    assert len((tmp_path / "out" / "zoo-emodb-random.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize("name", ["squeezenet_lms", "small_cnn", "tiny_transformer"])
def test_edge_ser_model_prints_the_patch_models(name: str, capsys) -> None:
    from converters.models.counts import count_model, count_params
    from converters.registry import build
    from edge_ser.cli import main

    assert main(["model", name, "--width", "0.5", "--frames", "128"]) == 0
    out = capsys.readouterr().out
    m = build(name, num_classes=7, width=0.5, segment_frames=128, n_mels=128)
    assert f"{count_params(m):,} parameters" in out and "per log-Mel patch" in out
    assert f"{count_model(m).dense_flops / 1e9:.4f} GFLOPs" in out


def test_zoo_on_a_folder_refuses_unnamed_speakers_first_and_recomputes_when_the_files_change(
    tmp_path, capsys
):
    """LOSO on a folder where some files name no speaker was refused once per fold, each refusal stored as a
    failed point and replayed after the files were fixed; and a fixed folder replayed the old folder's results
    (points were keyed by the folder's name only). Now the refusal comes before any point, and a point's id holds
    a fingerprint of the files."""
    from converters.data.synthetic import SyntheticSpec, generate
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    data = tmp_path / "mine"
    spec = SyntheticSpec(n_per_class=4, n_speakers=4, labels=("neutral", "sad", "angry"), duration=1.0)
    for i, (wave, label, speaker) in enumerate(generate(spec)):
        write_wav(
            data / label / f"{speaker}_{i:03d}.wav" if i else data / label / "noname.wav", wave, spec.sr
        )
    out = tmp_path / "runs"
    args = [
        "zoo",
        "--data",
        str(data),
        "--split",
        "loso",
        "--folds",
        "3",
        "--models",
        "rf",
        "--out",
        str(out),
        "-q",
    ]
    with pytest.warns(Warning, match="name no speaker"):
        assert main(args) == 2
    assert "1 of 12 files name no speaker" in capsys.readouterr().err and not out.exists()
    (data / "neutral" / "noname.wav").rename(data / "neutral" / "s00_named.wav")
    assert main(args) == 0
    runs = out / "zoo-mine-loso.jsonl"
    assert len(runs.read_text().splitlines()) == 3
    (data / "sad" / next(p.name for p in (data / "sad").iterdir())).unlink()  # the data set changed
    assert main(args) == 0
    assert len(runs.read_text().splitlines()) == 6  # computed again, not replayed


def test_zoo_loso_on_a_folder_leaves_out_every_speaker_by_default(tmp_path) -> None:
    """Review: `zoo --split loso` on a folder of 8 speakers stopped with '--folds 10: ... has 8 speakers'; the
    default is now every speaker."""
    from converters.data.synthetic import SyntheticSpec, generate
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    data = tmp_path / "mine"
    spec = SyntheticSpec(n_per_class=3, n_speakers=3, labels=("neutral", "sad"), duration=1.0)
    for i, (wave, label, speaker) in enumerate(generate(spec)):
        write_wav(data / label / f"{speaker}_{i:03d}.wav", wave, spec.sr)
    out = tmp_path / "runs"
    args = ["zoo", "--data", str(data), "--split", "loso", "--models", "rf", "--out", str(out), "-q"]
    assert main(args) == 0
    assert len((out / "zoo-mine-loso.jsonl").read_text().splitlines()) == 3


def test_the_default_output_folders_are_not_in_the_repository() -> None:
    """`edge-ser zoo` run from the repository's root wrote runs/zoo/ there, untracked and unignored (out/, the
    default of train, laq and demo, is ignored): a user's runs on their own data showed in `git status`."""
    import argparse

    from converters.zoo_cli import add_zoo_args

    repo = Path(__file__).resolve().parents[1]
    ignored = {line.strip() for line in (repo / ".gitignore").read_text().splitlines()}
    p = argparse.ArgumentParser()
    add_zoo_args(p)
    defaults = [p.parse_args([]).out, Path("out/train"), Path("out/laq"), Path("out/demo")]
    assert all(f"/{Path(d).parts[0]}/" in ignored for d in defaults), defaults


@pytest.mark.parametrize("data", ["emodb-typo", "nowhere/mine"])
def test_zoo_refuses_a_data_set_it_cannot_find_before_any_point(data, tmp_path, capsys) -> None:
    """Review: `zoo --data <typo>` (random split) ran every point, each failing on the data and stored as a failed
    point that later runs kept, then exited 1; now the data set is listed first, one error, nothing written."""
    from edge_ser.cli import main

    out = tmp_path / "runs"
    assert (
        main(["zoo", "--data", str(tmp_path / data), "--models", "rf", "--seeds", "2", "--out", str(out)])
        == 2
    )
    err = capsys.readouterr().err
    assert "neither a data set name" in err and err.count("\n") == 1 and not out.exists()


def test_zoo_set_help_lists_the_point_keys(capsys):
    """`--set`'s help said only "a ZooPoint field"; the keys were in no help (a review)."""
    import dataclasses

    from converters.zoo import ZooPoint
    from edge_ser.cli import main

    with pytest.raises(SystemExit):
        main(["zoo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    from converters.zoo_cli import SET_BY_OPTIONS

    keys = [f.name for f in dataclasses.fields(ZooPoint) if f.name not in SET_BY_OPTIONS and f.name != "fold"]
    assert f"one of: {', '.join(keys)}" in text


def test_zoo_refuses_a_model_listed_twice_before_any_work(tmp_path, capsys) -> None:
    """Review: `zoo --models rf,rf` failed after listing the data with "grid point {...} appears twice"; now one
    line naming --models and the repeated model, before the data set is read."""
    from edge_ser.cli import main

    out = tmp_path / "runs"
    args = ["zoo", "--data", str(tmp_path / "nowhere"), "--models", "rf,svm, rf", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--models" in err and "rf listed twice" in err and "grid point" not in err
    assert err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize(
    ("split", "item", "option"),
    [
        ("random", "seed=3", "--seeds"),
        ("random", "fold=2", "--split loso --folds"),
        ("loso", "fold=2", "--folds"),
        ("random", "split=loso", "--split"),
        ("random", "model=svm", "--models"),
        ("random", "data=emodb", "--data"),
        ("random", "laq=sensitivity@2", "--laq"),
    ],
)
def test_zoo_refuses_a_set_of_a_key_its_options_give(tmp_path, capsys, split, item, option) -> None:
    """Review: `zoo --set split=loso` ran ten copies of LOSO fold 0 under the title "10 random 80/10/10 splits",
    `--set seed=3` (random splits) was "grid point ... appears twice" and `--set fold=2` on random splits did
    nothing. A --set of a key an option gives is now refused naming that option, before the data is read."""
    from edge_ser.cli import main

    out = tmp_path / "runs"
    argv = ["zoo", "--data", str(tmp_path / "nowhere"), "--models", "rf", "--split", split, "--set", item]
    assert main([*argv, "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"--set {item.partition('=')[0]}: given by {option}" in err and "nowhere" not in err, err
    assert not out.exists()


def test_zoo_takes_a_seed_on_loso_folds() -> None:
    from converters.zoo_cli import check_sets

    check_sets({"seed": 1, "epochs": 3}, "loso")


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("epochs=0", "zoo: epochs=0 must be an integer >= 1"),
        ("patience=0", "zoo: patience=0 must be an integer >= 1"),
        ("batch=0", "zoo: batch=0 must be an integer >= 1"),
        ("qat_epochs=-1", "zoo: qat_epochs=-1 must be an integer >= 0"),
        ("calibration=0", "zoo: calibration=0 must be an integer >= 1"),
        ("lr=0", "zoo: lr=0 must be > 0"),
    ],
)
def test_a_zoo_training_value_that_cannot_train_is_refused_before_any_point_runs(item, says) -> None:
    """Review: `--set epochs=0` reported the untrained model's figures as a trained one's, `batch=0` failed
    every point alone after its features were made (ZeroDivisionError), `patience=0` trained one epoch."""
    with pytest.raises(ConfigError, match=re.escape(says)):
        zoo_points(["laq_mlp"], "random", [0], parse_sets([item]))
    assert zoo_points(["laq_mlp"], "random", [0], parse_sets(["qat_epochs=0"]))  # no QAT: as before
