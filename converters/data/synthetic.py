"""A small deterministic synthetic speech-emotion data set, so every command and test runs without downloads.

Each clip is source-filter "speech": a band-limited harmonic series (glottal pulse train; spectral tilt
-12 dB/oct for neutral) plus aspiration noise, shaped frame by frame (STFT) by three gliding vowel formants,
gated into syllables, with fricative bursts between them. The emotion sets mean pitch, pitch range,
jitter/tremor, energy, tempo, spectral tilt and breathiness; speakers shift pitch, formants, level and rate;
every clip draws its own variation, so classes overlap but stay learnable. Vectorised numpy: the default
210 clips take 1-1.5 s on one core.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from converters.data.labels import LABELS
from converters.data.records import Record
from converters.data.scan import Skipped, data_files
from edge_ser.audio.wav import write_wav
from edge_ser.errors import ConfigError, DatasetError
from edge_ser.fileio import atomic_write
from edge_ser.schema import config_from_dict

GENERATOR_VERSION = 1  # bump whenever the signal model changes, so written data sets regenerate
SPEC_FILE = "spec.json"
_NAME = re.compile(r"^([A-Za-z0-9]+)_([a-z]+)_(\d{3,})\.wav$")


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: clips per class, sample rate, clip length (s), speakers, seed and the classes."""

    n_per_class: int = 30
    sr: int = 16000
    duration: float = 1.5
    n_speakers: int = 6
    seed: int = 0
    labels: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fear", "disgust", "boredom")

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if not (isinstance(self.n_per_class, int) and self.n_per_class >= 1):
            raise ConfigError(f"SyntheticSpec.n_per_class={self.n_per_class!r} must be an integer >= 1")
        if not (isinstance(self.sr, int) and 8000 <= self.sr <= 96000):
            raise ConfigError(
                f"SyntheticSpec.sr={self.sr!r} must be an integer sample rate in 8000..96000 Hz"
            )
        if not 0.5 <= float(self.duration) <= 30:
            raise ConfigError(f"SyntheticSpec.duration={self.duration!r} must be 0.5..30 seconds")
        if not (isinstance(self.n_speakers, int) and 1 <= self.n_speakers <= 99):
            raise ConfigError(f"SyntheticSpec.n_speakers={self.n_speakers!r} must be an integer in 1..99")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ConfigError(f"SyntheticSpec.seed={self.seed!r} must be a non-negative integer")
        unknown = [name for name in self.labels if name not in _STYLES]
        if not self.labels or unknown or len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"SyntheticSpec.labels={self.labels!r} must be distinct names from {LABELS}")

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> SyntheticSpec:
        """Inverse of to_dict; ConfigError on unknown fields."""
        return config_from_dict(cls, data, labels=tuple)

    def speakers(self) -> tuple[str, ...]:
        """Speaker names s01, s02, ..."""
        return tuple(f"s{i + 1:02d}" for i in range(self.n_speakers))

    def clips(self) -> list[tuple[str, int, str]]:
        """(label, index within its class, speaker) of every clip, in generation order."""
        names = self.speakers()
        return [
            (label, i, names[i % self.n_speakers]) for label in self.labels for i in range(self.n_per_class)
        ]


@dataclass(frozen=True)
class _Style:
    """How one emotion sounds: class means; each clip varies around them."""

    pitch: float  # semitones relative to the speaker's base f0
    range: float  # semitones, s.d. of per-syllable pitch accents
    jitter: float  # relative s.d. of fast f0 perturbation
    tremor: float  # semitones of 5-7 Hz f0 tremor
    energy: float  # dB relative to neutral
    tempo: float  # syllables per second
    tilt: float  # dB per octave of the glottal source
    breath: float  # aspiration noise relative to voicing, dB


