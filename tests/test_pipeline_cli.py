"""The host job through the CLI: synthetic data -> cached features -> laq_mlp -> accuracy well above chance."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="training needs the host extra (torch)")

from edge_ser.cli import main  # noqa: E402


def test_demo_runs_the_pipeline_and_leaves_a_bundle(tmp_path: Path, capsys, monkeypatch) -> None:
    """The main job: train -> LAQ -> QAT -> bundle -> both device engines agree with torch."""
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet", "--threads", "1"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_clips"] == 210 and len(summary["classes"]) == 7
    # 7 balanced classes: chance is 1/7 = 0.143; the quantized model must still have learned the data
    assert summary["float_test_accuracy"] >= 0.4 and summary["qat_test_accuracy"] >= 0.4, summary
    assert summary["plan"]["average_bits"] <= 2.0
    for engine in ("onnxruntime", "numpy"):
        check = summary["engine_checks"][engine]
        assert check["same_class"] == 1.0 and check["max_rel_diff"] < 1e-4, (engine, check)
    assert (out / "bundle" / "manifest.json").is_file() and (out / "bitplan.json").is_file()
    captured = capsys.readouterr()
    printed = captured.out
    assert "device run on a held-out test clip" in printed and "(numpy: 1 file(s)" in printed
    # the clip is named by its whole path, one a user can give `edge-ser predict` (its name alone was in the cache)
    clip = re.search(r"device run on a held-out test clip \(true label: \w+; (.+\.wav)\):", printed)
    assert clip and Path(clip.group(1)).is_file(), printed
    # predict runs with its default --adapt: no note about an option the user never gave
    assert "changes nothing" not in captured.err
    # the live pipeline on the sample stream: 4 clips with pauses -> decisions and "silence" in the pauses
    from edge_ser.live.outputs.jsonl import read_jsonl

    live = read_jsonl(out / "live_sample.jsonl")
    assert len(live) >= 10 and any(r.label == "silence" for r in live) and any(r.speech for r in live)
    # the command it prints reproduces the stream's decisions: "(edge-ser run, files, fast)" alone ran run's 3 s
    # window and smoothing, 11 other decisions than the demo's 14 (a review)
    said = re.search(r"the same as:\n  (edge-ser run .*)\n", printed)
    assert said, printed
    again = tmp_path / "again.jsonl"
    assert main([*shlex.split(said.group(1))[1:], "--json", str(again)]) == 0
    assert [(r.t, r.label) for r in read_jsonl(again)] == [(r.t, r.label) for r in live]
    # and the roofline report of the demo bundle on this machine
    roof = json.loads((out / "roofline.json").read_text())
    assert roof["measured"] and roof["profile"] == "host" and roof["flops"] > 300_000
    # its "Made by" command makes this report: bench's default --runs is 300, the demo times 200 (it said no --runs)
    from edge_ser.cli import build_parser

    made = build_parser().parse_args(shlex.split(roof["command"])[1:])
    assert made.runs == roof["setup"]["timed runs"] == 200 and made.threads == 1, roof["command"]
    assert (out / "roofline.png").stat().st_size > 10_000
    # its latency is a median of the model's runs, said so: "per clip" read as the clip's whole cost (a review)
    assert "us per inference (onnxruntime, 1 thread, median of 200 runs)" in printed, printed
    # the training part's time is not the job's: "(6.5 s in all)" came before three more stages (a review)
    assert re.search(r"\nedge-ser demo: done in \d+\.\d s; its outputs are in ", printed), printed
    assert main(["info", str(out / "bundle")]) == 0
    assert "onnxruntime" in capsys.readouterr().out
    # second run, not quiet: every feature comes from the cache
    rc = main(["demo", "--out", str(out), "--cache", str(tmp_path / "cache"), "--epochs", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert re.search(r"summary\.json \(\d+\.\d s so far\)", printed), printed
    assert " s in all)" not in printed and "edge-ser demo: done in " in printed, printed
    # every stage numbered out of one total, in order: "[1/5]".."[5/5]" and three unnumbered ones followed (a review)
    numbers = re.findall(r"^\[(\d)/(\d)\] ", printed, re.M)
    assert numbers == [(str(n), "8") for n in range(1, 9)], printed
    # the engine checks leave out rows "out of range" and say of what (2 of seed 0's 21 test rows are)
    assert "out of range, a feature beyond +-20 training standard deviations" in printed, printed
    again = json.loads((out / "summary.json").read_text())
    assert (again["cache_hits"], again["cache_misses"]) == (210, 0)
    # a run stopped after its new bundle (a Ctrl-C in the live stage) left the last run's roofline beside it and the
    # JSON lines emptied, looking current (a review); they are gone once the new bundle is in place
    import converters.cli as ccli

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ccli, "_demo_live", stop)
    assert (
        main(["demo", "--out", str(out), "--cache", str(tmp_path / "cache"), "--epochs", "2", "--quiet"])
        == 130
    )
    assert (out / "bundle" / "manifest.json").is_file()
    assert not [n for n in ccli.DEMO_AFTER_BUNDLE if (out / n).exists()]


def test_demo_help_says_every_stage_and_file(capsys) -> None:
    """`edge-ser demo --help` said "train, LAQ, QAT, export a bundle, run it on the device engines" and stopped
    there: the live stream and the roofline report it runs, and the files it writes, went unsaid (a review)."""
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for said in (
        "live pipeline",
        "roofline",
        "live_sample.wav",
        "roofline.json",
        "summary.json",
        "bitplan.json",
    ):
        assert said in text, (said, text)


def test_demo_title_names_the_stages_of_its_own_run(tmp_path: Path, capsys, monkeypatch) -> None:
    """The title said "180-d features (cached) -> laq_mlp -> ... -> live pipeline -> roofline" whatever ran: for
    av_cnn on synthetic-av (faces and MFCC segments, no live stage), a --spec of another length, --no-cache."""
    import converters.commands as commands

    titles = []

    def stop(args, spec, *, title, steps):
        titles.append(title)
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "cmd_laq", stop)
    spec = tmp_path / "spec.json"
    spec.write_text('{"n_mfcc": 13, "n_mels": 64, "n_chroma": 12}')
    out = ["--out", str(tmp_path / "out")]
    assert main(["demo", *out, "--model", "av_cnn", "--data", "synthetic-av"]) == 130
    assert main(["demo", *out, "--spec", str(spec), "--no-cache"]) == 130
    assert main(["demo", *out]) == 130
    av, small, default = titles
    assert "av_cnn" in av and "laq_mlp" not in av and "live pipeline" not in av and "features" not in av, av
    assert "89-d features -> laq_mlp" in small and "cached" not in small, small
    assert "180-d features (cached) -> laq_mlp" in default and "live pipeline -> roofline" in default, default


def test_demo_numbers_its_stages_out_of_one_total() -> None:
    """Review: the demo numbered laq's steps [1/5]..[5/5], then ran a device run, a live stream and the roofline
    unnumbered; its stages are now [1/8]..[8/8] (an AV set, with no clips to run, [1/6]..[6/6])."""
    from converters.cli import demo_steps
    from converters.commands import LAQ_STEPS, step

    assert (LAQ_STEPS, demo_steps("synthetic"), demo_steps("emodb"), demo_steps("synthetic-av")) == (
        5,
        8,
        8,
        6,
    )
    assert [step(n, 8) for n in (1, 6, 8)] == ["[1/8]", "[6/8]", "[8/8]"]
    for n, total in ((0, 5), (9, 8)):
        with pytest.raises(ValueError):
            step(n, total)


def test_train_command(tmp_path: Path) -> None:
    out = tmp_path / "train"
    assert (
        main(["train", "--data", "synthetic", "--out", str(out), "--cache", str(tmp_path / "c"), "-q"]) == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.4 and (out / "model.pt").stat().st_size > 100_000
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == 210
    # the rows' files and speakers, so the split can be checked against `edge-ser data` (it held indices only)
    assert len(split["files"]) == 210 and set(split["files"][0]) == {"file", "speaker", "label"}
    test_speakers = {split["files"][i]["speaker"] for i in split["test"]}
    assert test_speakers and all(split["files"][i]["label"] for i in split["train"])


def test_features_and_data_commands(tmp_path: Path, capsys) -> None:
    synth = tmp_path / "synth"
    assert main(["synth", str(synth), "--n-per-class", "3", "--speakers", "2"]) == 0
    assert main(["data", str(synth)]) == 0
    assert "21 records" in capsys.readouterr().out
    npy = tmp_path / "X.npy"
    assert main(["features", str(synth), "--out", str(npy), "--cache", str(tmp_path / "c"), "-q"]) == 0
    import numpy as np

    assert np.load(npy).shape == (21, 180)
    assert len((tmp_path / "X.txt").read_text().split()) == 21


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["features", str(tmp_path / "missing.wav")]) == 2
    err = capsys.readouterr().err
    assert "missing.wav" in err and "no such file" in err
    bad = tmp_path / "bad.wav"
    bad.write_text("hello, not audio")
    assert main(["features", str(bad), "--no-cache", "-q"]) == 2
    assert "bad.wav" in capsys.readouterr().err
    assert main(["train", "--data", "nonesuch"]) == 2
    assert "nonesuch" in capsys.readouterr().err
    labels = tmp_path / "labels.txt"  # a list not named .csv: said to be a file (a review)
    labels.write_text("file,label,speaker\na.wav,angry,p1\n")
    assert main(["data", str(labels)]) == 2
    err = capsys.readouterr().err
    assert "it is a file: give the folder that holds one folder per class" in err and err.count("\n") == 1
    labels = labels.rename(tmp_path / "labels.csv")  # a labels CSV is read: its wrong column is said
    assert main(["data", str(labels)]) == 2
    err = capsys.readouterr().err
    assert f"{labels} needs a header row with columns path,label[,speaker]; no column 'path'" in err
    assert main(["train", "--data", "nonesuch"]) == 2
    assert "it is a file" not in capsys.readouterr().err
    spec = tmp_path / "spec.json"
    spec.write_text('{"n_mfccs": 3}')
    assert main(["features", str(bad), "--spec", str(spec)]) == 2
    assert "unknown field" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["train", "--data", "synthetic", "--epochs", "0"], "argument --epochs: 0 must be >= 1"),
        (["train", "--data", "synthetic", "--n-per-class", "0"], "argument --n-per-class: 0 must be >= 1"),
        (["train", "--data", "synthetic", "--threads", "-1"], "argument --threads: -1 must be >= 1"),
        (["laq", "--data", "synthetic", "--budget", "-1"], "argument --budget: -1 must be in 1..8"),
        (["laq", "--data", "synthetic", "--t-margin", "nan"], "argument --t-margin: nan must be in 0..1"),
        (["model", "laq_mlp", "--classes", "0"], "argument --classes: 0 must be >= 2"),
        (["model", "tiny_transformer", "--frames", "0"], "argument --frames: 0 must be >= 16"),
        (["zoo", "--seeds", "0"], "argument --seeds: 0 must be >= 1"),
        (["synth", "out", "--duration", "0.1"], "argument --duration: 0.1 must be in 0.5..30"),
        (["synth", "out", "--sr", "100"], "argument --sr: 100 must be in 8000..96000"),
    ],
)
def test_bad_option_values_stop_before_any_work(args, says, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_output_and_data_mistakes_are_found_first(tmp_path: Path, capsys) -> None:
    """An --out that cannot be made fails before training (it failed after, with a traceback); FER-2013 is not
    speech; a face model's layers print like the others'."""
    (tmp_path / "afile").write_text("")
    assert main(["train", "--data", "synthetic", "--out", str(tmp_path / "afile" / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "cannot make this folder" in err
    assert main(["laq", "--data", "fer2013", "--out", str(tmp_path / "run"), "-q"]) == 2
    assert "holds face images, not speech" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "afile" / "x")]) == 2  # an OSError: one line, the path named
    assert "afile" in capsys.readouterr().err
    assert main(["model", "face_cnn"]) == 0
    out = capsys.readouterr().out
    assert "per face crop" in out
    # its figures are the model's: parameters and dense FLOPs counted on it, the layer rows' FLOPs summing to them
    from converters.models.counts import count_model, count_params
    from converters.registry import build

    m = build("face_cnn", num_classes=7)
    assert f"total: {count_params(m):,} parameters" in out, out
    assert f"{count_model(m).dense_flops / 1e9:.4f} GFLOPs" in out, out
    rows = [line.split() for line in out.splitlines() if re.match(r"  \S+ +(Conv|Gemm|MatMul) ", line)]
    assert sum(int(r[-1].replace(",", "")) for r in rows) == count_model(m).dense_flops, out
    # the parameters no row lists (its batch norms') are said, so the column adds up to the total with them
    unlisted = count_params(m) - sum(int(r[-2].replace(",", "")) for r in rows)
    assert unlisted > 0 and f"; {unlisted:,} of them in layers the table leaves out" in out, out
    from converters.data import SyntheticSpec, write

    clip = write(SyntheticSpec(n_per_class=1, labels=("happy",)), tmp_path / "synth")[0].source
    with pytest.raises(SystemExit) as e:  # refused as the options are read: not "undecodable audio" later
        main(["features", str(clip), "--cache", str(tmp_path / "afile")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --cache" in err
    assert "feature cache" in err and "--no-cache" in err and "skipped" not in err


@pytest.mark.parametrize("command", ["train", "laq", "demo"])
def test_an_out_folder_that_takes_no_file_is_refused_before_training(command, capsys) -> None:
    """An --out that exists but takes no file (read-only; /proc here, which refuses root too) was found after
    the whole training: "[Errno 30] Read-only file system: '.../.bundle.build-N'" (a review)."""
    tiny = ["--n-per-class", "3", "--epochs", "1", *(["--tflite", "no"] if command != "train" else [])]
    assert main([command, "--data", "synthetic", "--out", "/proc", "-q", *tiny]) == 2
    captured = capsys.readouterr()
    assert "--out /proc/summary.json: cannot write there" in captured.err, captured.err
    assert "[1/" not in captured.out


def test_synthetic_root_of_other_files_is_refused_before_writing_into_it(tmp_path: Path, capsys) -> None:
    """`--data synthetic --root DIR` wrote the set's clips and spec.json into a folder of the user's own
    recordings (which `edge-ser synth` refuses), and then trained on them (a review)."""
    mine = tmp_path / "my_recordings"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    tiny = ["--n-per-class", "3", "--epochs", "1", "--tflite", "no", "-q"]
    args = ["demo", "--data", "synthetic", "--root", str(mine), "--out", str(tmp_path / "out"), *tiny]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--root {mine}: holds other files and no synthetic data set" in err, err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_written_synthetic_root_says_which_options_it_overrides(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """`--data synthetic --root DIR` with a set `edge-ser synth` wrote trains on that set: --n-per-class and the
    clips' --seed changed nothing, without a word (a review)."""
    import converters.commands as commands
    from converters.data import SyntheticSpec
    from converters.data import write as write_synthetic

    root = tmp_path / "synth"
    write_synthetic(SyntheticSpec(n_per_class=2, n_speakers=2, duration=0.5, sr=8000), root)

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "_task", stop)
    base = ["demo", "--data", "synthetic", "--root", str(root), "--out", str(tmp_path / "out"), "-q"]
    assert main([*base, "--n-per-class", "5", "--seed", "3"]) == 130
    err = capsys.readouterr().err
    assert "--n-per-class 5 is ignored here" in err and "of 2 clips per class" in err, err
    assert "--seed 3 seeds the split, the weights and the batches, not the clips" in err, err
    # what matches the set, or was not given, draws no note
    assert main([*base, "--n-per-class", "2"]) == 130
    assert "note" not in capsys.readouterr().err


