"""Host-side command handlers for `edge-ser` (train, laq, demo); imported only when one of them runs."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from converters.compress import check_recipe, compress
from converters.data import SyntheticSpec
from converters.evaluate import index_metrics
from converters.export.bundle import build_bundle
from converters.featurize import FeatureCache, default_cache_dir
from converters.heldout import missing_classes, small_parts, speakers_line, split_record, untested_classes
from converters.pipeline import (
    check_data,
    check_speaker_folds,
    confusion,
    prepare,
    synthetic_record,
    write_json,
)
from converters.quant import LaqConfig
from converters.tasks import AV_DATA, Task, feature_task, model_line, synthetic_av_task
from converters.train import TrainConfig, accuracy, predict, seed_everything, train_classifier
from edge_ser.errors import ConfigError, install_hint
from edge_ser.features import FeatureSpec

TRAINABLE = ("laq_mlp", "av_cnn")
"""The models `train` and `laq` have a data path for (`_task`): laq_mlp on clip vectors, av_cnn on audio-visual
clips. A model registered for "train" without a path here is refused by name, never trained as another."""


def _say(args: argparse.Namespace):
    return (lambda *a: None) if args.quiet else print


def _cache(args: argparse.Namespace) -> FeatureCache | None:
    return None if args.no_cache else FeatureCache(args.cache or default_cache_dir())


def _check_model(args: argparse.Namespace, command: str) -> str:
    """`--model` if this command can train it (`TRAINABLE`); a ConfigError naming it and the ones it can otherwise
    (a model added to the registry with no data path here was trained as laq_mlp, silently)."""
    model = getattr(args, "model", "laq_mlp")
    if model not in TRAINABLE:
        raise ConfigError(
            f"--model {model}: edge-ser {command} has no training path for it; it trains {', '.join(TRAINABLE)}"
        )
    return model


def _task(args: argparse.Namespace, spec: FeatureSpec) -> Task:
    """The data and model the command works on: laq_mlp on feature vectors, or av_cnn on AV clips."""
    model = getattr(args, "model", "laq_mlp")  # one of TRAINABLE: train and laq check it first (_check_model)
    if model == "av_cnn":
        if args.data not in AV_DATA:
            raise ConfigError(
                f"--model av_cnn trains on audio-visual data: --data one of {', '.join(AV_DATA)}"
            )
        n = getattr(args, "n_per_class", None) or 40
        return synthetic_av_task(args.mode, n_per_class=n, seed=args.seed, cache=_cache(args))
    if args.data in AV_DATA:
        raise ConfigError(f"--data {args.data} is audio-visual: use --model av_cnn")
    if args.data == "fer2013":
        raise ConfigError(
            "--data fer2013 holds face images, not speech: the face model is trained by "
            "`python benchmarks/face_fer.py train` (docs/face.md)"
        )
    synth = None
    if args.data == "synthetic":
        n = getattr(args, "n_per_class", None)
        synth = SyntheticSpec(seed=args.seed, **({"n_per_class": n} if n else {}))
    prep = prepare(
        args.data,
        args.root,
        spec=spec,
        cache=_cache(args),
        synthetic=synth,
        progress=not args.quiet,
        strict=getattr(args, "strict", False),
        check=_speaker_folds_check(args),
    )
    return feature_task(prep, spec)


def _check_data(args: argparse.Namespace) -> None:
    """A --data that names nothing, refused before the title and the output folder (`_task` said so only after
    the title had named it as the data of the run)."""
    if args.data not in AV_DATA:
        check_data(args.data)


def _speaker_folds_check(args: argparse.Namespace):  # noqa: ANN202 - prepare's `check`, or None
    """For --split speaker: `check_speaker_folds` on the listed files, before their features are made (a
    wrong --folds or a file naming no speaker was said only after them)."""
    if getattr(args, "split", None) != "speaker":
        return None
    k, fold = getattr(args, "folds", 5), getattr(args, "fold", 0)
    return lambda name, records: check_speaker_folds([r.speaker for r in records], k, fold, name)


def _val_score(args, task: Task, y_val: np.ndarray) -> dict:
    """The `train_classifier` keyword that makes early stopping (and QAT's epoch choice) keep the epoch of the best
    validation UAR (`--select uar`); {} for accuracy, the default."""
    if getattr(args, "select", "accuracy") != "uar":
        return {}
    return {"val_accuracy": lambda logits: index_metrics(y_val, logits.argmax(1), task.classes).uar}


def _train_float(args, task: Task, split):
    seed_everything(args.seed)  # before construction: the initial weights come from torch's global RNG
    model = task.make_model(split.train)
    Xtr, ytr, Xva, yva, _, _ = task.parts(split)
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, patience=args.patience, threads=args.threads)
    res = train_classifier(
        model, Xtr, ytr, Xva, yva, cfg, progress=not args.quiet, **_val_score(args, task, yva)
    )
    # the threads torch trained with (results depend on it): recorded as a number even when --threads left
    # torch's own choice (it was recorded as null); set again to the same count, it changes nothing
    return res, replace(cfg, threads=_torch_threads())


def _torch_threads() -> int:
    """The intra-op thread count torch runs with now (training and QAT results depend on it)."""
    return int(torch.get_num_threads())


def _print_confusion(say, classes, y_true, y_pred) -> np.ndarray:
    cm = confusion(y_true, y_pred, len(classes))
    width = max(len(c) for c in classes)
    heads = [c[:4] for c in classes]
    if len(set(heads)) < len(heads):  # spk01, spk02: four letters name no column (a review); whole names do
        heads = list(classes)
    col = max(4, *(len(h) for h in heads))
    say("confusion (rows true, columns predicted):")
    say(f"  {'':>{width}} " + " ".join(f"{h:>{col}}" for h in heads))
    for c, row in zip(classes, cm, strict=True):
        say(f"  {c:>{width}} " + " ".join(f"{v:{col}d}" for v in row))
    return cm


def _want_tflite(choice: str, say) -> bool:
    """--tflite auto|yes|no: auto exports TFLite variants when tensorflow is installed."""
    if choice == "no":
        return False
    import importlib.util

    if (
        importlib.util.find_spec("tensorflow") is None
        or importlib.util.find_spec("converters.export.tflite_export") is None
    ):  # noqa: E501  (no import: tensorflow takes seconds)
        if choice == "yes":
            from edge_ser.errors import MissingDependencyError

            raise MissingDependencyError("tensorflow", "tf-export", "TFLite export") from None
        say(f"      (TFLite variants skipped: {install_hint('tensorflow-cpu', 'tf-export')} to add them)")
        return False
    return True


def _spec_dict(task: Task) -> dict:
    return task.spec.to_dict()


def _ignored(args: argparse.Namespace, command: str) -> None:
    """Say which options given away from their defaults do nothing in this run (they were ignored silently)."""
    recipe = getattr(args, "recipe", "")
    unused = {
        "--mode": getattr(args, "model", "laq_mlp") != "av_cnn" and getattr(args, "mode", "fused") != "fused",
        "--fold": args.split == "random" and args.fold != 0,
        "--folds": args.split == "random" and getattr(args, "folds", 5) != 5,
        "--budget": bool(recipe)
        and (not recipe.startswith("sensitivity") or "@" in recipe)
        and args.budget != 1.75,
        "--t-margin": bool(recipe)
        and (not recipe.startswith("laq-") or "@" in recipe)
        and args.t_margin != 0.05,
        "--n-per-class": getattr(args, "n_per_class", None) is not None
        and args.data not in ("synthetic", *AV_DATA),
        "--epochs": getattr(args, "from_model", None) is not None and args.epochs != 300,
        "--patience": getattr(args, "from_model", None) is not None and args.patience != 30,
    }
    why = {"--mode": "av_cnn only", "--fold": "--split speaker only", "--folds": "--split speaker only",
           "--budget": "the sensitivity recipe only, without a budget after '@'", "--t-margin": "the laq-paper / laq-qat recipes only, without a margin after '@'",
           "--n-per-class": f"the built-in synthetic data sets only: synthetic, {', '.join(AV_DATA)}",
           "--epochs": "training the float model, which --from-model skips",
           "--patience": "training the float model, which --from-model skips"}  # fmt: skip
    for option, idle in unused.items():
        if idle:
            print(
                f"edge-ser {command}: note: {option} is ignored here (it applies to {why[option]})",
                file=sys.stderr,
            )
    # --data synthetic --root DIR holding a written set: its clips are that set's, whatever --n-per-class and
    # --seed say (they were given and changed nothing, without a word)
    from converters.data.synthetic import written_spec

    written = written_spec(args.root) if args.data == "synthetic" and getattr(args, "root", None) else None
    if written is not None:
        given = getattr(args, "n_per_class", None)
        if given is not None and given != written.n_per_class:
            print(
                f"edge-ser {command}: note: --n-per-class {given} is ignored here: --root {args.root} holds a "
                f"written synthetic set of {written.n_per_class} clips per class, which this run uses",
                file=sys.stderr,
            )
        if args.seed not in (0, written.seed):
            print(
                f"edge-ser {command}: note: --seed {args.seed} seeds the split, the weights and the batches, not "
                f"the clips: --root {args.root} holds a written synthetic set of seed {written.seed}, which this "
                "run uses",
                file=sys.stderr,
            )


def _split_record(args: argparse.Namespace, task, split) -> dict:
    """The split as the bundle and summary record it (for a speaker split, its folds and each part's speakers:
    `edge-ser eval` checks them)."""
    prepared = getattr(task, "prepared", None)
    skipped: list[int] = []
    if prepared is not None and prepared.kept is not None:  # files extraction skipped, by listing position
        skipped = sorted(set(range(len(prepared.listed))) - {int(i) for i in prepared.kept})
    records = None
    if prepared is not None and len(prepared.records) == len(task.speakers):  # the files, for clip_probes
        records = prepared.records
    return split_record(
        args.split, args.seed, args.fold, getattr(args, "folds", 5), split, task.speakers, skipped, records
    )


def _seed_text(args: argparse.Namespace, task) -> str:
    """The split line's seed: "seed 0", and for a speaker split what the seed changes in its folds
    (`speaker_seed_note`: balanced by clip count, the seed only orders speakers of equal counts)."""
    if args.split != "speaker":
        return f"seed {args.seed}"
    from converters.data.splits import speaker_seed_note

    prepared = getattr(task, "prepared", None)
    listed = prepared.listed if prepared is not None and prepared.listed is not None else None
    speakers = [r.speaker for r in listed] if listed is not None else task.speakers
    return f"seed {args.seed}; {speaker_seed_note(speakers, getattr(args, 'folds', 5))}"


def _warn_missing_classes(task, split, kind: str = "speaker") -> None:
    """Say on stderr when the split leaves a class out of training or validation (`missing_classes`) or out of
    its test part (`untested_classes`: the UAR is then over fewer classes), and when its validation or test part has
    fewer than FEW_CLIPS clips (`small_parts`). A `kind` "random" split's advice names no --fold / --folds (they
    are ignored there, and said so, yet the advice was to change them)."""
    if kind == "random":
        advice = "choose another --seed, or gather more clips"
        gaps = (
            missing_classes(task.y, task.classes, split, advice),
            untested_classes(task.y, task.classes, split, advice),
        )
        parts = small_parts(split, "use more clips")
    else:
        gaps = (missing_classes(task.y, task.classes, split), untested_classes(task.y, task.classes, split))
        parts = small_parts(split)
    for gap in (*gaps, parts):
        if gap:
            print(f"edge-ser: warning: {gap}", file=sys.stderr)


def _out_dir(args: argparse.Namespace) -> Path:
    """`--out`, created now (ConfigError naming it when it cannot be: under a file, no permission, ...). A folder
    that is a bundle (holds manifest.json) is refused: the command's own files (summary.json, model.pt, a bundle/
    inside it) would sit among the bundle's, which then no longer loads (files its manifest does not list)."""
    out = Path(args.out)
    if (out / "manifest.json").is_file():
        raise ConfigError(
            f"--out {out}: this folder is a bundle (it holds manifest.json); the command's files written into it "
            "would break it: give the folder the bundle's parent or a new one (the bundle is written to OUT/bundle)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot make this folder: {e.strerror or e}") from None
    from edge_ser.cli.common import check_writable

    # a folder that exists but takes no file (read-only, another user's) was found only after the whole training
    check_writable(out / "summary.json", "--out")
    return out