_STYLES: dict[str, _Style] = {
    # pitch, range, jitter, tremor, energy, tempo, tilt, breath (see _Style)
    "neutral": _Style(0.0, 2.5, 0.010, 0.1, 0.0, 4.3, -12.0, -30.0),
    "calm": _Style(-1.0, 1.8, 0.008, 0.1, -3.0, 3.8, -13.0, -26.0),
    "happy": _Style(4.0, 6.5, 0.012, 0.2, 3.0, 5.0, -10.0, -28.0),  # high, wide range
    "sad": _Style(-2.5, 1.5, 0.014, 0.3, -7.0, 3.1, -14.5, -20.0),  # low, slow, quiet, steep tilt
    "angry": _Style(4.5, 4.0, 0.015, 0.2, 6.0, 5.4, -7.5, -30.0),  # loud, high, fast, flat tilt
    "fear": _Style(6.5, 3.5, 0.050, 0.8, 1.0, 6.2, -10.5, -21.0),  # highest, strong jitter, fastest
    "disgust": _Style(-1.0, 2.5, 0.020, 0.2, -2.0, 3.6, -12.0, -13.0),  # low-mid, slow-ish, breathy
    "surprise": _Style(5.0, 7.0, 0.012, 0.2, 3.0, 4.6, -9.5, -26.0),
    "boredom": _Style(-3.0, 0.6, 0.008, 0.1, -3.0, 3.0, -13.0, -27.0),  # low, flat, slow
}
# Vowel formants (F1, F2, F3) in Hz for an adult male; speakers scale them.
_VOWELS = np.array(
    [
        [730, 1090, 2440],
        [270, 2290, 3010],
        [300, 870, 2240],
        [530, 1840, 2480],
        [570, 840, 2410],
        [660, 1720, 2410],
        [490, 1350, 1690],
    ],
    dtype=np.float64,
)
_BANDWIDTHS = np.array([80.0, 100.0, 150.0])
_FORMANT_GAINS = np.array([1.0, 0.6, 0.35])
_LEVEL_DB = -27.0  # RMS of active neutral speech, dBFS


@dataclass(frozen=True)
class _Speaker:
    f0: float
    formants: float
    level: float
    rate: float


def _speaker(spec: SyntheticSpec, i: int) -> _Speaker:
    """Speaker i's voice: alternating male/female base pitch and formant scale, own level and rate."""
    rng = np.random.default_rng([spec.seed, 1_000_003, i])
    female = i % 2 == 1
    return _Speaker(
        f0=(205.0 if female else 115.0) * 2 ** (rng.normal(0, 1.5) / 12),
        formants=(1.15 if female else 1.0) * (1 + rng.normal(0, 0.03)),
        level=rng.normal(0, 1.0),
        rate=float(np.exp(rng.normal(0, 0.06))),
    )


def _syllables(rng: np.random.Generator, n: int, sr: int, tempo: float) -> list[tuple[int, int, int]]:
    """(onset, nucleus start, nucleus end) sample positions of the syllables that fit in n samples."""
    out, t = [], rng.uniform(0.04, 0.15) * sr
    end = n - rng.uniform(0.05, 0.15) * sr
    while True:
        length = sr / tempo * np.exp(rng.normal(0, 0.25))
        if rng.random() < 0.12:  # a short pause between phrases
            t += rng.uniform(0.1, 0.3) * sr
        onset = rng.uniform(0.1, 0.3) * length if rng.random() < 0.6 else 0.0
        nucleus = rng.uniform(0.55, 0.8) * length
        if t + onset + nucleus > end:
            break
        out.append((int(t), int(t + onset), int(t + onset + nucleus)))
        t += length
    if not out:  # very short clips still get one syllable
        out.append((int(0.05 * sr), int(0.05 * sr), int(max(0.1 * sr, end))))
    return out


def _window(length: int) -> np.ndarray:
    """A syllable nucleus envelope: quick rise, a plateau and a slower decay."""
    x = np.linspace(0.0, 1.0, max(length, 2))
    rise, fall = np.clip(x / 0.15, 0, 1), np.clip((1 - x) / 0.35, 0, 1)
    return (np.sin(0.5 * np.pi * rise) * np.sin(0.5 * np.pi * fall) ** 1.5)[:length]