def test_same_seed_same_model(tmp_path: Path) -> None:
    """A run is reproducible: same data, seed and threads give bit-identical weights and accuracy."""
    import torch

    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        args = [
            "train",
            "--data",
            "synthetic",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
            "-q",
            "--threads",
            "1",
            "--epochs",
            "15",
        ]
        assert main(args) == 0
        state = torch.load(out / "model.pt", weights_only=False)["state_dict"]
        runs.append((json.loads((out / "summary.json").read_text())["test_accuracy"], state))
    assert runs[0][0] == runs[1][0]
    for name, tensor in runs[0][1].items():
        assert torch.equal(tensor, runs[1][1][name]), name


def test_recipes_are_checked_before_training(tmp_path: Path, capsys) -> None:
    """A recipe compress would refuse is refused before the float model trains (zoo trained every point first)."""
    from converters.compress import check_recipe

    for good in ("fp32", "qat-2", "ptq-8", "sensitivity", "sensitivity@1.75", "laq-paper@0.05"):
        assert check_recipe(good) == good
    out = str(tmp_path / "run")
    for bad, says in (("qat-9", "unknown recipe"), ("sensitivity@9", "in 1..8"), ("laq-qat@x", "a number")):
        assert main(["laq", "--data", "synthetic", "--recipe", bad, "--out", out, "-q"]) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["zoo", "--models", "svm", "--laq", "qat-2", "--out", out]) == 2
    assert "none of svm has weights to quantize" in capsys.readouterr().err