def cmd_train(args: argparse.Namespace, spec: FeatureSpec, *, title: str | None = None) -> int:
    say = _say(args)
    t_start = time.perf_counter()
    _check_model(args, getattr(args, "command", None) or "train")  # before any work, as the output folder
    _ignored(args, getattr(args, "command", None) or "train")
    _check_data(args)
    out = _out_dir(args)  # before any work: a folder that cannot be made is an error now, not after training
    if title:
        say(title)
    task = _task(args, spec)
    say(f"[1/3] data: {task.data_line}")
    split = task.split(args.split, seed=args.seed, fold=args.fold, k=getattr(args, "folds", 5))
    made = _split_record(args, task, split)
    _warn_missing_classes(task, split, args.split)
    sz = split.sizes()
    say(
        f"[2/3] split: {args.split}, train {sz['train']} / val {sz['val']} / test {sz['test']} ({_seed_text(args, task)})"
        + speakers_line(made)
    )
    res, cfg = _train_float(args, task, split)
    Xte, yte = task.inputs(split.test), task.y[split.test]
    test_acc = accuracy(res.model, Xte, yte)
    majority = int(np.bincount(task.y[split.train]).argmax())  # the training split's most common class
    chance = float(np.mean(yte == majority))
    say(
        f"[3/3] {model_line(res.model, task.model_name)}\n      best epoch {res.best_epoch} of {res.epochs_run}, "
        f"{res.seconds:.1f} s; val {'UAR' if getattr(args, 'select', 'accuracy') == 'uar' else 'acc'} "
        f"{res.best_val_acc:.3f}\n"
    )
    pred = predict(res.model, Xte).argmax(1)
    test_uar = index_metrics(yte, pred, task.classes).uar
    say(
        f"test accuracy: {test_acc:.3f}, UAR {test_uar:.3f}  (n={sz['test']}, majority-class baseline {chance:.3f})"
    )
    cm = _print_confusion(say, task.classes, yte, pred)
    from edge_ser.fileio import atomic_writer

    # whole or not at all: a Ctrl-C mid-write left a torn model.pt
    with atomic_writer(out / "model.pt") as fh:
        torch.save(
            {
                "state_dict": res.model.state_dict(),
                "classes": list(task.classes),
                "spec": _spec_dict(task),
                "model": task.model_name,
            },
            fh,
        )
    write_json(
        out / "summary.json",
        {
            "data": task.name,
            "model": task.model_name,
            "n_clips": len(task.y),
            "classes": list(task.classes),
            "split": args.split,
            "split_sizes": sz,
            "split_record": made,
            "seed": args.seed,
            "test_accuracy": test_acc,
            "test_uar": test_uar,
            # the validation figure the kept epoch was chosen by (--select): accuracy, or UAR under its own name
            "select": getattr(args, "select", "accuracy"),
            ("val_uar" if getattr(args, "select", "accuracy") == "uar" else "val_accuracy"): res.best_val_acc,
            "majority_baseline": chance,
            "confusion": cm.tolist(),
            "best_epoch": res.best_epoch,
            "epochs_run": res.epochs_run,
            "train_seconds": res.seconds,
            "data_line": task.data_line,
            **task.info,
            "spec": _spec_dict(task),
            "train_config": cfg.to_dict(),
            "total_seconds": time.perf_counter() - t_start,
        },
    )
    write_json(out / "split.json", _split_file(task, split))
    say(
        f"\nwrote {out / 'model.pt'}, {out / 'summary.json'} and {out / 'split.json'} "
        f"({time.perf_counter() - t_start:.1f} s in all)"
    )
    if args.quiet:  # no tables, but the result and where it went
        print(f"test accuracy {test_acc:.3f}, UAR {test_uar:.3f} (n={sz['test']}); wrote {out}")
    return 0


