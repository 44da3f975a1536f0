"""Clip features for a list of records, with an on-disk cache keyed by file content and FeatureSpec.

A second run over the same files and spec reads one small .npy per file and computes no features. Keys are
sha256(file bytes) and FeatureSpec.digest(), so renaming or moving a data set keeps its cache, and editing a
file or a spec parameter misses it.

Not every clip is learnt from (`clip_refusal`, checked on every run, cached or not): a clip shorter than one
analysis frame (the device refuses it: `edge_ser.inputs.base.check_clip_length`), and a clip of digital
silence (`edge-ser predict` marks it "no speech"; trained on, its folder's label would be learnt for silence),
are skipped with an InputWarning naming the file, as an undecodable file is (docs/features.md, "Clips that
are not learnt from").
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from converters.recipe import DEFAULT_SPEC
from edge_ser.errors import AudioFormatError, ConfigError, InputWarning
from edge_ser.features import FeatureSpec, file_vector
from edge_ser.features.egemaps import FunctionalsSpec, functionals
from edge_ser.fileio import atomic_write, atomic_writer
from edge_ser.inputs.base import check_clip_length


def default_cache_dir() -> Path:
    """$EDGE_SER_CACHE, else $XDG_CACHE_HOME/edge-ser, else ~/.cache/edge-ser."""
    if os.environ.get("EDGE_SER_CACHE"):
        return Path(os.environ["EDGE_SER_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "edge-ser"


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class FeatureCache:
    """Per-file feature vectors stored as `<root>/features/<spec digest>/<sha[:2]>/<sha>.npy`.

    Any spec with `digest()`, `to_json()` and `dim` keys it: a FeatureSpec (clip vectors) or a FunctionalsSpec
    (whose JSON names its kind, so the two never share a folder)."""

    root: Path = field(default_factory=default_cache_dir)
    hits: int = 0
    misses: int = 0

    def _path(self, spec: FeatureSpec, digest: str) -> Path:
        return Path(self.root) / "features" / spec.digest() / digest[:2] / f"{digest}.npy"

    def get(self, spec: FeatureSpec, digest: str) -> np.ndarray | None:
        path = self._path(spec, digest)
        try:
            vec = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # absent, or a damaged entry (recomputed and overwritten)
        return vec if vec.shape == (spec.dim,) else None

    def put(self, spec: FeatureSpec, digest: str, vec: np.ndarray) -> None:
        """Store one vector. A cache that cannot be written (under a file, no permission, a full disk) is a
        ConfigError naming it, not a file that seems undecodable (extract skips those)."""
        path = self._path(spec, digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            spec_file = path.parent.parent / "spec.json"
            if not spec_file.exists():
                atomic_write(spec_file, spec.to_json(), permissions=None)
            with atomic_writer(path, fsync=False, permissions=None) as fh:  # a lost entry is recomputed
                np.save(fh, np.asarray(vec, dtype=np.float32), allow_pickle=False)
        except OSError as e:
            raise ConfigError(
                f"feature cache {self.root}: cannot write {path.name}: {e.strerror or e}; give another --cache "
                "folder, or --no-cache"
            ) from None


@dataclass(frozen=True)
class ExtractStats:
    """What an extraction did: files, cache hits/misses, wall time in seconds, and the files it skipped."""

    files: int
    hits: int
    misses: int
    seconds: float
    skipped: tuple[tuple[Path, str], ...] = ()
    """(path, why) of each file skipped (only when not `strict`): its audio could not be decoded, or its clip is
    not one to learn from (`clip_refusal`: too short, digital silence)."""
    kept: tuple[int, ...] | None = None
    """Indices into the input of the rows returned, when some were skipped; None when every file was kept."""


Compute = Callable[[Path, Any], np.ndarray]
"""A file's vector under a spec: `file_vector` (the default) or `file_functionals`."""


def file_functionals(path: str | os.PathLike, spec: FunctionalsSpec = FunctionalsSpec()) -> np.ndarray:
    """The 88 functionals of an audio file as one clip (mono, resampled to spec.sample_rate)."""
    from edge_ser.audio import load

    y, _ = load(Path(path), sr=spec.sample_rate, mono=True)
    return functionals(y, sr=spec.sample_rate, spec=spec)


SILENT = "digital silence"
"""`clip_refusal`'s reason for a clip whose every sample is 0 (it starts with this)."""
NAMED_SKIPS = 10
"""Skipped files `extract` names in a warning each; past that, one more warning counts the rest by reason."""


