"""`edge-ser info BUNDLE`: verify a bundle and say what it holds and which engines here can run it."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

import numpy as np

from edge_ser.cli.common import given_path
from edge_ser.errors import BundleError, EdgeSerError
from edge_ser.schema import number, speaker_ids, sub_record, tflite_variants, uar_of
from edge_ser.text import printable


def _print(text: str) -> None:
    """One line to stdout with its bundle-provided parts (labels, names, file names) made terminal-safe."""
    print(printable(text))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="what a bundle holds and which engines this machine can run",
        description="Verify a bundle and describe it: labels, inputs, bits, layers, accuracy, files, engines.",
    )
    p.add_argument("bundle", type=given_path, help="bundle folder or .tar")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from edge_ser.bundle import load_bundle
    from edge_ser.engines import available_engines, bundle_engines, engines_for

    bundle = load_bundle(args.bundle)
    _print(bundle.describe())
    _print(f"labels: {', '.join(bundle.labels)}")
    for line in bundle.input_kind.describe():
        _print(line)
    parts = list(bundle.branches.items()) if getattr(bundle, "branches", None) else [(None, bundle)]
    if parts[0][0] is not None:  # the fusion's own figures, then each branch's
        _print_accuracy(bundle.manifest)
    for branch, b in parts:  # a fusion bundle: each branch bundle's model (edge_ser.bundle.fusion)
        if branch is not None:
            _print(f"branch {branch}: {b.describe()}")
        _print_model(b)
    _print("engines this bundle supports: " + ", ".join(bundle_engines(bundle)))
    _print("engines on this machine:")
    for name, hint in available_engines().items():
        _print(f"  {name:12s} " + ("available" if hint is None else f"missing: {hint}"))
    usable, failed, defects = _smoke_run(parts, engines_for(bundle))
    for name, err in failed.items():
        _print(f"  {name:12s} cannot run this bundle: {err}")
    _print(
        "this bundle can run here with: "
        + (", ".join(usable) or "nothing (see the hints above)")
        + (
            f" (each ran the model on {SMOKE_SAMPLES} sample inputs and agreed with the numpy engine)"
            if usable
            else ""
        )
    )
    # fails the check: nothing runs here, or a file of the bundle is not its model (a health check notices; an
    # engine that cannot run on this machine, with others that can, does not stop a service)
    if (failed and not usable) or defects:
        return 1
    if bundle.input_kind.faces:
        from edge_ser.errors import MissingDependencyError
        from edge_ser.vision._cv2 import import_cv2

        try:
            import_cv2("reading faces")
        except MissingDependencyError as e:  # the engines run, but no image, video or camera can be read
            _print(f"but not on images, videos or a camera: {e}")
    return 0


SMOKE_SAMPLES = 4
"""Sample inputs each engine runs in `info` (`edge_ser.roofline.sample_inputs`, seeds 0..3)."""
SMOKE_TOLERANCE = {"fp32": 1e-3, "fp16": 0.02, "int8": 0.25}
"""Largest difference of a class probability from the numpy engine's (which reads weights.esq itself) on those
samples, by the engine's precision. The shipped bundles differ by at most 0.0007 (fp16) and 0.087 (int8, face_fer);
another bundle's .tflite put in a re-sealed manifest answered boredom 0.62 for happy 0.99 (a review)."""


def _smoke_run(parts: list, engines: list[str]) -> tuple[list[str], dict[str, str], set[str]]:
    """Run each model (a fusion bundle: each branch) on SMOKE_SAMPLES sample inputs with each engine that says it
    can, and compare each engine's class probabilities with the numpy engine's: a graph whose shapes do not fit
    passed every check and was listed as runnable, then failed on every engine; a variant file from another model
    ran without a word. The engines that ran it and agree, the error of each that did not, and those whose error
    is the bundle's (a BundleError, or probabilities that differ), not this machine's."""
    from edge_ser.engines import load_engine
    from edge_ser.engines.base import softmax
    from edge_ser.roofline import engine_precision, sample_inputs

    usable, failed, probs = [], {}, {}
    defects: set[str] = set()
    for name in engines:
        try:
            probs[name] = [
                softmax(np.asarray(load_engine(b, name).predict(sample_inputs(b, seed)), np.float64))
                for _, b in parts
                for seed in range(SMOKE_SAMPLES)
            ]
        except (EdgeSerError, RuntimeError, ValueError) as e:  # an engine's own error types too
            failed[name] = str(e).splitlines()[0][:300]
            if isinstance(e, BundleError):  # the bundle's files disagree with each other (not this machine)
                defects.add(name)
    ref = "numpy" if "numpy" in probs else next(iter(probs), None)
    for name, got in probs.items():
        precision = engine_precision(name) if not name.startswith("tflite-fp16") else "fp16"
        diff = max(float(np.abs(a - r).max()) for a, r in zip(got, probs[ref], strict=True))
        if diff > SMOKE_TOLERANCE[precision]:
            failed[name] = (
                f"its class probabilities differ from the {ref} engine's by up to {diff:.3f} on {SMOKE_SAMPLES} sample "
                f"inputs (at most {SMOKE_TOLERANCE[precision]:g} for {precision}): its model file is not this "
                "bundle's model"
            )
            defects.add(name)
        else:
            usable.append(name)
    return usable, failed, defects