def _float_model(args: argparse.Namespace, task: Task, split, made: dict) -> torch.nn.Module:
    """laq's float model: `train`'s (--from-model), or one trained now."""
    if getattr(args, "from_model", None) is not None:
        return trained_model(args.from_model, task, split, made)
    return _train_float(args, task, split)[0].model


def _check_from_model(path: Path | None, out: Path) -> None:
    """--from-model's model.pt is there, and --out is not its folder (laq's summary.json would replace train's,
    which records the split the model was trained on)."""
    if path is None:
        return
    file = model_file(path)
    if file.parent.resolve() == out.resolve():
        raise ConfigError(
            f"--out {out}: the folder of --from-model {path}; laq's files would replace train's summary.json, which "
            "records the clips the model trained on: give another --out"
        )


def model_file(path: Path) -> Path:
    """`--from-model`'s model.pt (the path, or model.pt in it when it is a folder); ConfigError when it is not
    there."""
    path = Path(path)
    file = path / "model.pt" if path.is_dir() else path
    if not file.is_file():
        where = f"no {file.name} in that folder" if path.is_dir() else "no such file or folder"
        raise ConfigError(f"--from-model {path}: {where} (give the folder `edge-ser train --out` wrote)")
    return file


def _train_summary(file: Path, summary_file: Path) -> dict:
    """The summary.json `edge-ser train` wrote beside `file` (it says which clips the model trained on), or
    ConfigError naming it: unreadable, not a JSON object, or another command's (no split record)."""
    try:
        summary = json.loads(summary_file.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"--from-model {file}: cannot read {summary_file} ({e}), which says which clips the model trained on: "
            "without it laq could quantize and test it on its own training clips"
        ) from None
    if not isinstance(summary, dict) or "split_record" not in summary:
        raise ConfigError(
            f"--from-model {file}: {summary_file} is not the summary `edge-ser train` writes (no split record; "
            "did another command write its --out there?), so which clips the model trained on is not known"
        )
    return summary


