"""TFLite variants for an existing bundle: calibration on its training clips through the device path, the
fp32 / fp16 / int8 files added to the bundle (model.onnx and weights.esq untouched), saturation checked.

    python -m converters.export.tflite_bundle bundles/ser_emodb --data emodb
    python -m converters.export.tflite_bundle bundles/tiny_transformer_emodb --data emodb --max-rows 4000
    python -m converters.export.tflite_bundle bundles/face_fer --data fer2013

Face bundles (one input "face" [n, 1, 48, 48]) are calibrated on FER-2013 training images / 255 (`face_rows`,
`FACE_ROWS` of them at random; `--max-rows` sets the number), the pixels the face engine feeds the model.

Calibration rows are what the device feeds the TFLite engine: each training clip read from disk, through the
bundle's input kind (`Bundle.input_kind.file_inputs`: resampling, `edge_ser.features.condition`'s DC removal
and level / band conditioning, the features), its speaker normalisation with the training prior
(`SpeakerAdapter(enabled=False)`), then the engine's own standardisation and OOD clamp (`InputAdapter`). The
training clips are the manifest's (`training_paths`): the split of `edge-ser train / laq` re-made as training
made it (`listed_split`; its skipped files left out; a synthetic set as `accuracy.synthetic` records it), else
`accuracy.split.train_speakers` (the ser_* bundles: every speaker), else a random split (`kind == "random"`,
its `seed`) re-made with `stratified_split`. `edge-ser laq` adds its laq_mlp bundles' variants through this
module (`converters.commands._add_tflite`).

Audio bundles get their int8 variant as phased int8 where the graph allows it (`tflite_phases`,
`default_phasing`; `--phases`).

`saturation(rows, scale, zero_point[, phases])` is the share of int8 input values the engine clips to [-128, 127]; the
benchmark `benchmarks/tflite_calibration.py` reports it on held-out-like captures (other rates, gains,
noise).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.export import onnx_tflite as ot
from converters.export.tflite_phases import FUNCTIONALS, Phasing, phase
from edge_ser.bundle.manifest import phase_offsets, tflite_io_entry
from edge_ser.engines.tflite import int8_codes
from edge_ser.errors import ConfigError
from edge_ser.schema import speaker_ids, sub_record

VARIANTS = ("fp32", "fp16", "int8")


def training_paths(bundle, dataset: str, root: str | None = None) -> list[Path]:
    """The audio files of the bundle's training clips (module doc).

    A split record of `edge-ser train / laq` (`converters.heldout.split_record`: kind "random" or "speaker", its
    seed and fold, a speaker split's fold count, the files training skipped) is re-made with the split function
    training used (`converters.pipeline.listed_split`, over every file listed), so the clips are exactly those
    it trained on: not its validation clips (a 2-fold speaker split draws them from the training speakers),
    nor the files it skipped. A synthetic set is the one the manifest records (`accuracy.synthetic`). Other
    records: the files of `train_speakers` (the ser_* bundles: every speaker), or a random split (kind
    "random", no fold) re-made with `stratified_split` over the file labels."""
    from converters.data.splits import stratified_split
    from converters.pipeline import listed_split, load_records, recorded_synthetic

    accuracy = sub_record(bundle.manifest, "accuracy")  # a string or a list there crashed: as if absent
    split = sub_record(accuracy, "split")
    synthetic = recorded_synthetic(accuracy) if accuracy.get("dataset") == "synthetic" else None
    # a data set's name, or a folder of the user's own recordings
    _, records = load_records(dataset, root, synthetic=synthetic)
    records = list(records)
    speakers = speaker_ids(split, "train_speakers")  # "03,08" was read letter by letter, a number crashed
    kind = split.get("kind")
    # a hand-edited "four" failed with a bare ValueError from int(): as if absent, as the other malformed parts
    want = _count(sub_record(split, "sizes").get("train"))
    if (
        kind in ("random", "speaker")
        and "seed" in split
        and "fold" in split
        and (kind == "random" or "folds" in split)
    ):
        skipped = sorted(_listed(bundle, split))
        if skipped and skipped[-1] >= len(records):
            raise ConfigError(
                f"{bundle.source}: training skipped file {skipped[-1]} of the listing; {dataset!r} lists "
                f"{len(records)}: give --data the data set it was trained on"
            )
        kept = np.setdiff1d(np.arange(len(records)), skipped) if skipped else None
        part = listed_split(
            records,
            kept,
            kind,
            seed=_split_number(bundle, split, "seed"),
            fold=_split_number(bundle, split, "fold"),
            k=_split_number(bundle, split, "folds", 5),
        )
        used = [records[int(i)] for i in kept] if kept is not None else records
        chosen = [used[int(i)] for i in part.train]
        if speakers and not {str(r.speaker) for r in chosen} <= set(speakers):
            chosen = []  # another data set's speakers: said below
    elif speakers:
        keep = set(speakers)
        chosen = [r for r in records if str(r.speaker) in keep]
        want = None
    elif kind == "random":
        idx = stratified_split([r.label for r in records], seed=_split_number(bundle, split, "seed", 0)).train
        chosen = [records[int(i)] for i in idx]
    else:
        chosen = records
        want = None
        if chosen:  # nothing says which clips trained it: held-out clips set the int8 range too
            import warnings

            from edge_ser.errors import InputWarning

            warnings.warn(
                f"{bundle.source}: its manifest records no training split (accuracy.split), so every clip of "
                f"{dataset!r} ({len(chosen)}) calibrates the int8 variant, the clips it is tested on included",
                InputWarning,
                stacklevel=2,
            )
    trained = accuracy.get("dataset")
    if chosen and want is not None and want != len(chosen):
        # another data set's clips (ravdess for an emodb bundle) land here: say which one to give
        raise ConfigError(
            f"{bundle.source}: the {kind} split of {dataset!r} gives {len(chosen)} training clips, the manifest "
            f"says {want}"
            + (f": the bundle was trained on {trained!r}" if trained else "")
            + "; give --data the data set it was trained on (its name or folder)"
        )
    if not chosen:
        raise ConfigError(
            f"{bundle.source}: no training clips of {dataset!r} found"
            + (f": the bundle was trained on {trained!r}" if trained else "")
            + (f" (speakers {', '.join(speakers)})" if speakers else "")
            + "; give --data that data set's name or folder"
        )
    return [Path(r.source) for r in chosen]


def _split_number(bundle, split: Mapping[str, Any], key: str, default: int | None = None) -> int:
    """`accuracy.split[key]` as a whole number (`_count`): the split is re-made from it, so a hand-edited value
    that is none ("three", a list) is a ConfigError naming the field, not a bare ValueError from int()."""
    value = split.get(key, default)
    n = _count(value)
    if n is None:
        raise ConfigError(
            f"{bundle.source}: the manifest's accuracy.split.{key} is {value!r}, not a whole number; the "
            "training split is re-made from it"
        )
    return n


def _listed(bundle, split: Mapping[str, Any]) -> list[int]:
    """`accuracy.split.skipped_listed`: the listing positions training skipped, each a whole number (`_count`),
    else a ConfigError naming the field and the value (the split is re-made without them)."""
    value = split.get("skipped_listed") or []
    out = [_count(i) for i in value] if isinstance(value, (list, tuple)) else [None]
    if any(i is None or i < 0 for i in out):
        raise ConfigError(
            f"{bundle.source}: the manifest's accuracy.split.skipped_listed is {value!r}, not a list of file "
            "positions (whole numbers); the training split is re-made without them"
        )
    return out  # type: ignore[return-value]


def _count(value: object) -> int | None:
    """A manifest's clip count as a whole number (an int, an integral float, or its digits as a string), None
    for anything else (a hand-edited "four", a list, a bool, 4.5): as if absent, not checked against."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def device_rows(bundle, clips: Sequence[Any], *, progress: str | None = None) -> dict[str, np.ndarray]:
    """The standardised, clamped model inputs the TFLite engine would get for `clips` (paths, or (y, sr)
    pairs), stacked per input name. `progress`: a bar with this description on a terminal (a corpus of
    thousands of clips takes minutes, and `python -m converters.export.tflite_bundle` said nothing meanwhile)."""
    from tqdm.auto import tqdm

    from edge_ser.engines.base import InputAdapter
    from edge_ser.speaker import SpeakerAdapter

    kind = bundle.input_kind
    if "faces" in kind.input_names:
        raise ConfigError(f"{bundle.source}: calibration from audio clips alone cannot make face inputs")
    speaker = SpeakerAdapter(bundle.manifest, enabled=False)
    adapt = InputAdapter(bundle, normalize=True)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in bundle.input_names}
    for c in tqdm(clips, desc=progress, unit="clip", disable=None if progress else True, leave=False):
        x = kind.file_inputs(c) if isinstance(c, (str, Path)) else kind.audio_inputs(*c)
        x = adapt(speaker(x, update=False))
        for n in parts:
            parts[n].append(x[n])
    return {n: np.concatenate(v).astype(np.float32) for n, v in parts.items()}