def _blit(phase: np.ndarray, k: int) -> np.ndarray:
    """Band-limited pulse train: sum_{h=1..k} cos(h * phase), in closed form."""
    half = np.sin(0.5 * phase)
    safe = np.abs(half) > 1e-6
    out = np.full(phase.shape, float(k))
    out[safe] = np.sin((k + 0.5) * phase[safe]) / (2 * half[safe]) - 0.5
    return out


def _stft_filter(x: np.ndarray, envelope: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Shape x by a per-frame magnitude envelope ([frames, n_fft//2+1]) with weighted overlap-add."""
    n = x.size
    frames = envelope.shape[0]
    padded = np.zeros((frames - 1) * hop + n_fft)
    padded[n_fft // 2 : n_fft // 2 + n] = x
    win = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft))  # sqrt periodic Hann
    idx = np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]
    spec = np.fft.rfft(padded[idx] * win, axis=1) * envelope
    out = np.zeros_like(padded)
    np.add.at(out, idx, np.fft.irfft(spec, n=n_fft, axis=1) * win)
    return out[n_fft // 2 : n_fft // 2 + n] * (hop / (0.5 * n_fft))


def _clip(spec: SyntheticSpec, label: str, index: int, voice: _Speaker) -> np.ndarray:
    """One clip of `label` by one speaker, float32 with peak <= 0.9."""
    rng = np.random.default_rng([spec.seed, LABELS.index(label), index])
    style, sr = _STYLES[label], spec.sr
    n = round(spec.duration * sr)
    t = np.arange(n) / sr

    def lognormal(sd: float) -> float:
        return float(np.exp(rng.normal(0, sd)))

    # per-clip draw around the class means
    tempo = style.tempo * voice.rate * lognormal(0.10)
    pitch = style.pitch + rng.normal(0, 1.0)
    accent = style.range * lognormal(0.25)
    jitter = style.jitter * lognormal(0.25)
    tilt = style.tilt + rng.normal(0, 1.0)
    breath = style.breath + rng.normal(0, 2.5)
    level = _LEVEL_DB + style.energy + voice.level + rng.normal(0, 2.0)

    # syllables -> voicing envelope, pitch targets and vowel formants
    syllables = _syllables(rng, n, sr, tempo)
    voiced = np.zeros(n)
    centres, targets, vowels = [], [], []
    for _, start, end in syllables:
        voiced[start:end] += _window(end - start) * rng.uniform(0.6, 1.0)
        centres.append(0.5 * (start + end) / sr)
        targets.append(rng.normal(0, accent))
        vowels.append(_VOWELS[rng.integers(len(_VOWELS))])
    centres = np.array(centres)
    declination = -rng.uniform(1.0, 3.0) * t / spec.duration
    control = np.arange(0, n + sr // 200, sr // 200)  # 200 Hz jitter control rate
    jitter_track = np.interp(np.arange(n), control, rng.normal(0, jitter, control.size))
    tremor = style.tremor * np.sin(2 * np.pi * rng.uniform(5, 7) * t + rng.uniform(0, 2 * np.pi))
    semitones = pitch + np.interp(t, centres, targets) + declination + tremor
    f0 = voice.f0 * 2 ** (semitones / 12) * (1 + jitter_track)
    f0 = np.clip(f0, 50.0, 0.2 * sr)

    # source: harmonic series up to 0.45 sr plus aspiration noise, both gated by the voicing envelope
    phase = 2 * np.pi * np.cumsum(f0) / sr + rng.uniform(0, 2 * np.pi)
    harmonics = max(1, int(0.45 * sr / f0.max()))
    source = _blit(np.mod(phase, 2 * np.pi), harmonics) / np.sqrt(harmonics)
    source = source + rng.normal(0, 10 ** (breath / 20) * np.sqrt(0.5), n)
    source *= voiced

    # filter: per-frame tilt x radiation x (parallel formant resonances), formants glide between syllables
    hop = max(1, round(0.008 * sr))
    n_fft = int(2 ** np.ceil(np.log2(4 * hop)))
    frames = n // hop + 1
    freq = np.fft.rfftfreq(n_fft, 1 / sr)[None, :]
    frame_t = np.arange(frames) * hop / sr
    formants = np.stack([np.interp(frame_t, centres, np.array(vowels)[:, j]) for j in range(3)], axis=1)
    formants = formants * voice.formants * (1 + rng.normal(0, 0.04, 3))
    ref = float(np.median(f0))
    envelope = (np.maximum(freq, ref) / ref) ** (tilt / 6.02) * (np.maximum(freq, 50.0) / 500.0)
    resonance = np.full((frames, freq.shape[1]), 0.01)
    for j in range(3):
        fj, bj = formants[:, j : j + 1], _BANDWIDTHS[j] * voice.formants
        resonance += _FORMANT_GAINS[j] * (bj * freq) ** 2 / ((fj**2 - freq**2) ** 2 + (bj * freq) ** 2)
    y = _stft_filter(source, envelope * resonance, n_fft, hop)

    # fricative bursts at syllable onsets, band-passed white noise
    for onset, start, _ in syllables:
        if start - onset < 8:
            continue
        burst = rng.normal(0, 1, start - onset)
        centre = min(rng.choice([2500.0, 4500.0, 6000.0]), 0.4 * sr)
        f = np.fft.rfftfreq(burst.size, 1 / sr)
        burst = np.fft.irfft(
            np.fft.rfft(burst) * np.exp(-0.5 * ((f - centre) / (0.25 * centre)) ** 2), burst.size
        )
        burst *= np.hanning(burst.size)  # window after filtering: no clicks at the edges
        y[onset:start] += burst * 10 ** (rng.uniform(-20, -12) / 20) * np.sqrt(np.mean(y**2) + 1e-12) * 4

    # level: active-speech RMS per class/speaker/clip, a quiet noise floor, peak limit 0.9
    active = voiced > 0.1
    rms = np.sqrt(np.mean(y[active] ** 2)) if active.any() else np.sqrt(np.mean(y**2))
    y = y * (10 ** (level / 20) / max(rms, 1e-12))
    y = y + rng.normal(0, 10 ** (-62 / 20), n)
    peak = np.abs(y).max()
    if peak > 0.9:
        y *= 0.9 / peak
    return y.astype(np.float32)


def generate(spec: SyntheticSpec | None = None) -> list[tuple[np.ndarray, str, str]]:
    """All clips of `spec` as (waveform float32 [-1, 1], label, speaker), class by class. Deterministic."""
    return list(iter_clips(spec))


def iter_clips(spec: SyntheticSpec | None = None) -> Iterator[tuple[np.ndarray, str, str]]:
    """`generate`'s clips one at a time, each made when asked for: `write` holds one clip in memory, not the set."""
    spec = spec or SyntheticSpec()
    voices = [_speaker(spec, i) for i in range(spec.n_speakers)]
    names = spec.speakers()
    for label, i, speaker in spec.clips():
        yield _clip(spec, label, i, voices[names.index(speaker)]), label, speaker


def _file_name(label: str, index: int, speaker: str) -> str:
    return f"{speaker}_{label}_{index:03d}.wav"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_state(root: Path) -> dict | None:
    """The previous spec.json, or None when absent or unreadable."""
    try:
        state = json.loads((root / SPEC_FILE).read_text())
        return state if isinstance(state, dict) else None
    except (OSError, ValueError):
        return None


def spec_record(spec: SyntheticSpec) -> dict:
    """What fixes every clip of a set: its spec and the generator version (the head of spec.json, and a bundle's
    `accuracy.synthetic`, from which `edge-ser eval --data synthetic` rebuilds the set it was trained on)."""
    return {"generator_version": GENERATOR_VERSION, "spec": spec.to_dict()}


def written_spec(root: str | os.PathLike) -> SyntheticSpec | None:
    """The spec of the set `write` made in folder `root` (its spec.json), or None when it holds none."""
    try:
        return SyntheticSpec.from_dict((_read_state(Path(root)) or {})["spec"])
    except (KeyError, TypeError, ValueError, ConfigError):
        return None


def check_target(root: str | os.PathLike, what: str = "") -> None:
    """ConfigError when `root` is a folder that holds other files and no synthetic data set (no spec.json):
    `write` would mix the clips into them (a folder of the user's own recordings). `what` names the option the
    folder came from ("--root "), said before it."""
    path = Path(root).expanduser()
    if path.is_dir() and any(path.iterdir()) and not (path / SPEC_FILE).is_file():
        raise ConfigError(
            f"{what}{path}: holds other files and no synthetic data set ({SPEC_FILE}); give an empty or new folder"
        )


def write(spec: SyntheticSpec | None, root: str | os.PathLike, *, progress: bool = False) -> list[Record]:
    """Write the data set as `<root>/<speaker>_<label>_<index>.wav` plus `spec.json`; return its records.
    `progress`: a progress bar over the clips on a terminal (`edge-ser synth`; 7,000 clips take ~30 s).

    Idempotent: files already written for the same spec (and generator version) with unchanged contents are
    left alone; a different spec regenerates everything and removes the previous spec's files.
    """
    spec = spec or SyntheticSpec()
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    wanted = spec_record(spec)
    old = _read_state(root)
    same = old is not None and all(old.get(k) == v for k, v in wanted.items())
    old_files: dict = (old or {}).get("files") or {}
    names = [_file_name(*clip) for clip in spec.clips()]
    if (
        same
        and set(old_files) == set(names)
        and all((root / name).is_file() and _sha256(root / name) == old_files[name] for name in names)
    ):
        return load_synthetic(root)

    from tqdm.auto import tqdm

    if not same:
        # spec.json first, listing every clip this spec and the previous one name (none verified yet), so a run
        # stopped while writing clips leaves a folder the next `write` recognises as its own (it was refused as
        # "holds other files and no synthetic data set") and whose stale clips it removes
        pending = dict.fromkeys(sorted(set(names) | {str(n) for n in old_files if _NAME.match(str(n))}), "")
        atomic_write(root / SPEC_FILE, json.dumps({**wanted, "files": pending}, indent=1, sort_keys=True))
        old_files = pending
    files = {}
    # made one by one as they are written: the whole set first (held in memory, 13 GB for 1,000 clips per class of
    # 30 s) left the progress bar still until every clip was made, and a Ctrl-C then had written none
    clips = zip(names, iter_clips(spec), strict=True)
    bar = tqdm(
        clips, total=len(names), desc="synthetic clips", unit="clip", disable=None if progress else True
    )
    for name, (y, _, _) in bar:
        path = root / name
        if same and path.is_file() and old_files.get(name) == _sha256(path):
            files[name] = old_files[name]
            continue
        write_wav(path, y, spec.sr)
        files[name] = _sha256(path)
    for name in set(old_files) - set(names):  # files of a previous spec only
        if _NAME.match(str(name)):
            (root / name).unlink(missing_ok=True)
    atomic_write(root / SPEC_FILE, json.dumps({**wanted, "files": files}, indent=1, sort_keys=True))
    return load_synthetic(root)


def load_synthetic(root: str | os.PathLike) -> list[Record]:
    """The synthetic data set written by `write`: `<speaker>_<label>_<index>.wav`, dataset "synthetic"."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(
            f"synthetic: data folder {path} does not exist; create it with "
            f"converters.data.synthetic.write(SyntheticSpec(), {str(path)!r})"
        )
    skipped = Skipped("synthetic", path, "names like s01_angry_000.wav (speaker, label, index)")
    records = []
    for file in data_files(path, (".wav",)):
        m = _NAME.match(file.name)
        problem = (
            "bad name"
            if m is None
            else f"label {m.group(2)!r} not in LABELS"
            if m.group(2) not in LABELS
            else "inside a sub-folder"
            if file.parent != path
            else None
        )
        if problem:
            skipped.add(file, problem)
            continue
        speaker, label, index = m.groups()
        records.append(Record(file, label, speaker, "synthetic", label, meta={"index": index}))
    return skipped.finish(records)