def _print_model(bundle) -> None:
    """What one model bundle holds: speaker normalisation, accuracy, counts, bit plan, files."""
    from edge_ser.audio.pauses import bundle_keep, keep_seconds
    from edge_ser.speaker import SpeakerAdapter

    m = bundle.manifest
    speaker = SpeakerAdapter(m)
    if speaker.active:
        _print(f"speaker normalisation: {speaker.describe()}")
    keep = bundle_keep(m, bundle.input_kind)
    if keep is not None:
        _print(
            f"pauses: a whole clip keeps at most {keep:g} s before and after its speech, what the training clips "
            "held (docs/protocol.md, 'Pauses around the speech')"
        )
    elif keep_seconds(m) is not None:
        _print("pauses: the manifest's block is not used (the model takes faces, timed by the whole clip)")
    _print_accuracy(m)
    counted = _print_counts(bundle)
    by_layer = counted.by_layer() if counted is not None else {}
    # `bitplan` and `layers` are optional, and a layer's op, params, bits and bytes too (validate_manifest): a
    # manifest without them, or with null there, crashed `info` (KeyError, TypeError)
    _print(f"bit plan ({sub_record(m, 'bitplan').get('method') or '?'}), per layer:")

    def said(r: Mapping, key: str, width: int) -> str:
        v = r.get(key)
        return f"{v:>{width},}" if isinstance(v, int) else f"{'?':>{width}}"

    for r in m.get("layers") or []:
        # the FLOPs counted on the graph (as the total above), not the manifest's own figure, which nothing checks
        c = by_layer.get(r["name"])
        flops_said = r.get("flops")
        flops = f"{c.flops:,}" if c is not None else (f"{flops_said:,}" if flops_said is not None else "?")
        differs = c is not None and flops_said is not None and flops_said != c.flops
        _print(
            f"  {r['name']:12s} {r.get('op') or '?':8s} {said(r, 'params', 8)} params  {said(r, 'bits', 2)} bits  "
            f"{said(r, 'bytes', 8)} bytes  {flops:>9} FLOPs"
            + (f" (the manifest says {flops_said:,})" if differs else "")
        )
    _print("files:")
    for name, entry in m["files"].items():
        _print(f"  {name:20s} {entry['bytes'] / 1000:8.1f} KB  sha256 {entry['sha256'][:16]}...")
    for variant, v in tflite_variants(m).items():
        quant = "".join(
            f", int8 {name} scale {io['scale']:.4g} zero point {io['zero_point']}"
            + (f" ({io['phases']} phased copies)" if io.get("phases", 1) > 1 else "")
            for name, io in v["inputs"].items()
            if io["dtype"] == "int8"
        )
        out = v["output"]
        if out.get("phases", 1) > 1:
            quant += f", output as {out['phases']} phased int8 copies (averaged by the engine)"
        _print(f"  tflite {variant}: {v['file']}{quant}")


def _print_accuracy(m: dict) -> None:
    """The manifest's `accuracy` line: the figures, the data set and the split they are on."""
    acc = sub_record(m, "accuracy")  # a string or a list there crashed: as if absent
    split = sub_record(acc, "split")
    if acc:
        nums = {k: v for k, v in acc.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        uar = nums.get("test_uar", nums.get("uar"))  # face_fer's manifest names it `uar` (a review: left out)
        if uar is not None and "test" in nums:
            shown = f"test UAR {uar:.3f}, accuracy {nums['test']:.3f}"
        elif "test" in nums:
            shown = f"test {nums['test']:.3f}"
        else:
            shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in nums.items())
        about = [f"split: {split.get('kind', '?')}"]
        if split.get("kind") == "random":
            about[0] += " (speakers shared with training: not a speaker-independent figure)"
        about += [f"seed {split['seed']}"] if "seed" in split else []
        held = speaker_ids(split, "test_speakers")  # "03,08" was read letter by letter, a number crashed
        if held:  # which speakers the figure is on: one fold's few, not every speaker
            more = f" and {len(held) - 4} more" if len(held) > 4 else ""
            about += [f"fold {split.get('fold', '?')}, test speakers {', '.join(held[:4])}{more}"]
        sizes = split.get("sizes")
        if isinstance(sizes, dict):  # it printed the dict's repr: sizes {'train': 2675, ...}
            about += ["sizes " + " / ".join(f"{part} {n}" for part, n in sizes.items())]
        engines = acc.get("test_engines")
        if isinstance(engines, dict) and "test" in nums:  # accuracy.test is the torch model's
            uars = acc.get("test_engines_uar") if isinstance(acc.get("test_engines_uar"), dict) else {}
            own = ", ".join(
                f"{n} {v:.3f}" + (f" (UAR {uars[n]:.3f})" if isinstance(uars.get(n), (int, float)) else "")
                for n, v in engines.items()
                if isinstance(v, (int, float))
            )
            shown += f" (the torch model; the bundle on its engines: {own})"
        _print(f"accuracy: {shown} on {acc.get('dataset', '?')} ({', '.join(about)})")
        if isinstance(
            acc.get("note"), str
        ):  # the manifest's caveat on that figure (face_fer's teacher selection)
            _print(f"  note: {acc['note']}")
    _print_speaker_independent(acc.get("speaker_independent"))