FACE_ROWS = 2000
"""Face bundles: FER-2013 training images calibrated on (a random subset, seed 0): the pixels' range is
[0, 1] whatever the subset, and the hidden activations' min / max settle well before that (module doc)."""


def face_rows(
    dataset: str, root: str | None = None, split: str = "train", max_rows: int | None = None, seed: int = 0
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """FER-2013 `split` as the face engine's input {"face": float32 [n, 1, 48, 48] in [0, 1]} (pixels / 255,
    `edge_ser.inputs.face.crop_pixels`) and its labels; at most `max_rows` images (a random subset)."""
    from converters.data.fer_arrays import fer_arrays
    from converters.data.loaders import find_dataset

    if dataset != "fer2013":
        raise ConfigError(f"a face bundle is calibrated on FER-2013 images, not {dataset!r} (--data fer2013)")
    a = fer_arrays(root if root is not None else find_dataset(dataset), split)
    idx = np.arange(len(a.images))
    if max_rows is not None and len(idx) > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(len(idx), max_rows, replace=False))
    face = a.images[idx][:, None].astype(np.float32) / np.float32(255.0)
    return {"face": face}, a.labels[idx]


def is_face(bundle) -> bool:
    """Whether the bundle takes one face crop ("face" [n, 1, S, S], pixels / 255)."""
    return tuple(bundle.input_names) == ("face",)