def clip_refusal(path: str | os.PathLike, spec: Any, *, keep_silent: bool = False) -> str | None:
    """Why a file's clip is not one to learn from, or None when it is: shorter than one analysis frame
    (`spec.n_fft` samples at `spec.sample_rate`: `check_clip_length`, the rule by which the device refuses it),
    or, unless `keep_silent`, digital silence (every sample the same value, 0 or a DC offset the features
    remove: the rule by which `edge-ser predict` marks a file "no speech"; its folder's label would be learnt
    for silence).

    A file is read once at its own rate, a block at a time (no resampling: the clip's length at `spec`'s rate
    is `resample`'s ceil(n * rate / source rate), and zeros stay zeros), about what its digest costs for a WAV.
    Only digital silence is refused, not the -45 dBFS voice gate: whole studio clips are quieter than that with
    their pauses (235 of RAVDESS' 720 speech clips, down to -64 dBFS), and are speech. A file that cannot be
    decoded raises AudioFormatError (or OSError), as its features would."""
    from edge_ser.audio.stream import open_blocks

    path = Path(path)
    n, nan = 0, False
    lo, hi = math.inf, -math.inf  # one value throughout (0, or a DC offset the features remove): silence
    with open_blocks(path) as blocks:
        source_rate = blocks.sample_rate
        for block in blocks:
            n += block.size
            nan = nan or bool(np.isnan(block).any())  # NaN samples: not silence; the features refuse them
            if block.size and not nan:
                lo, hi = min(lo, float(np.min(block))), max(hi, float(np.max(block)))
    try:
        check_clip_length(-(-n * spec.sample_rate // source_rate), spec.sample_rate, spec.n_fft, str(path))
    except AudioFormatError as e:
        return str(e).removeprefix(f"{path}: ")
    if not (keep_silent or nan) and lo == hi:  # predict's "no speech": loudest_db is -inf once DC is removed
        return (
            f"{SILENT}: every sample is {'0' if lo == 0 else f'the same value ({lo:.3g})'}, no speech to learn a "
            "label from (predict says 'no speech')"
        )
    return None


def _vector(path: Path, spec: Any, cache: FeatureCache | None, compute: Compute) -> tuple[np.ndarray, bool]:
    """One file's feature vector and whether it came from the cache."""
    if cache is None:
        return compute(path, spec), False
    digest = file_digest(path)
    vec = cache.get(spec, digest)
    if vec is not None:
        return vec, True
    vec = compute(path, spec)
    cache.put(spec, digest, vec)
    return vec, False


def extract(
    paths: Sequence[str | os.PathLike] | Iterable,
    spec: FeatureSpec = DEFAULT_SPEC,
    *,
    cache: FeatureCache | None = None,
    progress: bool = True,
    desc: str = "features",
    strict: bool = True,
    compute: Compute = file_vector,
    keep_silent: bool = False,
) -> tuple[np.ndarray, ExtractStats]:
    """Feature vectors [len(paths), spec.dim] for audio files (or records with a `.source`), cached when given.

    `compute(path, spec)` makes one file's vector: the clip vector by default, `file_functionals` with a
    FunctionalsSpec (see `functionals_matrix`).

    A file that cannot be decoded, and a clip not to learn from (`clip_refusal`: shorter than one analysis
    frame, or digital silence unless `keep_silent`), are skipped with an InputWarning naming the file (the
    first `NAMED_SKIPS`, then one warning counting the rest): the matrix has a row per file kept,
    `stats.kept` says which and `stats.skipped` lists the others with the reason. `strict` (the default)
    raises AudioFormatError naming the first such file instead, so with it every path has its row.
    """
    paths = [Path(getattr(p, "source", p)) for p in paths]
    out = np.empty((len(paths), spec.dim), dtype=np.float32)
    hits = misses = 0
    kept: list[int] = []
    skipped: list[tuple[Path, str]] = []
    t0 = time.perf_counter()
    for i, path in enumerate(
        tqdm(paths, desc=desc, unit="file", disable=None if progress else True, leave=False)
    ):
        try:
            refused = clip_refusal(path, spec, keep_silent=keep_silent)
            if refused is not None:
                raise AudioFormatError(f"{path}: {refused}")
            vec, hit = _vector(path, spec, cache, compute)
        except (AudioFormatError, OSError) as e:
            if strict:
                raise
            why = str(e).removeprefix(f"{path}: ") if isinstance(e, AudioFormatError) else str(e)
            skipped.append((path, why))
            if len(skipped) <= NAMED_SKIPS:
                warnings.warn(f"{desc}: skipped {path}: {why}", InputWarning, stacklevel=2)
            continue
        hits, misses = hits + hit, misses + (not hit)
        out[len(kept)] = vec
        kept.append(i)
    if len(skipped) > NAMED_SKIPS:
        warnings.warn(f"{desc}: {_more_skipped(skipped[NAMED_SKIPS:])}", InputWarning, stacklevel=2)
    if cache is not None:
        cache.hits += hits
        cache.misses += misses
    stats = ExtractStats(
        len(paths),
        hits,
        misses,
        time.perf_counter() - t0,
        tuple(skipped),
        tuple(kept) if skipped else None,
    )
    return out[: len(kept)], stats


def _more_skipped(rest: Sequence[tuple[Path, str]]) -> str:
    """The warning for the skipped files past the named ones: their count by reason, and one example."""
    kinds = Counter(
        SILENT if why.startswith(SILENT) else "too short" if "is too short" in why else "cannot be decoded"
        for _, why in rest
    )
    counts = ", ".join(f"{k} {kind}" for kind, k in kinds.most_common())
    return f"skipped {len(rest)} more file(s) ({counts}), e.g. {rest[0][0]}: {rest[0][1]}"


def functionals_matrix(
    records: Sequence[str | os.PathLike] | Iterable,
    spec: FunctionalsSpec = FunctionalsSpec(),
    *,
    cache: FeatureCache | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The functionals [n, 88] float32 of audio files or records (`.source`), each file computed once and then
    read from `cache` (keyed by file content and spec, as the clip vectors are). A file that cannot be decoded,
    or whose clip `extract` would skip (`clip_refusal`), raises AudioFormatError naming it: the rows stay those
    of `records`, which the callers pair with their labels and speakers."""
    X, _ = extract(
        records, spec, cache=cache, progress=progress, desc="functionals", compute=file_functionals
    )
    return X


SPEED_FACTORS = (0.9, 1.1)
"""Speed perturbation factors of the training copies (Ko et al., "Audio augmentation for speech recognition",
Interspeech 2015: Kaldi's 0.9 / 1.0 / 1.1). A factor s plays the clip s times as fast: pitch, formants and
tempo all move by s, as they do between two speakers, which is the variation a speaker-independent model must
ignore."""


def _copies_matrix(
    records: Sequence[Any],
    spec: FunctionalsSpec,
    copies: int,
    key: Callable[[str, int, int], str],
    make: Callable[[np.ndarray, int, int], np.ndarray],
    *,
    cache: FeatureCache | None,
    progress: bool,
    desc: str,
) -> np.ndarray:
    """The functionals [copies, n, spec.dim] of `make(y, i, k)` (copy k of file i's audio y, mono at the spec's
    rate), each read from `cache` under `key(file digest, i, k)` when there and computed (the file decoded once)
    when not: the loop the augmented-copy matrices share."""
    from edge_ser.audio import load

    out = np.zeros((copies, len(records), spec.dim), np.float32)
    bar = tqdm(total=copies * len(records), desc=desc, disable=None if progress else True)
    for i, r in enumerate(records):
        path = Path(getattr(r, "source", r))
        base = file_digest(path) if cache is not None else ""
        y = None
        for k in range(copies):
            digest = hashlib.sha256(key(base, i, k).encode()).hexdigest()
            vec = cache.get(spec, digest) if cache is not None else None
            if cache is not None:
                cache.hits, cache.misses = cache.hits + (vec is not None), cache.misses + (vec is None)
            if vec is None:
                if y is None:
                    y, _ = load(path, sr=spec.sample_rate, mono=True)
                vec = functionals(make(y, i, k), sr=spec.sample_rate, spec=spec)
                if cache is not None:
                    cache.put(spec, digest, vec)
            out[k, i] = vec
            bar.update()
    bar.close()
    return out


def speed_functionals_matrix(
    records: Sequence[Any],
    spec: FunctionalsSpec = FunctionalsSpec(),
    *,
    factors: Sequence[float] = SPEED_FACTORS,
    cache: FeatureCache | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The functionals [len(factors), n, spec.dim] of every file speed-perturbed by each factor: resampled
    from the spec's rate to rate / factor and read at the spec's rate (sox's `speed`), so 0.9 is slower and
    lower. Training copies only (each copy is its own speaker for per-speaker normalisation); cached per
    (file, spec, factor)."""
    from edge_ser.audio import resample

    sr = spec.sample_rate
    for f in factors:
        if not 0.5 <= float(f) <= 2.0:
            raise ConfigError(f"speed factor {f!r}: use 0.5..2.0 (0.9 and 1.1 are the usual pair)")
    return _copies_matrix(
        records,
        spec,
        len(factors),
        lambda base, i, k: f"{base} speed {float(factors[k]):.4f}",
        lambda y, i, k: resample(np.asarray(y, np.float32), sr, int(round(sr / float(factors[k])))),
        cache=cache,
        progress=progress,
        desc="speed-perturbed functionals",
    )


def noisy_functionals_matrix(
    records: Sequence[Any],
    spec: FunctionalsSpec = FunctionalsSpec(),
    *,
    snr_db: tuple[float, float] = (20.0, 50.0),
    copies: int = 2,
    seed: int = 0,
    cache: FeatureCache | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The functionals [copies, n, spec.dim] of every file with white noise added, `copies` times, each copy at
    an SNR (noise RMS below the clip's RMS) drawn uniformly from `snr_db` per clip and copy, seeded.

    Why: a corpus recorded in a studio (RAVDESS' pauses are at ~-96 dBFS) teaches a model that pauses are
    silent, and every microphone's noise floor then moves the pause-dependent functionals (loudness percentile
    20, unvoiced spectra) by tens of training standard deviations. Cached per (file, spec, SNR, seed)."""
    snrs = np.random.default_rng(seed).uniform(*snr_db, size=(copies, len(records)))

    def noisy(y: np.ndarray, i: int, k: int) -> np.ndarray:
        y = np.asarray(y, np.float64) - float(np.mean(y))
        rms = float(np.sqrt(np.mean(y * y))) or 1e-6
        noise = np.random.default_rng([seed, k, i]).standard_normal(y.size)
        return (y + noise * rms * 10 ** (-snrs[k, i] / 20)).astype(np.float32)

    return _copies_matrix(
        records,
        spec,
        copies,
        lambda base, i, k: f"{base} noise {snrs[k, i]:.4f} seed {seed} copy {k}",
        noisy,
        cache=cache,
        progress=progress,
        desc="noisy functionals",
    )


def reverb_functionals_matrix(
    records: Sequence[Any],
    spec: FunctionalsSpec = FunctionalsSpec(),
    *,
    rooms: Any = None,
    copies: int = 2,
    seed: int = 0,
    sessions: Sequence[str] | None = None,
    cache: FeatureCache | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The functionals [copies, n, spec.dim] of every file in a synthetic room (`converters.reverb`), `copies`
    times, seeded: each (file, copy) its own room (RT60 and DRR drawn from `rooms`, a `RoomSpec`) and impulse
    response; with `sessions` (a key per file, e.g. its speaker) the files of one session share one room and one
    impulse response per copy, as a user's clips do on a device. Cached per (file, spec, room, seed, copy, and the
    file's position or its session's: the impulse response is drawn by it).

    Why: a device's microphone hears the room. Without reverberant training views, ser_ravdess on EMODB falls
    from 34.9 to 23.1 % UAR at RT60 0.4 s with its training prior (docs/protocol.md, "Reverberation")."""
    from converters.reverb import RoomSpec, reverberate, room_impulse_response

    rooms = RoomSpec() if rooms is None else rooms
    if sessions is None:
        unit, tag = np.arange(len(records)), 11
    else:
        if len(sessions) != len(records):
            raise ConfigError(
                f"reverb_functionals_matrix: {len(sessions)} session keys for {len(records)} files"
            )
        _, unit = np.unique(np.asarray([str(s) for s in sessions]), return_inverse=True)
        tag = 13
    draws = np.random.default_rng([seed, 7 if sessions is None else 9]).random(
        (copies, int(unit.max()) + 1, 2)
    )
    lo_t, hi_t = rooms.rt60
    lo_d, hi_d = rooms.drr_db
    rt60 = lo_t + draws[..., 0] * (hi_t - lo_t)
    drr = lo_d + draws[..., 1] * (hi_d - lo_d)

    def wet(y: np.ndarray, i: int, k: int) -> np.ndarray:
        u = int(unit[i])
        rng = np.random.default_rng([seed, k, u, tag])
        h = room_impulse_response(rt60[k, u], drr[k, u], spec.sample_rate, rng, predelay_ms=rooms.predelay_ms)
        return reverberate(y, h)

    def key(base: str, i: int, k: int) -> str:
        u = int(unit[i])
        room = f"room {rt60[k, u]:.4f} {drr[k, u]:.4f} {rooms.predelay_ms} seed {seed} copy {k}"
        # the impulse response is drawn by the unit (without sessions: the file's position), which a fixed room's
        # RT60 and DRR do not tell apart (a list in another order read other positions' responses)
        return f"{base} {room}" + (f" file {u}" if sessions is None else f" session {u} of {len(rt60[k])}")

    return _copies_matrix(
        records, spec, copies, key, wet, cache=cache, progress=progress, desc="reverberant functionals"
    )


def cropped_functionals_matrix(
    records: Sequence[Any],
    spec: FunctionalsSpec = FunctionalsSpec(),
    *,
    lengths: Sequence[float] | None = None,
    copies: int = 2,
    shortest: float = 0.75,
    lead: float = 0.2,
    seed: int = 0,
    cache: FeatureCache | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The functionals [copies or len(lengths), n, spec.dim] of every file cut to a stretch of its speech, from
    `lead` s before its first speech frame (`edge_ser.audio.pauses.speech_span`): `lengths` seconds of speech each
    (fixed views, for testing), or, without `lengths`, `copies` training copies whose length of speech is drawn
    uniformly from `shortest` to all of it: one draw per file and copy from a generator seeded by `seed`, in the
    order of `records` (the same list gives the same views; a list with a file more or less, other draws). A file
    with less than `shortest` of speech is cut `shortest` after its speech starts (so all of its speech is kept); a
    file without speech (`speech_span` finds none) is used whole. Cached per (file, spec, length or draw).

    Why: every training clip of a corpus is about as long as the others, and a live user's utterances are not
    (ser_ravdess reads the first 1 s of its own clips' speech at 40 % UAR against 85.7 % whole: docs/protocol.md,
    "Utterance length")."""
    from edge_ser.audio.pauses import speech_span

    sr = spec.sample_rate
    if lengths is not None and any(not 0 < float(v) <= 60 for v in lengths):
        raise ConfigError(f"cropped_functionals_matrix: lengths {list(lengths)} must be in (0, 60] s")
    if not 0 < shortest <= 60 or not 0 <= lead <= 5:
        raise ConfigError(f"cropped_functionals_matrix: shortest {shortest} s, lead {lead} s out of range")
    n_views = len(lengths) if lengths is not None else copies
    draws = np.random.default_rng([seed, 17]).random((n_views, len(records)))

    def stretch(i: int, k: int, speech: float) -> float:
        """Seconds of speech kept in view k of file i (`speech`: all of it)."""
        if lengths is not None:
            return float(lengths[k])
        return shortest + draws[k, i] * max(0.0, speech - shortest)

    def cut(y: np.ndarray, i: int, k: int) -> np.ndarray:
        span = speech_span(np.asarray(y, np.float32), sr)
        if span is None:
            return y
        a, b = span
        keep = stretch(i, k, (b - a) / sr)
        return y[max(0, a - int(round(lead * sr))) : a + int(round(keep * sr))]

    def key(base: str, i: int, k: int) -> str:
        what = (
            f"{float(lengths[k]):.4f}" if lengths is not None else f"draw {draws[k, i]:.6f} from {shortest:g}"
        )
        return f"{base} crop {what} lead {lead:g} seed {seed} copy {k}"

    return _copies_matrix(
        records, spec, n_views, key, cut, cache=cache, progress=progress, desc="cropped functionals"
    )


NOISY_COPIES = 2
"""Noisy copies of every clip in the ser_* training set (`training_copies`)."""


def training_copies(
    records: Sequence[Any],
    spec: FunctionalsSpec = FunctionalsSpec(),
    *,
    cache: FeatureCache | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The ser_* bundles' augmented views of every file, [NOISY_COPIES + len(SPEED_FACTORS), n, spec.dim]:
    the `NOISY_COPIES` noisy copies (`noisy_functionals_matrix`), then one speed-perturbed copy per
    `SPEED_FACTORS` (`speed_functionals_matrix`). benchmarks/ship_ser.py trains on them and the si_table's
    `functionals_ext_aug` input measures them."""
    noisy = noisy_functionals_matrix(records, spec, copies=NOISY_COPIES, cache=cache, progress=progress)
    speed = speed_functionals_matrix(records, spec, cache=cache, progress=progress)
    return np.concatenate([noisy, speed]).astype(np.float32)