def trained_model(path: Path, task: Task, split, made: dict) -> torch.nn.Module:
    """The float model `edge-ser train` saved at `path` (its --out folder or model.pt), for `laq --from-model`:
    ConfigError unless it was trained on this data set, model, feature spec and classes, and on this very split
    (its summary.json's split record), so the QAT, validation and test rows laq uses are the ones it held out."""
    file = model_file(path)
    summary_file = file.parent / "summary.json"
    try:
        saved = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (a zip, pickle or tensor error: all mean "not train's model.pt")
        # torch's unpickling error is a page of advice (re-load with weights_only=False, file an issue): one line
        why = (
            "it does not unpickle as a torch file of tensors"
            if isinstance(e, pickle.UnpicklingError)
            else f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        )
        raise ConfigError(f"--from-model {file}: not a model `edge-ser train` saved ({why})") from None
    if not isinstance(saved, dict) or "state_dict" not in saved:
        raise ConfigError(f"--from-model {file}: not a model `edge-ser train` saved (no state_dict)")
    summary = _train_summary(file, summary_file)
    differ = [
        f"{what}: it has {have!r}, this run {want!r}"
        for what, have, want in (
            ("data set", summary.get("data"), task.name),
            ("model", saved.get("model"), task.model_name),
            ("classes", saved.get("classes"), list(task.classes)),
            ("feature spec", saved.get("spec"), _spec_dict(task)),
        )
        if have != want
    ]
    theirs, made = summary.get("split_record"), json.loads(json.dumps(made))  # as summary.json holds it
    if theirs != made:
        keys = sorted(set(theirs or {}) | set(made))
        changed = [k for k in keys if (theirs or {}).get(k) != made.get(k)]
        # clip_probes follow from the split (the seen speakers' files): name the keys that define it when any differ
        changed = [k for k in changed if k != "clip_probes"] or changed
        differ.append(
            f"split ({', '.join(changed) or 'not recorded'}): give the --split, --seed, --fold and --folds of that "
            "run, so the validation and test clips are the ones it held out"
        )
    if differ:
        raise ConfigError(f"--from-model {file}: not trained as this run asks: " + "; ".join(differ))
    model = task.make_model(split.train)
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as e:
        raise ConfigError(f"--from-model {file}: its weights do not fit {task.model_name}: {e}") from None
    return model.eval()