@dataclass(frozen=True)
class Augment:
    """One held-out-like copy of a training clip: resampled to `rate` (the device resamples it back), a gain,
    white noise at `noise_dbfs` (RMS, full scale 1)."""

    name: str
    rate: int = 16000
    gain_db: float = 0.0
    noise_dbfs: float | None = None

    def apply(self, y16: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        from edge_ser.audio import resample

        y = resample(y16, 16000, self.rate) if self.rate != 16000 else y16.copy()
        y = y * np.float32(10 ** (self.gain_db / 20))
        if self.noise_dbfs is not None:
            y = y + rng.normal(0.0, 10 ** (self.noise_dbfs / 20), y.shape).astype(np.float32)
        return y.astype(np.float32), self.rate


AUGMENTS = (
    Augment("8 kHz + noise -60 dBFS", rate=8000, noise_dbfs=-60.0),
    Augment("-20 dB + noise -66 dBFS", gain_db=-20.0, noise_dbfs=-66.0),
    Augment("+20 dB", gain_db=20.0),
)
"""Held-out-like copies of training clips for calibration (issue 20): a narrow band, a quiet noisy capture
(-66 dBFS: -60 dBFS noise on a stereo pair with one dead channel, averaged to mono), a loud one."""


def augmented_clips(
    paths: Sequence[str | Path], every: int = 2, seed: int = 1, augments: Sequence[Augment] = AUGMENTS
) -> list[tuple[np.ndarray, int]]:
    """(samples, rate) of every `every`-th training clip under each of `augments` (training data only)."""
    from edge_ser.audio import load

    rng = np.random.default_rng(seed)
    out = []
    for p in list(paths)[::every]:
        y = load(p, sr=16000, mono=True)[0]
        out += [a.apply(y, rng) for a in augments]
    return out


QUANTILE = 0.9999
"""Calibration values are clipped to this quantile range of each input (over all its values): a few training
rows reach the engine's OOD clamp (|z| = 20) and would otherwise set the one int8 input scale. Measured on
ser_emodb (all 535 clips, int8 vs fp32 top-1): no clip 98.50 %, 0.99999 98.88 %, 0.9999 99.25 %, 0.999
99.07 %; the values beyond saturate (0.02 % of the training values at 0.9999)."""


def calibration_rows(
    rows: Mapping[str, np.ndarray], max_rows: int | None = None, quantile: float | None = QUANTILE
) -> dict[str, np.ndarray]:
    """The int8 calibration set of device rows: each input clipped to its [1 - quantile, quantile] value
    range (`QUANTILE`; None: not clipped), then at most `max_rows` rows (`subsample`)."""
    out = {}
    for n, a in rows.items():
        if quantile is not None and n not in ("faces", "face"):  # pixels: [0, 1] as they are
            lo, hi = np.quantile(a, 1 - quantile), np.quantile(a, quantile)
            a = np.clip(a, lo, hi).astype(np.float32)
        out[n] = a
    return subsample(out, max_rows)


AUGMENT_QUANTILE = 0.9995
"""With augmented copies: the int8 input's range is this quantile range of the training rows plus their
held-out-like copies (`AUGMENTS`); the hidden activations and the output keep the training rows' ranges
(`onnx_tflite.convert(input_ranges=...)`). Measured side by side in docs/tflite.md."""


@dataclass
class Calibration:
    """What int8 conversion needs: the training device rows, the calibration rows given to the converter,
    and the int8 input ranges set apart from them (augmented copies; None: the calibration rows' own)."""

    rows: dict[str, np.ndarray]
    calibration: dict[str, np.ndarray]
    input_ranges: dict[str, tuple[float, float]] | None = None
    augmented: dict[str, np.ndarray] | None = None


PHASED_QUANTILE = 0.9999
"""The augmented input range's quantile when the int8 input carries >= 4 phased copies: their mean has a 4x
finer step, so the range can leave 5x fewer values outside it. On EMODB's clips, the share of clean clips with
an int8 input value outside the range (the int8 engine flags them out of range) falls from 5.2 % to 0.93 %
(laq_mlp_emodb) and from 3.7 % to 0.75 % (ser_emodb); the copies' step is still 2.3-2.8x finer than plain
int8's at `AUGMENT_QUANTILE`."""


def augment_quantile(phasing: Phasing | None) -> float:
    """The quantile of the augmented input range for an int8 input with this phasing (`PHASED_QUANTILE`)."""
    return PHASED_QUANTILE if phasing is not None and phasing.input >= 4 else AUGMENT_QUANTILE


def default_augment(bundle) -> bool:
    """Augmented copies for the audio bundles fed whole-clip or frame features (functionals, feature vectors,
    the AV model's audio branch: their captures saturated the training range, e.g. av_cnn_audio 1.74 % on the
    8 kHz + noise capture without them, 0.39 % with); patch models (saturate <= 0.007 % on every capture, and
    their augmented rows would cost 8 times as many features) and face models stay on their training rows."""
    return not is_face(bundle) and bundle.input_kind.name != "patches"


def calibration_set(
    bundle,
    data: str,
    root: str | None = None,
    max_rows: int | None = None,
    augment: bool | None = None,
    quantile: float = AUGMENT_QUANTILE,
    paths: Sequence[str | Path] | None = None,
    progress: bool = False,
) -> Calibration:
    """The bundle's int8 calibration (module doc): face bundles from FER-2013 train images; audio bundles
    from their training clips through the device path, clipped to `QUANTILE`; with `augment` (default
    `default_augment`) the input range from the training rows plus `augmented_clips` at `quantile`
    (`augment_quantile`). `paths`: the training clips when already found (`training_paths`). `progress`: a bar
    per pass over the clips on a terminal (`device_rows`)."""
    if is_face(bundle):
        rows, _ = face_rows(data, root, "train", max_rows or FACE_ROWS)
        return Calibration(rows, rows)
    paths = training_paths(bundle, data, root) if paths is None else list(paths)
    rows = device_rows(bundle, paths, progress="training clips" if progress else None)
    cal = calibration_rows(rows, max_rows)
    if not (default_augment(bundle) if augment is None else augment):
        return Calibration(rows, cal)
    aug = device_rows(bundle, augmented_clips(paths), progress="held-out-like copies" if progress else None)
    ranges = {}
    for n, a in rows.items():
        both = np.concatenate([a, aug[n]])
        ranges[n] = (
            float(np.quantile(both, 1 - quantile)),
            float(np.quantile(both, quantile)),
        )
    return Calibration(rows, cal, ranges, aug)


def subsample(rows: Mapping[str, np.ndarray], max_rows: int | None, seed: int = 0) -> dict[str, np.ndarray]:
    """At most `max_rows` rows (a random subset, the same for every input) plus, per input, the rows holding
    its per-feature minimum and maximum, so the calibrated ranges stay those of all rows."""
    n = len(next(iter(rows.values())))
    if max_rows is None or n <= max_rows:
        return dict(rows)
    keep = set(np.random.default_rng(seed).choice(n, max_rows, replace=False).tolist())
    for a in rows.values():
        flat = a.reshape(n, -1)
        keep.update(np.argmin(flat, 0).tolist())
        keep.update(np.argmax(flat, 0).tolist())
    idx = np.array(sorted(keep))
    return {k: a[idx] for k, a in rows.items()}


def saturation(rows: np.ndarray, scale: float, zero_point: int, phases: int = 1) -> float:
    """Share of int8 input values that quantization as the engine does it clips to [-128, 127] (with `phases`
    phased copies: of the values of every copy, each on its shifted grid, `phase_offsets`)."""
    offsets = phase_offsets(phases)[:, None] if phases > 1 else None
    q = int8_codes(np.asarray(rows, np.float32), np.float32(scale), zero_point, offsets)
    return float(np.mean((q < -128) | (q > 127)))


def tflite_block(models: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest's `tflite` block and files of converted models {variant: TFLiteModel}."""

    variants, files = {}, {}
    for v, m in models.items():
        name = f"model_{v}.tflite"
        files[name] = m.data
        variants[v] = {
            "file": name,
            "inputs": {
                n: tflite_io_entry((m.input_quant or {}).get(n), (m.input_phases or {}).get(n, 1))
                for n in m.inputs
            },
            "output": tflite_io_entry(m.output_quant, m.output_phases),
        }
    return {"normalization_in_graph": False, "variants": variants}, files


LEAN = Phasing(4, 1, 8)
"""Phased int8 without hidden copies: for models with a large layer writing a hidden activation (`HIDDEN_COPY_LIMIT`)."""
HIDDEN_COPY_LIMIT = 16384
"""Hidden activations get copies only while every layer that writes one has at most this many weights: their
copies multiply a layer between two of them by hidden^2 (laq_mlp_emodb's 512 x 128 layer: int8 file 0.19 ->
1.08 MB, larger than fp32) and the first layer by hidden (ser_emodb's 327 x 64 extended-functionals layer: int8
file 94 -> 188 KB, twice fp32, for no gain: 100.00 % vs 99.81 % agreement with fp32), and the hidden grids are
the smallest source of flips (docs/tflite.md, "phased int8")."""


def default_phasing(bundle) -> Phasing | None:
    """The phased int8 (`tflite_phases`) an audio bundle's int8 variant gets: `FUNCTIONALS` (input x4, hidden
    x2, logits x8), or `LEAN` when a layer that writes a hidden activation (every one but the last) is larger
    than `HIDDEN_COPY_LIMIT`; None (plain int8) for face bundles. `convert_bundle(strict=False)` keeps plain int8 for a graph phasing cannot take
    (two inputs, attention, pools)."""
    if is_face(bundle):
        return None
    params = list(bundle.manifest.get("bitplan", {}).get("params", {}).values())
    return LEAN if any(p > HIDDEN_COPY_LIMIT for p in params[:-1]) else FUNCTIONALS


def convert_bundle(
    bundle,
    calibration: Mapping[str, np.ndarray] | None,
    variants: Sequence[str] = VARIANTS,
    input_ranges: Mapping[str, tuple[float, float]] | None = None,
    phasing: Phasing | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """{variant: TFLiteModel} of the bundle's graph (checked against onnxruntime first); `calibration` are
    standardised graph inputs (`device_rows`), needed for int8; `input_ranges` (`calibration_set`); `phasing`:
    the int8 variant as phased int8 (`tflite_phases.phase`); `strict=False`: plain int8, with a note on stderr,
    when the graph cannot be phased."""
    g = ot.bundle_graph(bundle)
    t = ot.trace(g)
    ot.check_parity(t, ot.reference_logits(bundle))
    out = {
        v: ot.convert(t, v, calibration, input_ranges=input_ranges) if v == "int8" else ot.convert(t, v)
        for v in variants
    }
    if phasing is not None and "int8" in out:
        try:
            out["int8"] = phased(out["int8"], phasing)
        except ConfigError as e:
            if strict:
                raise
            print(f"{bundle.source}: plain int8 ({e})", file=sys.stderr)
    return out


def phased(m, phasing: Phasing):
    """The int8 TFLiteModel `m` as phased int8 (`tflite_phases.phase`), its I/O copy counts recorded."""
    return dataclasses.replace(
        m,
        data=phase(m.data, phasing),
        input_phases={n: phasing.input for n in m.inputs},
        output_phases=phasing.output,
    )


def add_to_bundle(path: str | Path, models: Mapping[str, Any], as_tar: bool | None = None) -> Path:
    """Rewrite the bundle at `path` with the TFLite files and `tflite` block added; every other file is
    kept byte for byte (the manifest's `files` and manifest.sha256 are recomputed by write_bundle). `as_tar`:
    written as a .tar (None: as it is, a .tar when `path` is a file)."""
    from edge_ser.bundle import load_bundle
    from edge_ser.bundle.write import write_bundle

    b = load_bundle(path)
    block, files = tflite_block(models)
    manifest = dict(b.manifest)
    manifest["tflite"] = block
    kept = {n: d for n, d in b.files.items() if not n.endswith(".tflite")}
    tar = Path(path).is_file() if as_tar is None else as_tar
    return write_bundle(path, manifest=manifest, files={**kept, **files}, as_tar=tar)


def parse_phases(text: str) -> Phasing | None:
    """`--phases IN,HIDDEN,OUT` -> a Phasing (None for 1,1,1: plain int8)."""
    try:
        ks = [int(v) for v in text.split(",")]
    except ValueError:
        ks = []
    if len(ks) != 3:
        raise ConfigError(f"--phases takes three copy counts IN,HIDDEN,OUT (e.g. 4,2,8), got {text!r}")
    return None if ks == [1, 1, 1] else Phasing(*ks)


def main(argv: list[str] | None = None) -> int:
    from edge_ser.bundle import load_bundle
    from edge_ser.cli.common import in_range

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", help="bundle folder (rewritten in place with its TFLite variants)")
    p.add_argument(
        "--data",
        required=True,
        help="the data set the bundle was trained on: a name (emodb, ravdess, ...) or the folder (or labels "
        "CSV) of your own recordings it was made from (docs/data.md)",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="a named data set's folder (default: EDGE_SER_DATA / the usual places)",
    )
    p.add_argument(
        "--max-rows",
        type=in_range(1),
        default=None,
        help="calibrate on at most this many rows (+ extremes; at least 1)",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="input range from the training rows plus held-out-like copies (default: default_augment, every "
        "audio bundle but the patch models)",
    )
    p.add_argument(
        "--phases",
        default=None,
        metavar="IN,HIDDEN,OUT",
        help="phased int8: copies of the input, each hidden activation and the logits, e.g. 4,2,8; 1,1,1 = plain "
        "int8 (default: default_phasing: 4,2,8, or 4,1,8 with a large hidden layer; plain for face bundles and "
        "graphs phasing cannot take)",
    )
    a = p.parse_args(argv)
    b = load_bundle(a.bundle)
    phasing = default_phasing(b) if a.phases is None else parse_phases(a.phases)
    c = calibration_set(
        b, a.data, a.data_root, a.max_rows, a.augment, augment_quantile(phasing), progress=True
    )
    rows = c.rows
    models = convert_bundle(
        b, c.calibration, input_ranges=c.input_ranges, phasing=phasing, strict=a.phases is not None
    )
    add_to_bundle(a.bundle, models)
    m = models["int8"]
    sat = {n: saturation(rows[n], *m.input_quant[n], (m.input_phases or {}).get(n, 1)) for n in m.inputs}
    print(summary(a.bundle, len(next(iter(rows.values()))), models, sat))
    return 0


def summary(
    bundle: str | Path, n_rows: int, models: Mapping[str, Any], saturated: Mapping[str, float]
) -> str:
    """The command's last line, in words: the calibration rows, each variant's file size, each int8 input's
    scale, zero point and copies and the share of its calibration values that saturate, and, when the int8 file
    is larger than the fp16 one, why (it printed the dicts and tuples: "sizes {'fp32': 189312, ...}")."""
    sizes = {v: len(mm.data) for v, mm in models.items()}
    files = ", ".join(f"{v} {n / 1000:.1f} KB" for v, n in sizes.items())
    m = models["int8"]
    inputs = "; ".join(
        f"int8 input {n}: scale {scale:.4g}, zero point {zero}"
        + (
            f", {(m.input_phases or {}).get(n, 1)} phased copies"
            if (m.input_phases or {}).get(n, 1) > 1
            else ""
        )
        + f", {100 * saturated[n]:.2f} % of its calibration values saturate"
        for n, (scale, zero) in (m.input_quant or {}).items()
    )
    is_phased = m.output_phases > 1 or any(k > 1 for k in (m.input_phases or {}).values())
    why = (
        (
            " (the int8 file is larger than fp16: phased int8 stores each weight once per copy of its input and "
            "of its output, int8 codes tiled k_in x k_out times where fp16 stores one float16; docs/tflite.md)"
            if is_phased
            else " (the int8 file is larger than fp16: a small model's per-channel scales and zero points, a "
            "float32 and an int64 per channel, and int32 biases outweigh the byte its codes save per weight)"
        )
        if "fp16" in sizes and sizes["int8"] > sizes["fp16"]
        else ""
    )
    return f"{bundle}: {n_rows} calibration rows; files {files}{why}; {inputs}"


def _one_blas_thread():
    """threadpoolctl's limit of numpy's BLAS to one thread (scikit-learn's dependency, so on every host with the
    host extra), or nothing without it."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def run(argv: list[str] | None = None) -> int:
    """`main`, with an edge-ser error (a bad bundle, a data set not found) printed as one line and exit 2, and our
    own warnings (a skipped file, a data set's) one line each, as the CLI prints them (they came in Python's format,
    each with the source file and line that raised it)."""
    import warnings

    from edge_ser.cli import short_warnings
    from edge_ser.errors import EdgeSerError

    who = "python -m converters.export.tflite_bundle"
    default, warnings.formatwarning = warnings.formatwarning, short_warnings(who)
    try:
        # the features on one BLAS thread, as `edge-ser laq` computes them (edge_ser.cli sets OPENBLAS_NUM_THREADS=1):
        # with a thread per core their float rounding differs, and so did the int8 scales (by 2e-9)
        with _one_blas_thread():
            return main(argv)
    except EdgeSerError as e:
        print(f"{who}: error: {e}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = default


if __name__ == "__main__":
    sys.exit(run())