def test_options_that_do_not_apply_are_named(tmp_path: Path, capsys) -> None:
    """--fold without --split speaker, --budget without the sensitivity recipe: said, not silently ignored."""
    args = [
        "laq",
        "--data",
        "synthetic",
        "--recipe",
        "qat-2",
        "--budget",
        "2",
        "--fold",
        "1",
        "--epochs",
        "1",
    ]
    assert main([*args, "--out", str(tmp_path / "run"), "-q", "--tflite", "no"]) == 0
    err = capsys.readouterr().err
    assert "--fold is ignored here" in err and "--budget is ignored here" in err and "--mode" not in err


def test_laq_replaces_only_its_own_bundle_in_the_other_form(tmp_path, capsys):
    """`laq --tar` removed OUT/bundle recursively whatever it held (and the folder form any OUT/bundle.tar); only a
    bundle of an earlier run is replaced now."""
    from edge_ser.cli import main

    args = ["laq", "--data", "synthetic", "--n-per-class", "3", "--recipe", "ptq-2", "--epochs", "1", "-q"]
    mine = tmp_path / "p" / "bundle" / "src"
    mine.mkdir(parents=True)
    (mine / "important.py").write_text("code\n")
    assert main([*args, "--out", str(tmp_path / "p"), "--tar", "--tflite", "no"]) == 0
    assert (mine / "important.py").is_file() and (tmp_path / "p" / "bundle.tar").is_file()
    assert "is not a bundle of an earlier run" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "p2"), "--tflite", "no"]) == 0  # a folder bundle...
    assert (
        main([*args, "--out", str(tmp_path / "p2"), "--tar", "--tflite", "no"]) == 0
    )  # ...replaced by a tar
    assert not (tmp_path / "p2" / "bundle").exists() and (tmp_path / "p2" / "bundle.tar").is_file()
    # the manifest says how the weights were made: rounding only (ptq-2), not "fixed-2bit" as a QAT run's
    from edge_ser.bundle import load_bundle

    assert load_bundle(tmp_path / "p2" / "bundle.tar").manifest["bitplan"]["method"] == "ptq-2"