def _split_file(task: Task, split) -> dict:
    """split.json: the parts as row indices (`Split.to_dict`, read back by `Split.from_dict`) and, so they can be
    checked against `edge-ser data`, the file, speaker and label of every row; the rows are the clips trained on,
    after the unreadable or too-short ones were left out, not the loader's list."""
    doc: dict = dict(split.to_dict())
    records = task.prepared.records if task.prepared is not None else None
    if records is not None and len(records) == len(task.y):
        doc["rows"] = "indices into files: the clips trained on (unreadable or too-short files left out)"
        doc["files"] = [
            {"file": str(r.source), "speaker": str(r.speaker), "label": str(r.label)} for r in records
        ]
    return doc


def _earlier_bundle(path: Path) -> bool:
    """Whether `path` is a bundle an earlier run wrote in the other form (a folder holding manifest.json, or a tar
    whose members include it), which this run's bundle replaces; anything else there is the user's and is kept
    (it was deleted, a folder recursively)."""
    import tarfile

    if path.is_symlink():
        return False
    if path.is_dir():
        return (path / "manifest.json").is_file()
    if not path.is_file() or not tarfile.is_tarfile(path):
        return False
    try:
        with tarfile.open(path) as tf:
            return "manifest.json" in tf.getnames()
    except (tarfile.TarError, OSError):
        return False


def _add_tflite(staged: Path, args: argparse.Namespace, task, split, say) -> None:
    """Add the TFLite variants to the bundle at `staged` as `python -m converters.export.tflite_bundle BUNDLE
    --data DATA` adds them (one implementation, docs/tflite.md): calibration on the training clips read through
    the device path, quantile-clipped, the int8 input range widened with held-out-like copies of them, phased
    int8. The clips are those its manifest's split record names (`tflite_bundle.training_paths`), checked here
    to be exactly the ones this run trained on."""
    from converters.export import tflite_bundle as tb
    from edge_ser.bundle import load_bundle

    prepared = task.prepared
    root = args.root
    if prepared.name == "synthetic":  # the folder of the set trained on (the cache it was written to)
        root = str(Path(prepared.records[0].source).parent)
    b = load_bundle(staged)
    paths = tb.training_paths(b, args.data, root)
    mine = sorted(str(prepared.records[int(i)].source) for i in split.train)
    if sorted(map(str, paths)) != mine:  # the record must name the clips trained on
        raise RuntimeError(
            f"the bundle's split record names {len(paths)} training clips, not the {len(mine)} this run trained on"
        )
    phasing = tb.default_phasing(b)
    c = tb.calibration_set(
        b, args.data, root, quantile=tb.augment_quantile(phasing), paths=paths, progress=not args.quiet
    )  # a bar per pass over the clips, as training's (a corpus took minutes with no sign of life)
    models = tb.convert_bundle(b, c.calibration, input_ranges=c.input_ranges, phasing=phasing, strict=False)
    tb.add_to_bundle(staged, models, as_tar=args.tar)
    m = models["int8"]
    sat = max(tb.saturation(c.rows[n], *m.input_quant[n], (m.input_phases or {}).get(n, 1)) for n in m.inputs)
    say(
        f"      TFLite fp32 / fp16 / int8: calibrated on the {len(paths)} training clips"
        + (f" and {len(next(iter(c.augmented.values())))} held-out-like copies" if c.augmented else "")
        + f" (int8 {(m.input_phases or {}).get(m.inputs[0], 1)}-phase input; {sat:.2%} of the training values "
        "saturate)"
    )