def _print_speaker_independent(si: object) -> None:
    """The nested speaker-independent figure (`accuracy.speaker_independent`), what of it is there: a
    hand-edited block that is no mapping, or lacks `transductive`, crashed `edge-ser info`."""
    if not si:
        return
    if not isinstance(si, Mapping):
        _print(f"  accuracy.speaker_independent is no mapping (a {type(si).__name__}): left out")
        return
    head = f"on speakers it never heard ({si.get('protocol', '?')}, {si.get('n_folds', '?')} folds): "
    uar = uar_of(si.get("transductive"))
    online = {
        str(k).removeprefix("online-"): uar_of(v) for k, v in si.items() if str(k).startswith("online-")
    }
    online = {n: v for n, v in online.items() if v is not None}
    if uar is None and not online:
        _print(head + f"no UAR there ({si.get('source', '')})")
        return
    parts = []
    if uar is not None:
        std = number(sub_record(si, "transductive").get("uar_std"))
        spread = f" +- {100 * std:.1f}" if std is not None else ""
        parts.append(f"UAR {100 * uar:.1f}{spread} % once it knows the speaker")
    if online:
        after = f"after {' / '.join(online)} of their clips {' / '.join(f'{100 * v:.1f}' for v in online.values())} %"
        parts.append(after if parts else "UAR " + after)
    _print(head + "; ".join(parts) + f" ({si.get('source', '')})")
    _print_over_seeds(si.get("over_seeds"))
    # held-out speakers with fewer clips than an online-N names were scored after all of theirs, not N
    short = si.get("online_short")
    if online and isinstance(short, str):
        _print(f"  {short}")


def _print_over_seeds(seeds: object) -> None:
    """The nested figure's repeat at other training seeds, where the manifest has one (ship_ser.py's
    `over_seeds`): the seeds pooled, then each seed's UAR, so a one-seed headline is read beside its spread."""
    t = sub_record(seeds, "transductive")
    uar = uar_of(t)
    if uar is None or not isinstance(seeds, Mapping):
        return
    std = number(t.get("uar_std"))
    listed = seeds.get("seeds", [])
    names = ", ".join(map(str, listed)) if isinstance(listed, list) else ""  # a number was not iterable
    text = (
        f"  the same procedure at training seeds {names} (each fold's seeds pooled): UAR {100 * uar:.1f}"
        + (f" +- {100 * std:.1f}" if std is not None else "")
        + " %"
    )
    online = uar_of(seeds.get("online-20"))
    if online is not None:
        text += f"; after 20 of their clips {100 * online:.1f} %"
    per_seed = [v for v in sub_record(seeds, "per_seed_uar").values() if number(v) is not None]
    if per_seed:
        text += f"; by seed {' / '.join(f'{100 * v:.1f}' for v in per_seed)} %"
    _print(text + f" ({seeds.get('source', '')})")


def _print_counts(bundle):  # noqa: ANN202 - a GraphCount, or None
    """The per-input totals, counted on the graph; returns the count (None when the graph cannot be counted)."""
    from edge_ser.flops import count

    try:
        c = count(bundle)
    except EdgeSerError as e:
        _print(f"per input: cannot count this graph ({e})")
        return None
    _print(
        f"per input: {c.flops:,} FLOPs ({c.dense_flops:,} in conv/dense), {c.weight_bytes:,} weight bytes at "
        f"their stored bits + {c.activation_bytes:,} activation bytes; {c.intensity:.2f} FLOP/byte "
        "(edge-ser bench for the roofline)"
    )
    return c