def test_budgets_are_checked_in_the_api_and_a_recipe_budget_wins_aloud(tmp_path, capsys):
    """`LaqConfig(budget=0.5)` gave a 1-bit plan over budget and nan an 8-bit one, silently; `--recipe
    sensitivity@1.2 --budget 3` used 1.2 without a word."""
    from converters.quant import LaqConfig
    from edge_ser.cli import main
    from edge_ser.errors import ConfigError

    for bad in (0.5, 9.0, float("nan")):
        with pytest.raises(ConfigError, match="budget"):
            LaqConfig(budget=bad)
    with pytest.raises(ConfigError, match="t_margin"):
        LaqConfig(t_margin=-0.1)
    args = [
        "laq",
        "--data",
        "synthetic",
        "--n-per-class",
        "3",
        "--recipe",
        "sensitivity@1.5",
        "--budget",
        "3",
    ]
    assert main([*args, "--epochs", "1", "--out", str(tmp_path / "r"), "-q", "--tflite", "no"]) == 0
    assert "--budget is ignored here" in capsys.readouterr().err


def test_output_paths_are_checked_before_the_work(tmp_path, capsys):
    """`eval --png afile/cm.png` ran the whole evaluation, printed its tables, then failed with '[Errno 17] File
    exists'; the paths are now checked first and the message says what is wrong."""
    from edge_ser.cli import main

    afile = tmp_path / "afile"
    afile.write_text("")
    bundle = str(Path(__file__).resolve().parents[1] / "bundles" / "laq_mlp_emodb")
    for option in ("--png", "--out"):
        assert main(["eval", bundle, "--data", "synthetic", option, str(afile / "x.png")]) == 2
        err = capsys.readouterr()
        assert (
            f"{option} {afile / 'x.png'}: {afile} is a file, not a folder" in err.err and "UAR" not in err.out
        )
    assert main(["features", str(afile), "--out", str(afile / "f")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_data_lists_the_sample_rates_and_warns_of_narrow_band_files(tmp_path: Path, capsys) -> None:
    """Review: 8 kHz files were upsampled and trained beside full-band clips without a word (a model learns the
    band as a difference between clips)."""
    import numpy as np

    from edge_ser.audio import write_wav

    t = np.arange(16000) / 16000
    y = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for cls in ("angry", "sad"):
        for spk in ("s1", "s2"):
            write_wav(tmp_path / "mine" / cls / f"{spk}_a.wav", y, 16000)
    write_wav(tmp_path / "mine" / "sad" / "s3_a.wav", y[::2], 8000)
    assert main(["data", str(tmp_path / "mine")]) == 0
    out = capsys.readouterr()
    assert "sample rates: 16000 Hz 4, 8000 Hz 1" in out.out
    assert "1 of 5 files are recorded below 16000 Hz" in out.err


def test_an_interrupted_laq_leaves_the_last_runs_files_as_one_set(tmp_path, capsys, monkeypatch):
    """An interrupt during the engine checks left the new bundle beside the old summary.json (and could leave a
    hidden .bundle.old-* folder): the bundle is now checked where it was built and published with its plan and
    summary at the end."""
    import edge_ser.engines as engines
    from edge_ser.bundle import load_bundle

    out = tmp_path / "run"
    args = ["laq", "--data", "synthetic", "--n-per-class", "3", "--epochs", "1", "-q", "--tflite", "no"]
    assert main([*args, "--recipe", "ptq-2", "--out", str(out)]) == 0
    before = {n: (out / n).read_bytes() for n in ("summary.json", "bitplan.json")}
    manifest = load_bundle(out / "bundle").manifest

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(engines, "load_engine", interrupted)
    assert main([*args, "--recipe", "ptq-4", "--out", str(out)]) == 130  # "interrupted"
    assert {n: (out / n).read_bytes() for n in before} == before
    assert load_bundle(out / "bundle").manifest == manifest
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [], "no staged bundle left"


def test_laq_refuses_a_folder_that_is_not_a_bundle_before_training(tmp_path, capsys):
    mine = tmp_path / "run" / "bundle"
    mine.mkdir(parents=True)
    (mine / "important.txt").write_text("x")
    args = ["laq", "--data", "synthetic", "--n-per-class", "3", "--epochs", "1", "--recipe", "ptq-2"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    out = capsys.readouterr()
    assert "exists and is not a bundle" in out.err and "[1/" not in out.out
    assert (mine / "important.txt").read_text() == "x"


def test_a_killed_laqs_staged_bundle_is_removed_by_the_next_run(tmp_path):
    """A SIGTERM takes its default action, which runs no `finally`: a killed laq left `.bundle.build-PID`, a whole
    hidden bundle no later run removed. Stages of processes that are gone are removed; a live one's is kept."""
    import os

    from converters.commands import _remove_dead_stages

    dead = tmp_path / ".bundle.build-999999999"
    (dead / "sub").mkdir(parents=True)
    tar = tmp_path / ".bundle.tar.build-999999998"
    tar.write_bytes(b"x")
    mine = tmp_path / f".bundle.build-{os.getpid()}"
    mine.mkdir()
    _remove_dead_stages(tmp_path, "bundle")
    _remove_dead_stages(tmp_path, "bundle.tar")
    assert not dead.exists() and not tar.exists() and mine.is_dir()


def test_laq_starts_from_the_model_train_saved_and_refuses_one_trained_otherwise(tmp_path, capsys):
    """`laq --from-model` compresses `train`'s float model (laq could only train its own): the float figures are
    train's, and a model of another split, data set or model is refused before any bit is allocated."""
    common = ["--data", "synthetic", "--n-per-class", "4", "--cache", str(tmp_path / "c"), "-q"]
    assert main(["train", *common, "--epochs", "3", "--out", str(tmp_path / "t")]) == 0
    trained = json.loads((tmp_path / "t" / "summary.json").read_text())
    capsys.readouterr()
    laq = ["laq", *common, "--recipe", "ptq-2", "--tflite", "no", "--from-model", str(tmp_path / "t")]
    assert main([*laq, "--out", str(tmp_path / "q")]) == 0
    summary = json.loads((tmp_path / "q" / "summary.json").read_text())
    assert summary["float_test_accuracy"] == pytest.approx(trained["test_accuracy"])
    assert (tmp_path / "q" / "bundle" / "weights.esq").is_file()
    capsys.readouterr()
    for wrong, says in (
        (["--seed", "1"], "split (seed"),
        (["--split", "speaker", "--folds", "3"], "split ("),
        (["--n-per-class", "5"], "split ("),
    ):
        assert main([*laq, *wrong, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert "not trained as this run asks" in err and says in err, err
        assert not (tmp_path / "x" / "bundle").exists()
    assert main([*laq[:-1], str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "nothing: no such file or folder" in capsys.readouterr().err
    assert main([*laq[:-1], str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "no model.pt in that folder" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.pt").write_bytes(b"not a model")
    assert main([*laq[:-1], str(tmp_path / "bad"), "--out", str(tmp_path / "x")]) == 2
    assert "not a model `edge-ser train` saved" in capsys.readouterr().err
    assert main([*laq, "--epochs", "5", "--out", str(tmp_path / "q")]) == 0
    assert "--epochs is ignored here" in capsys.readouterr().err
    # laq's files over train's: refused, as train's summary.json records the split (review finding)
    assert main([*laq, "--out", str(tmp_path / "t")]) == 2
    assert "the folder of --from-model" in capsys.readouterr().err
    shutil.copytree(tmp_path / "t", tmp_path / "t2")
    summary_file = tmp_path / "t2" / "summary.json"
    for summary, says in (
        ({**trained, "data": "emodb"}, "data set: it has 'emodb'"),
        ([], "is not the summary `edge-ser train` writes"),
        ({k: v for k, v in trained.items() if k != "split_record"}, "no split record"),
    ):
        summary_file.write_text(json.dumps(summary))
        assert main([*laq[:-1], str(tmp_path / "t2"), "--out", str(tmp_path / "x")]) == 2
        assert says in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "train", "laq"])
def test_an_unknown_data_set_is_refused_before_the_title(command, tmp_path: Path, capsys) -> None:
    """Review: `edge-ser demo --data nosuch` printed its title, "the main job on nosuch: ...", then refused the
    data set; now the refusal comes first, alone, and no output folder is made."""
    out = tmp_path / "out"
    assert main([command, "--data", "nosuch", "--out", str(out), "--cache", str(tmp_path / "c"), "-q"]) == 2
    captured = capsys.readouterr()
    assert "neither a data set name" in captured.err and captured.out == "" and not out.exists()


def test_model_line_gives_a_small_model_its_whole_flops() -> None:
    """Review: the demo's "[2/5] float laq_mlp: ..., 0.0003 GFLOPs per input" rounded 333,383 FLOPs a tenth down,
    beside the roofline line's "334,447 FLOPs"; a model under 0.01 GFLOPs now gets its count in whole FLOPs."""
    from converters.models.counts import count_model
    from converters.models.laq_mlp import laq_mlp
    from converters.tasks import model_line

    model = laq_mlp()
    dense = count_model(model).dense_flops
    line = model_line(model, "laq_mlp")
    assert dense < 1e7 and f"{dense:,} FLOPs (dense layers) per input" in line and "GFLOPs" not in line, line


def test_a_from_model_file_that_is_no_checkpoint_is_one_line(tmp_path: Path) -> None:
    """`laq --from-model out/train/summary.json` (a JSON file) printed torch's page of advice, telling the user to
    re-load with weights_only=False and to file an issue with PyTorch: one line naming the file, no such advice."""
    from converters.commands import trained_model
    from edge_ser.errors import ConfigError

    bad = tmp_path / "summary.json"
    bad.write_text('{"split_record": {}}')
    with pytest.raises(ConfigError) as e:
        trained_model(bad, None, None, {})
    msg = str(e.value)
    assert msg.startswith(f"--from-model {bad}: not a model `edge-ser train` saved")
    assert "\n" not in msg and "weights_only" not in msg