def _remove_dead_stages(out: Path, name: str) -> None:
    """Remove `.NAME.build-PID` bundles in `out` whose process is gone: a run killed before its cleanup (a SIGTERM
    takes its default action, which runs no `finally`) left a whole bundle there, hidden."""
    for p in out.glob(f".{name}.build-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running (another laq into the same folder)
        except ProcessLookupError:
            pass
        except OSError:
            continue  # someone else's process: leave it
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


LAQ_STEPS = 5
"""The steps `cmd_laq` numbers: data, float model, bit allocation, compressed model, bundle."""


def step(n: int, total: int) -> str:
    """The "[n/total]" a numbered stage's line starts with, so a caller that runs more stages after these
    (`edge-ser demo`) numbers them all out of one total."""
    if not 1 <= n <= total:
        raise ValueError(f"step {n} of {total}")
    return f"[{n}/{total}]"


def cmd_laq(
    args: argparse.Namespace, spec: FeatureSpec, *, title: str | None = None, steps: int = LAQ_STEPS
) -> dict:
    """Train -> allocate bits -> QAT -> export a bundle; returns the summary it writes. `steps` is the total its
    five steps are numbered out of: more than LAQ_STEPS when the caller goes on to stages of its own. Each of our
    own warnings is said once (`each_warning_once`): `--tflite` reads the data again for its calibration, and every
    "skipped <file>" of step 1 came a second time."""
    from converters.data.scan import each_warning_once

    with each_warning_once():
        return _laq(args, spec, title=title, steps=steps)


def _laq(args: argparse.Namespace, spec: FeatureSpec, *, title: str | None, steps: int) -> dict:
    """`cmd_laq`'s work."""
    say = _say(args)
    t_start = time.perf_counter()
    check_recipe(args.recipe)  # before any work, as the output folder
    _check_model(args, getattr(args, "command", None) or "laq")
    _ignored(args, getattr(args, "command", None) or "laq")
    _check_data(args)
    out = _out_dir(args)
    bundle_path = out / ("bundle.tar" if args.tar else "bundle")
    from edge_ser.bundle.write import check_replaceable

    check_replaceable(bundle_path, as_tar=args.tar)  # before the training, not after it
    _check_from_model(getattr(args, "from_model", None), out)  # before the data
    if title:
        say(title)
    task = _task(args, spec)
    say(f"{step(1, steps)} data: {task.data_line}")
    split = task.split(args.split, seed=args.seed, fold=args.fold, k=getattr(args, "folds", 5))
    made = _split_record(args, task, split)
    _warn_missing_classes(task, split, args.split)
    Xtr, ytr, Xva, yva, Xte, yte = task.parts(split)
    from_model = getattr(args, "from_model", None)
    float_model = _float_model(args, task, split, made)
    fp_acc = accuracy(float_model, Xte, yte)
    fp_uar = index_metrics(yte, predict(float_model, Xte).argmax(1), task.classes).uar
    say(
        f"{step(2, steps)} float {model_line(float_model, task.model_name)}"
        + (f" (from {from_model})" if from_model is not None else "")
        + f"\n      test accuracy {fp_acc:.3f}, UAR {fp_uar:.3f} "
        f"(split {args.split}, "
        f"{_seed_text(args, task)}; train {len(split.train)} / val {len(split.val)} / test {len(split.test)} clips"
        f"{speakers_line(made)})"
    )
    laq = LaqConfig(t_margin=args.t_margin, budget=args.budget)
    say(f"{step(3, steps)} bit allocation: {args.recipe}")
    c = compress(
        args.recipe,
        float_model,
        Xtr,
        ytr,
        Xva,
        yva,
        laq=laq,
        seed=args.seed,
        log=say,
        train_kwargs={**_val_score(args, task, yva), "progress": not args.quiet},  # QAT's bar, as training's
    )
    q_acc = c.accuracy(Xte, yte)
    q_uar = index_metrics(yte, predict(c.model, Xte).argmax(1), task.classes).uar
    ptq_acc = accuracy(c.info["ptq_model"], Xte, yte) if "ptq_model" in c.info else None
    from converters.compress import parse_recipe

    # what made the bundle's weights: the recipe's own step, not always QAT (ptq-N rounds, fp32 keeps floats)
    made_by = {"fp32": "float", "ptq": "PTQ"}.get(parse_recipe(args.recipe)[0], "QAT")
    say(
        f"{step(4, steps)} {c.plan.average_bits:.2f} average bits; test accuracy: {made_by} {q_acc:.3f} (UAR {q_uar:.3f})"
        + (f", rounding only {ptq_acc:.3f}" if ptq_acc is not None else "")
        + f" ({c.seconds:.1f} s)"
    )
    acc = {
        "test": q_acc,
        "test_uar": q_uar,
        "float_test": fp_acc,
        "float_test_uar": fp_uar,
        "val": accuracy(c.model, Xva, yva),
        "dataset": task.name,
        "split": made,
    }
    prepared = getattr(task, "prepared", None)
    if prepared is not None and prepared.synthetic is not None:  # so eval --data synthetic rebuilds this set
        acc["synthetic"] = synthetic_record(prepared.synthetic)
    calibration = None
    want_tflite = _want_tflite(getattr(args, "tflite", "no"), say)
    from_clips = getattr(task, "prepared", None) is not None  # laq_mlp on feature vectors of audio files
    if want_tflite and not from_clips:
        # av_cnn on synthetic-av: made in memory (no files to read through the device path) and with face
        # inputs, which tflite_bundle's audio calibration cannot make, so its variants stay calibrated on the
        # raw training inputs (build_bundle -> tflite_variants, min / max)
        calibration = task.engine_inputs(split.train)
        calibration = calibration["features"] if task.input_names == ("features",) else calibration
    # built beside its place and checked on every engine there, then published with bitplan.json and summary.json
    # as one set while SIGINT / SIGTERM wait: a failure or Ctrl-C before that leaves the last run's files as they were
    _remove_dead_stages(out, bundle_path.name)  # a run killed (SIGTERM, SIGKILL) before its cleanup left one
    staged = out / f".{bundle_path.name}.build-{os.getpid()}"
    try:
        build_bundle(
            staged,
            c.model,
            c.plan,
            c.codes,
            name=task.model_name.split("[")[0],
            labels=list(task.classes),
            kind=task.kind,
            accuracy=acc,
            as_tar=args.tar,
            tflite_calibration=calibration,
        )
        if want_tflite and from_clips:
            _add_tflite(staged, args, task, split, say)
        from edge_ser.bundle import load_bundle

        bundle = load_bundle(staged)
        sizes = {n: len(bundle.read(n)) for n in ("model.onnx", "weights.esq")}
        say(
            f"{step(5, steps)} bundle {bundle_path}: weights.esq {sizes['weights.esq'] / 1000:.1f} KB, model.onnx "
            f"{sizes['model.onnx'] / 1000:.1f} KB (graph only), verified"
        )
        torch_logits = predict(c.model, Xte)
        checks = {}
        from edge_ser.engines import available_engines, engines_for, load_engine
        from edge_ser.engines.base import OOD_Z

        for name, hint in available_engines().items():
            if hint:
                say(f"      engine {name}: not installed ({hint})")
        for name in engines_for(bundle):
            engine = load_engine(bundle, name)
            logits = engine.predict(task.engine_inputs(split.test))
            # rows beyond +-OOD_Z training std are clamped by the engine (not by torch): compared on the others
            ood = np.asarray(engine.adapt.last_ood, dtype=bool)
            ood = ood if ood.shape == (len(logits),) else np.zeros(len(logits), dtype=bool)
            out_rows = int(ood.sum())
            keep = ~ood if (~ood).any() else np.ones(len(logits), dtype=bool)  # all out of range: compare all
            ref = torch_logits[keep]
            rel = float(np.abs(logits[keep] - ref).max() / np.abs(ref).max())
            same = float((logits[keep].argmax(1) == ref.argmax(1)).mean())
            # the engine's own figure on every test row (clamped ones included): what `edge-ser eval` measures
            engine_acc = float((np.asarray(logits).argmax(1) == yte).mean())
            engine_uar = index_metrics(yte, np.asarray(logits).argmax(1), task.classes).uar
            checks[name] = {
                "max_rel_diff": rel,
                "same_class": same,
                "out_of_range_rows": out_rows,
                "compared_rows": int(keep.sum()),
                "test_accuracy": engine_acc,
                "test_uar": engine_uar,
            }
            if not out_rows:
                rows = f"of the {int(keep.sum())} test rows"
            elif (~ood).any():
                # "out of range" said of what: a feature beyond +-OOD_Z training std (a review asked)
                rows = (
                    f"of the {int(keep.sum())} in-range test rows ({out_rows} test row(s) out of range, a feature "
                    f"beyond +-{OOD_Z:g} training standard deviations: the engine clamps them, torch does not, so "
                    "they are left out)"
                )
            else:
                rows = (
                    f"of the {out_rows} test rows, all out of range (a feature beyond +-{OOD_Z:g} training "
                    "standard deviations: the engine clamps them, torch does not)"
                )
            say(
                f"      engine {name}: same class as torch on {same:.1%} {rows}, logits within {rel:.1e} relative; "
                f"its own test accuracy {engine_acc:.3f}, UAR {engine_uar:.3f} on all {len(logits)} (torch {q_acc:.3f}, "
                f"UAR {q_uar:.3f})"
            )
        m = bundle.manifest
        if checks:  # the bundle's own figure on each engine, beside torch's, in the manifest `info` prints
            engines = {n: v["test_accuracy"] for n, v in checks.items()}
            engines_uar = {
                n: v["test_uar"] for n, v in checks.items()
            }  # the device's UAR (a review: unstored)
            m = {**m, "accuracy": {**m["accuracy"], "test_engines": engines, "test_engines_uar": engines_uar}}
        summary = {
            "data": task.name,
            "model": task.model_name,
            "n_clips": len(task.y),
            "classes": list(task.classes),
            "data_line": task.data_line,
            **task.info,
            "recipe": args.recipe,
            "plan": c.plan.to_dict() | {"info": None},
            "float_test_accuracy": fp_acc,
            "qat_test_accuracy": q_acc,  # kept for readers of older summaries: the bundle's, QAT or not
            "compressed_by": made_by,  # "QAT", "PTQ" (ptq-N: rounding only) or "float" (fp32)
            "compressed_test_accuracy": q_acc,
            "compressed_test_uar": q_uar,
            "float_test_uar": fp_uar,
            "qat_test_uar": q_uar,
            "ptq_test_accuracy": ptq_acc,
            "bundle": str(bundle_path),
            "file_bytes": sizes,
            "engine_checks": checks,
            # accuracy.test (the manifest's) is torch's, on the fake-quantised model; each engine's own on the
            # same rows, out-of-range ones included (engine_checks), is what `edge-ser eval` reproduces
            "engine_test_accuracy": {n: v["test_accuracy"] for n, v in checks.items()},
            "accuracy": acc,
            "threads": _torch_threads(),  # torch's intra-op threads: --threads, else torch's choice
            "total_seconds": time.perf_counter() - t_start,
        }
        from edge_ser.bundle.write import write_bundle
        from edge_ser.fileio import signals_deferred

        other = out / ("bundle" if args.tar else "bundle.tar")  # the other form, from an earlier run
        replaced = _earlier_bundle(bundle_path)
        with signals_deferred():  # the bundle, its plan and its summary: all new, or all as they were
            write_bundle(bundle_path, manifest=m, files=bundle.files, as_tar=args.tar)
            c.plan.save(out / "bitplan.json")
            write_json(out / "summary.json", summary)
            if _earlier_bundle(other):
                shutil.rmtree(other) if other.is_dir() else other.unlink()
        if replaced:
            say(f"      replaced the bundle of an earlier run at {bundle_path} (every file in it)")
        if other.exists() or other.is_symlink():
            print(
                f"note: {other} is not a bundle of an earlier run (no manifest.json); left as it is",
                file=sys.stderr,
            )
        say(
            f"\nwrote {bundle_path}, {out / 'bitplan.json'} and {out / 'summary.json'} "
            # the demo goes on (device run, live stream, roofline) and says its own total at the end
            f"({time.perf_counter() - t_start:.1f} s{' so far' if title else ' in all'})"
        )
        if args.quiet:  # no tables, but the result and where it went
            print(
                f"test accuracy: float {fp_acc:.3f}, {c.plan.average_bits:.2f} bits + {made_by} {q_acc:.3f} "
                f"(UAR {q_uar:.3f}); "
                f"wrote {bundle_path}"
            )
        return summary
    finally:
        shutil.rmtree(staged, ignore_errors=True) if staged.is_dir() else staged.unlink(missing_ok=True)


def cmd_model(args: argparse.Namespace) -> int:
    """Print a model's conv / dense layers with parameters and FLOPs, counted on its exported graph by
    `edge_ser.flops` (the AV convention), and for av_cnn the seed's reported figures."""
    from converters.models.counts import count_model, count_params, dense_rows
    from converters.registry import build, entry
    from converters.tasks import SEED_AV

    kind = entry(args.name).input_kind
    options = {
        "vector": {"in_features": args.in_features},
        "patches": {"n_mels": args.mels, "segment_frames": args.frames, "width": args.width},
        "av": {"mode": args.mode, "frame_fusion": args.frame_fusion, "video_padding": 1 if args.same else 0},
        "functionals": {},
        "sequence": {},  # the sequence kind's default window (150 frames x 39 MFCCs)
        "face": {},  # one 48x48 grey crop
    }.get(kind, {})
    flags = {  # the options of each kind, and their defaults: one given to another kind did nothing, silently
        "--in-features": ("vector", 180, args.in_features),
        "--mels": ("patches", 128, args.mels),
        "--frames": ("patches", 64, args.frames),
        "--width": ("patches", 1.0, args.width),
        "--mode": ("av", "fused", args.mode),
        "--frame-fusion": ("av", "channels", args.frame_fusion),
        "--same": ("av", False, args.same),
    }
    for flag, (owner, default, value) in flags.items():
        if value != default and owner != kind:
            print(
                f"edge-ser model: note: {flag} is ignored: {args.name} takes {kind} inputs", file=sys.stderr
            )
    try:
        model = build(args.name, num_classes=args.classes, **options)
    except ValueError as e:  # a size the model cannot take (squeezenet_lms under 25 mels) was a traceback
        raise ConfigError(f"{args.name}: {e}") from None
    counts = count_model(model)
    rows, total = dense_rows(model, counts), counts.dense_flops
    params = count_params(model)
    per = {
        "patches": "per log-Mel patch",
        "vector": "per clip vector",
        "sequence": "per 3 s window",
        "face": "per face crop",
    }.get(kind, "per clip")
    print(f"{args.name}" + (f" [{args.mode}]" if kind == "av" else "") + f", {per}:")
    print(f"  {'layer':18s} {'op':7s} {'input':>14s} {'output':>14s} {'params':>8s} {'FLOPs':>12s}")
    for r in rows:
        print(
            f"  {r['name']:18s} {r['op']:7s} {'x'.join(map(str, r['in_shape'])):>14s} "
            f"{'x'.join(map(str, r['out_shape'])):>14s} {r['params']:>8,} {r['flops']:>12,}"
        )
    unlisted = params - sum(r["params"] for r in rows)  # normalisation layers' scales and shifts, ...
    aside = (
        f"; {unlisted:,} of them in layers the table leaves out: normalisation, embeddings"
        if unlisted > 0
        else ""
    )
    print(
        f"  total: {params:,} parameters ({params * 4 / 1e6:.2f} MB as float32{aside}), {total / 1e9:.4f} GFLOPs "
        f"({total / 2e9:.4f} G multiply-accumulates) in conv / dense / matmul; {counts.flops / 1e9:.4f} GFLOPs "
        "with every op"
    )
    print(
        "  FLOPs convention (the AV seed's, edge_ser.flops on the exported graph): conv = 2*Y*Ci*Co*K + Y*Co, "
        "dense = 2*in*out + out, matmul = 2*MAC; the total adds pooling, activations, norms (docs/roofline.md)."
    )
    if args.name == "av_cnn" and args.mode == "fused":
        print(
            f"  the seed reports ~{SEED_AV['params'] / 1e6:.2f} M parameters, {SEED_AV['gflops']} GFLOPs, "
            f"{SEED_AV['mb']} MB, {SEED_AV['cpu_ms'][0]}-{SEED_AV['cpu_ms'][1]} ms CPU per clip.\n"
            "  Why they differ: the seed does not state its padding, input size or pooling placement; with\n"
            "  frames as channels and valid 3x3 convs (this default) the parameters are 17% above ~0.06 M\n"
            "  (the dense-16 layer on 2,496 flattened values alone is 39,952) and the FLOPs 42% above; its\n"
            "  0.014 G is nearer our multiply-accumulate count (0.010 G) than 2*MAC. Its 0.93 MB is\n"
            "  probably a saved Keras file with optimizer state: float32 weights are 0.28 MB. See\n"
            "  converters/models/av_cnn.py for the designs compared (--frame-fusion shared, --same)."
        )
    return 0
