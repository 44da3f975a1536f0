"""The live pipeline's per-update step: an audio window (+ the face crops of the same window) -> LiveResult.

Per update: the voice-activity gate on the window's level; the model inputs of the window, made by the
bundle's input kind (`edge_ser.inputs`: the streamed clip vector, the log-Mel patches, the MFCC segments and
face crops...) exactly as training and `edge-ser predict` make them; inference on the bundle's engine; the
window's probabilities by the kind's `combine` (softmax, or the utterance vote over a window's patches);
smoothing of the probabilities. Silence is reported as "silence", not as an emotion.

The pipeline's audio rate `sr` is the kind's: sources deliver audio at that rate (a file is resampled when
loaded; the microphone is opened at a rate it supports and resampled as it is read), so the features never
resample.

An audio-visual bundle falls back to audio-only when fewer than `min_faces` of the window's crops found a
face: with an audio-only companion engine (`fallback`) it runs that, and says so in the result; without one
it runs the fused model on the centred crops (the training fallback) and says that instead.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge_ser.audio.level import GATE_SECONDS, SILENCE_DB, clipped_share, level_db
from edge_ser.audio.pauses import bundle_keep, trim_pauses
from edge_ser.errors import AudioFormatError, ConfigError, InferenceError
from edge_ser.features.pitch import VoicedFrames, voiced_frames, voiced_share
from edge_ser.inputs.base import CLIPPED_NOTE, faces_in_view, narrower_band
from edge_ser.live.result import NO_AUDIO, NO_FACE, NO_RESULT, SILENCE, LiveResult, StageTimes
from edge_ser.speaker import MIN_SPEECH_S, active_adapters, clips_held, held, learn_clip, learn_inputs

SMOOTHING = ("ema", "majority", "none")
LEARN_MODES = ("windows", "utterances")
LEARN_DEFAULT = "utterances"
"""`PipelineConfig.learn`'s default."""
QUIET_LIVE_S = 3.0
"""Seconds of voiced sound under the gate in a row before a result's notes say so (`LivePipeline._quiet_voice`)."""
QUIET_NOTE_EVERY = 30.0
"""Seconds of stream time between two such notes."""
CLIP_NOTE_EVERY = 10.0
"""Seconds of stream time between two "clipped" notes while the input stays clipped (the first comes at once)."""
UTTERANCE_MIN_S = MIN_SPEECH_S
"""Shortest run of speech (seconds of open gate) that joins the statistics as an utterance (`MIN_SPEECH_S`)."""
OPEN_NOTE_SECONDS = 30.0
"""Seconds of voice gate open without a pause after which the results note a likely steady sound."""
VOICING_DEFAULT = 0.1
"""`PipelineConfig.vad_voicing`'s default, chosen by the rule in docs/live.md (benchmarks/voice_gate.py)."""
MIN_WINDOW = 0.2
"""Shortest live window, seconds (`PipelineConfig.window`)."""
HANGOVER_DEFAULT = 1
"""`PipelineConfig.vad_hangover`'s default, chosen by the rule in docs/live.md ("What the voicing gate costs in a
quiet room")."""
CUT_PAUSES_DEFAULT = False
"""`PipelineConfig.cut_pauses`' default, decided by the rule in docs/live.md ("Pauses inside the live window")."""
STEADY_DEFAULT = 0.0
"""`PipelineConfig.vad_steady`'s default (0: off), decided by the rule in docs/live.md ("A steady voiced sound")."""
STEADY_PERIOD_SPREAD = 0.03
"""A steady sound's voiced frames' periods spread by less than this (ln of the 90th over the 10th percentile): a
voice's by 8 % and more over 2 s, a mains hum's by under 1 %."""
STEADY_ENERGY_DB = 3.0
"""... and their energies by less than this many dB (90th over 10th percentile): a voice's by 3.6 dB and more."""
STEADY_NEWEST_MOVED = 0.1
"""`steady_newest`: a hop matches the steady sound before it when at most this share of its voiced frames' periods
lie more than STEADY_PERIOD_SPREAD from the sound's median period ..."""
STEADY_NEWEST_DB = 1.0
"""... and its frames' 90th-percentile energy is at most this many dB above the sound's."""
NOTE_STEADY_SECONDS, NOTE_STEADY_DB = 3.0, 2.0
"""With the voicing gate, the floor the notes use jumps to a sound whose hops of the last this many seconds lie
within this many dB of each other (`VadGate(steady_hops=..., steady_db=...)`): 0.3 % of EMODB's 3 s stretches of
speech at the gate (its clips back to back) stay within 2 dB, and a 2 s utterance between pauses never does."""
UTTERANCE_MAX_S = 10.0
"""A longer run of speech joins the statistics every this many seconds (the training clips are 1.5-8 s)."""


@dataclass(frozen=True)
class PipelineConfig:
    """Window and hop (seconds), smoothing, voice-activity gate and face fallback settings."""

    window: float = 3.0
    hop: float = 0.5
    smoothing: str = "ema"
    ema_alpha: float = 0.5
    """Weight of the newest window in the EMA (1 = no smoothing)."""
    majority_k: int = 5
    vad_db: float = SILENCE_DB
    """Absolute gate: a window quieter than this (RMS, dBFS) is silence."""
    vad_margin_db: float = 10.0
    """Relative gate: a window must also be this far above the tracked noise floor (only when `vad_voicing` is 0)."""
    vad_voicing: float = VOICING_DEFAULT
    """Share of the newest hop's frames that must be voiced (`VadGate(voicing=...)`), instead of the floor test: a
    fan or other steady noise louder than `vad_db` stays out, continuous speech stays in. 0: the level and the
    floor decide, as before 2026-12-05 (docs/live.md, "A gate that hears voicing")."""
    vad_hangover: int = HANGOVER_DEFAULT
    """Hops after a voiced one that open the gate at `vad_db` without being voiced (`VadGate(hangover=...)`): an
    utterance's unvoiced end still ends its window. Used when `vad_voicing` is on."""
    vad_steady: float = STEADY_DEFAULT
    """Seconds of voiced sound that does not move (pitch and level) after which the gate shuts on it
    (`VadGate(steady_seconds=...)`): a hum or a drone, not a voice. 0: off. Used when `vad_voicing` is on."""
    cut_pauses: bool = CUT_PAUSES_DEFAULT
    """Cut each window with speech, and each utterance that joins the speaker statistics, to its speech plus the
    pause the bundle's training clips held (its manifest's `pauses` block, as a whole clip is cut; no effect on a
    bundle without one or that takes faces): a short utterance after a pause is then not classified with the
    room around it (docs/live.md, "Pauses inside the live window")."""
    min_faces: float = 0.5
    """Fraction of a window's face crops that must have found a face to use the video input."""
    learn: str = LEARN_DEFAULT
    """What joins the speaker statistics (a bundle that learns its speaker): "windows" (windows with speech, one
    per `learn_every` seconds of it) or "utterances" (each run of speech between pauses, as one clip, when it
    ends: what the prior and the model were made of; docs/live.md)."""
    learn_every: float | None = 0.0
    """Seconds of speech between two updates of the speaker statistics (a bundle that learns its speaker): None =
    one window, so the statistics count stretches of speech as long as the clips the prior was fitted on, not
    the 6 overlapping windows a 3 s utterance gives at a 0.5 s hop; 0 = every window with speech."""
    new_speaker_after: float | None = None
    """Seconds without speech after which the next speech is taken as a new speaker: the speaker statistics go back
    to where the run started (the training prior, or the enrolment / speaker file), as at a booth where visitors
    take turns (a review: one visitor's statistics shaped the next one's labels). None: one speaker all run."""

    def __post_init__(self) -> None:
        if not MIN_WINDOW <= self.window <= 30:
            raise ConfigError(f"window (--window) {self.window} s must be in {MIN_WINDOW:g}..30 s")
        if not 0.05 <= self.hop <= self.window:
            raise ConfigError(f"hop (--hop) {self.hop} s must be in 0.05 s..the window ({self.window} s)")
        if self.smoothing not in SMOOTHING:
            raise ConfigError(f"smoothing={self.smoothing!r} must be one of {SMOOTHING}")
        if not 0 < self.ema_alpha <= 1:
            raise ConfigError(
                f"ema_alpha (--ema-alpha) {self.ema_alpha} must be in (0, 1]: the newest window's weight"
            )
        if self.majority_k < 1:
            raise ConfigError(f"majority_k (--majority-k) {self.majority_k} must be >= 1 window")
        if not -120 <= self.vad_db <= 0:  # also refuses nan
            raise ConfigError(
                f"vad_db (--vad-db) {self.vad_db} dBFS must be in -120..0 (a full-scale sine is -3)"
            )
        if not 0 <= self.vad_voicing <= 1:  # also refuses nan
            raise ConfigError(
                f"vad_voicing (--vad-voicing) {self.vad_voicing} must be a share of a hop's frames in 0..1 (0: off)"
            )
        h = self.vad_hangover
        if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h <= 20:
            raise ConfigError(f"vad_hangover {h!r} must be a whole number of hops in 0..20")
        if not 0 <= self.min_faces <= 1:
            raise ConfigError(f"min_faces={self.min_faces} must be in 0..1")
        if not _real(self.vad_steady) or not (self.vad_steady == 0 or 0.5 <= self.vad_steady <= 30):
            raise ConfigError(
                f"vad_steady (--vad-steady) {self.vad_steady!r} s must be 0 (off) or in 0.5..30 s"
            )
        if self.vad_steady and not self.vad_voicing:
            raise ConfigError(
                "vad_steady (--vad-steady) needs the voicing gate: it judges the voiced frames' pitch and level "
                "(--vad-voicing 0 turns that gate off)"
            )
        if not isinstance(self.cut_pauses, bool):
            raise ConfigError(f"cut_pauses {self.cut_pauses!r} must be True or False")
        self._check_learning()

    def _check_learning(self) -> None:
        """ConfigError for a learning setting out of range: `learn`, `learn_every`, `new_speaker_after`."""
        if self.learn not in LEARN_MODES:
            raise ConfigError(f"learn={self.learn!r} must be one of {LEARN_MODES}")
        if self.learn_every is not None and not 0 <= self.learn_every <= 300:
            raise ConfigError(f"learn_every={self.learn_every} s must be in 0..300 (or None: one window)")
        after = self.new_speaker_after
        if after is not None and (not _real(after) or not 5 <= after <= 3600):
            raise ConfigError(
                f"new_speaker_after (--new-speaker-after) {after!r} s must be in 5..3600 s (None: one speaker)"
            )

    @property
    def learn_seconds(self) -> float:
        """`learn_every` resolved: seconds of speech between two speaker-statistics updates."""
        return self.window if self.learn_every is None else self.learn_every


def _real(x: object) -> bool:
    """A real number (not a bool, not a string); NaN is left to the range checks after it."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


class VadGate:
    """Energy gate: open when the level is above `vad_db` and `vad_margin_db` above the noise floor.

    The floor follows quiet hops at once (down) and louder ones slowly (up 0.5 dB per hop), so a long utterance
    does not raise it much. `steady_hops`: when that many hops in a row lie within `steady_db` of each other (a
    fan, a hum, music at one level: speech goes up and down by more), the floor jumps up to their minimum, so a
    steady sound closes the gate after those hops however far above the floor it started (0: off, the slow
    rise only, which took 40 s to climb from -90 to a fan at -50 dBFS). `start_at_gate`: the floor starts (and
    restarts after digital silence) at `vad_db - margin_db` instead of -90 dBFS: no hop below `vad_db` opens the
    gate anyway, so a lower start changes no decision but lengthens the climb to a loud steady sound.
    `voicing`: a hop must also have at least this share of voiced frames (`edge_ser.features.pitch.voiced_share`,
    YIN's dip; 0: off), which keeps a fan or other broadband noise out at any level; `floor=False` drops the
    floor test (the level and the voicing decide). `hangover`: after a voiced hop, up to this many hops that pass
    the level but not the voicing still open it (an utterance's unvoiced end or middle; broadband noise alone never
    starts it). docs/live.md, "A gate that hears voicing". `steady_seconds`: when the voicing tests of the last that
    many seconds (hops of `hop_seconds`) all passed and their voiced frames' periods and energies hardly moved
    (STEADY_PERIOD_SPREAD, STEADY_ENERGY_DB), the sound is a hum or a drone, not a voice, and the gate stays shut
    (0: off; docs/live.md, "A steady voiced sound"). `steady_newest`: the tests before the newest make the steady
    sound and the newest must match it (STEADY_NEWEST_MOVED, STEADY_NEWEST_DB), so a voice starting over a hum
    opens the gate at once; False pools all of them (the first candidate, which a voice's first hop could not
    outvote).
    """

    def __init__(
        self,
        vad_db: float = -45.0,
        margin_db: float = 10.0,
        *,
        steady_hops: int = 0,
        steady_db: float = 3.0,
        start_at_gate: bool = False,
        voicing: float = 0.0,
        floor: bool = True,
        hangover: int = 0,
        steady_seconds: float = 0.0,
        hop_seconds: float = 0.5,
        steady_newest: bool = True,
    ) -> None:
        if not 0 <= voicing <= 1:
            raise ConfigError(f"voicing {voicing} must be a share of a hop's frames in 0..1 (0: off)")
        self.vad_db, self.margin_db = vad_db, margin_db
        if isinstance(hangover, bool) or not isinstance(hangover, (int, np.integer)) or hangover < 0:
            raise ConfigError(f"hangover {hangover!r} must be a whole number of hops >= 0")
        self.voicing, self.use_floor, self.hangover = voicing, floor, int(hangover)
        if not _real(steady_seconds) or not (steady_seconds == 0 or 0.5 <= steady_seconds <= 30):
            raise ConfigError(f"steady_seconds {steady_seconds!r} must be 0 (off) or in 0.5..30 s")
        if not _real(hop_seconds) or not 0 < hop_seconds <= 30:
            raise ConfigError(f"hop_seconds {hop_seconds!r} must be in (0, 30] s")
        if not isinstance(steady_newest, bool):
            raise ConfigError(f"steady_newest {steady_newest!r} must be True or False")
        # the voicing tests whose frames span `steady_seconds` (each sees the last max(hop, GATE_SECONDS)), at least
        # two: the newest is judged against the ones before it
        span = max(hop_seconds, GATE_SECONDS)
        n_tests = max(2, math.ceil((steady_seconds - span) / hop_seconds - 1e-9) + 1) if steady_seconds else 0
        self._tests: deque[VoicedFrames] = deque(maxlen=max(1, n_tests))
        self._steady_on = n_tests > 0
        self.steady_newest = steady_newest
        self.steady_shut = 0
        """Hops whose voicing passed but that the steady-sound test kept shut (a hum, a drone)."""
        self._hang = 0
        self.voiced: float | None = None
        """The last hop's voiced share, when the voicing test ran on it (None otherwise)."""
        self.steady_db = steady_db
        self.start = vad_db - margin_db if start_at_gate else -90.0
        self.floor = self.start
        self.quiet_hops = 0
        """Hops that rose `margin_db` above the floor but stayed under `vad_db` (quiet speech, or a quiet mic), less
        those of a steady sound the floor then jumped to (`steady_hops`); with `voicing`, only hops voiced as much
        as the gate asks (a quiet voice, not the room's noise in a pause)."""
        self._quiet_kept = -math.inf  # the loudest quiet hop no steady stretch took back
        self.unvoiced_hops = 0
        """Hops that reached `vad_db` (and the floor test, if on) but were not voiced enough: noise, or a whisper."""
        self.stood_out = False
        """Some hop rose `margin_db` above the floor (something other than the steady background was heard)."""
        self._recent: deque[float] = deque(maxlen=max(1, steady_hops))
        self._recent_quiet: deque[float | None] = deque(maxlen=max(1, steady_hops - 1))
        """For each hop before the newest in `_recent`: its level if it was counted as a quiet hop, else None."""
        self._steady = steady_hops > 0

    @property
    def quiet_loudest(self) -> float:
        """The loudest of the `quiet_hops` (dBFS; -inf without any)."""
        pending = [q for q in self._recent_quiet if q is not None]
        return max([self._quiet_kept, *pending])

    def _keep_quiet(self, quiet: float | None) -> None:
        """A quiet hop's level (None: not quiet) that no steady stretch can take back any more."""
        if quiet is not None:
            self._quiet_kept = max(self._quiet_kept, quiet)

    def _quiet(self, db: float, above_floor: bool, hop: np.ndarray | None, sr: int | None) -> float | None:
        """The hop's level if it counts as a quiet hop (above the floor, under `vad_db`, and, with `voicing`, voiced
        as much as the gate asks), else None. A quiet *speaker* has a voice: an unvoiced hop (room noise in a
        pause, which the floor, still climbing from -90 dBFS, reads as above it for tens of seconds) is no sign of
        one, and it advised a gate below the room's own noise."""
        if not above_floor or db >= self.vad_db:
            return None
        if (
            self.voicing > 0
            and hop is not None
            and sr is not None
            and voiced_share(hop, sr=sr) < self.voicing
        ):
            return None
        return db

    def __call__(self, db: float, hop: np.ndarray | None = None, sr: int | None = None) -> bool:
        """Whether the hop at level `db` (dBFS) is speech; `hop` (mono samples at `sr` Hz) is needed when the gate
        tests voicing, which it does for a hop that passes the level (and the floor), and, for the notes, for a
        quiet hop under `vad_db` (`_quiet`)."""
        self.voiced = None
        # digital silence (a file's pause, a muted input): the floor is as low as it gets
        if not math.isfinite(db):
            self.floor = self.start
            self._recent.clear()
            for q in self._recent_quiet:
                self._keep_quiet(q)
            self._recent_quiet.clear()
            self._tests.clear()
            self._hang = 0
            return False
        self.floor = db if db < self.floor else min(db, self.floor + 0.5)
        if self._steady:
            self._recent.append(db)
            full = len(self._recent) == self._recent.maxlen
            if full and max(self._recent) - min(self._recent) <= self.steady_db:
                self.floor = max(self.floor, min(self._recent))
                # the hops of a steady sound were not quiet speech: the ones counted so are taken back
                self.quiet_hops -= sum(q is not None for q in self._recent_quiet)
                self._recent_quiet = deque([None] * len(self._recent_quiet), maxlen=self._recent_quiet.maxlen)
        above_floor = db >= self.floor + self.margin_db
        self.stood_out |= above_floor
        quiet = self._quiet(db, above_floor, hop, sr)
        if quiet is not None:
            self.quiet_hops += 1
        if not self._steady:
            self._keep_quiet(quiet)
        else:
            if len(self._recent_quiet) == self._recent_quiet.maxlen:
                self._keep_quiet(self._recent_quiet[0])  # leaves the stretch a jump could take back
            self._recent_quiet.append(quiet)
        if db < self.vad_db or (self.use_floor and not above_floor):
            self._hang = 0
            self._tests.clear()
            return False
        if self.voicing <= 0:
            return True
        if hop is None or sr is None:
            raise ConfigError("a voice gate that tests voicing needs the hop's samples and rate")
        frames = voiced_frames(hop, sr=sr)
        self.voiced = float(frames.voiced.mean()) if frames.voiced.size else 0.0
        if self.voiced >= self.voicing:
            if self._steady_sound(frames):
                self.steady_shut += 1
                self._hang = 0
                return False
            self._hang = self.hangover
            return True
        self._tests.clear()
        if self._hang > 0:  # an unvoiced stretch of the utterance the voiced hops before it opened
            self._hang -= 1
            return True
        self.unvoiced_hops += 1
        return False

    def _steady_sound(self, frames: VoicedFrames) -> bool:
        """Whether the voicing tests of the last `steady_seconds`, this one's `frames` included, all passed and
        their voiced frames' periods and energies hardly moved: a hum or a drone."""
        if not self._steady_on:
            return False
        self._tests.append(frames)
        if len(self._tests) < self._tests.maxlen:
            return False
        # steady_newest: the tests before the newest make the steady sound, and the newest must match it (pooled
        # with them, a voice starting over a hum is outvoted: docs/live.md); else all of them pooled (candidate 1)
        newest = self.steady_newest  # the tests are at least two (__init__)
        ref = list(self._tests)[:-1] if newest else list(self._tests)
        period = np.concatenate([f.period[f.voiced] for f in ref])
        energy = np.concatenate([f.energy[f.voiced] for f in ref])
        if period.size < 8:
            return False
        p10, p90 = np.percentile(period, (10, 90))
        e10, e90 = np.percentile(energy, (10, 90))
        if not (math.log(p90 / p10) < STEADY_PERIOD_SPREAD and e90 < e10 * 10.0 ** (STEADY_ENERGY_DB / 10.0)):
            return False
        if not newest:
            return True
        new = frames.period[frames.voiced]
        moved = np.abs(np.log(new / np.median(period))) > STEADY_PERIOD_SPREAD
        louder = np.percentile(frames.energy, 90) > e90 * 10.0 ** (STEADY_NEWEST_DB / 10.0)
        return bool(moved.mean() <= STEADY_NEWEST_MOVED and not louder)


class SlidingWindow:
    """The live window: the newest `size` samples, shifted along by each hop (zeros before the first); `add` says
    whether a whole window has arrived. The live loop's and a pushed session's (`edge_ser.live.session`)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.samples = np.zeros(size, np.float32)
        self._filled = 0

    def add(self, hop: np.ndarray) -> bool:
        """Shift `hop` in; True once the window holds `size` samples of the stream."""
        self.samples = np.roll(self.samples, -hop.size)
        self.samples[-hop.size :] = hop
        self._filled = min(self.size, self._filled + hop.size)
        return self._filled == self.size

    @property
    def filled(self) -> np.ndarray:
        """The samples of the stream the window holds so far (all of it once full)."""
        return self.samples[self.size - self._filled :]


class Smoother:
    """EMA of probabilities, majority vote over the last k arg-maxes (as one-hot shares), or none.

    `winner(s)` is the label index of what `__call__` returned: its arg-max, except for a majority tie, which the
    label shown before keeps (a class changes the label only by out-voting it), else the tied class voted most
    recently. A plain arg-max gave a tie to the class listed first (`neutral`, `happy`, ...), whatever the windows
    said: one window of it after a pause turned the label over."""

    def __init__(self, kind: str, n: int, alpha: float = 0.5, k: int = 5) -> None:
        self.kind, self.n, self.alpha = kind, n, alpha
        self._ema: np.ndarray | None = None
        self._votes: deque[int] = deque(maxlen=k)
        self._shown: int | None = None

    def reset(self) -> None:
        self._ema = None
        self._votes.clear()
        self._shown = None

    def winner(self, s: np.ndarray) -> int:
        """The label index for `s`, the newest output of `__call__` (see the class docstring for ties)."""
        k = int(np.argmax(s))
        if self.kind == "majority" and self._votes:
            tied = {int(i) for i in np.flatnonzero(s == s[k])}
            if self._shown in tied:
                k = self._shown
            elif len(tied) > 1:
                k = next(v for v in reversed(self._votes) if v in tied)
            self._shown = k
        return k

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return p
        if self.kind == "ema":
            self._ema = p.copy() if self._ema is None else self.alpha * p + (1 - self.alpha) * self._ema
            return self._ema
        self._votes.append(int(np.argmax(p)))
        return np.bincount(np.asarray(self._votes), minlength=self.n) / len(self._votes)


class LivePipeline:
    """Bundle + engine (+ optional audio-only fallback engine) -> `step(...)` per window.

    What the model takes comes from the bundle's input kind (`bundle.input_kind`): its rate, its live front end
    (features of each window), whether it wants faces, and how output rows become probabilities.
    """

    def __init__(
        self,
        bundle,
        engine,
        config: PipelineConfig | None = None,
        *,
        fallback=None,
        speaker=None,
        fallback_speaker=None,
        engine_lock=None,
        fallback_lock=None,
    ) -> None:
        """`speaker`: the session's `edge_ser.speaker.SpeakerAdapter` (default: a new one from the bundle);
        windows with speech update it, one per `config.learn_every` seconds of speech. `fallback_speaker`: the
        fallback bundle's (default: a new one from it), which standardises and learns from the windows the
        fallback answers, as the bundle's own does for its windows. `engine_lock` / `fallback_lock`: held around
        each call of that engine and the out-of-range flags it leaves (a `Recognizer`'s, whose other threads
        call the same engine; default: none, the engine is this pipeline's alone)."""
        from edge_ser.speaker import SpeakerAdapter

        self.bundle, self.engine, self.fallback = bundle, engine, fallback
        self.engine_lock = engine_lock if engine_lock is not None else contextlib.nullcontext()
        self.fallback_lock = fallback_lock if fallback_lock is not None else contextlib.nullcontext()
        self.speaker = speaker if speaker is not None else SpeakerAdapter(bundle.manifest)
        self.config = config or PipelineConfig()
        self.labels = tuple(bundle.labels)
        self.kind = bundle.input_kind
        self.sr = self.kind.sample_rate
        self.narrow = False
        """The audio was recorded at a rate whose band is narrower than the model's: every decision is flagged."""
        c = self.config
        self.gate = self.make_gate(c)
        self.smoother = Smoother(c.smoothing, len(self.labels), c.ema_alpha, c.majority_k)
        if fallback is not None:
            if tuple(fallback.bundle.labels) != self.labels:
                raise ConfigError(
                    f"fallback bundle {fallback.bundle.source} has labels {list(fallback.bundle.labels)}, "
                    f"the main bundle {list(self.labels)}: they must be the same"
                )
            if fallback.bundle.input_kind.faces:
                raise ConfigError(
                    f"fallback bundle {fallback.bundle.source} needs faces; it must be audio-only"
                )
            if not self.kind.faces:  # it was kept and never used, without a word (`edge-ser run` notes it)
                raise ConfigError(
                    f"fallback bundle {fallback.bundle.source} would never be used: {bundle.source} takes no faces, "
                    "so it never lacks one; leave the fallback out"
                )
            if self.kind.faces and self.kind.hears and self.kind.enough_faces(None, self.config.min_faces):
                raise ConfigError(
                    f"fallback bundle {fallback.bundle.source} would never be used: {bundle.source} answers on its "
                    "audio branch alone when no face is in view; leave the fallback out"
                )
            if fallback.bundle.input_kind.sample_rate != self.sr:
                raise ConfigError(
                    f"fallback bundle {fallback.bundle.source} analyses {fallback.bundle.input_kind.sample_rate} "
                    f"Hz audio, the main bundle {self.sr} Hz: they must be the same"
                )
        self.fallback_speaker = None
        if fallback is not None:
            self.fallback_speaker = (
                fallback_speaker if fallback_speaker is not None else SpeakerAdapter(fallback.bundle.manifest)
            )
        self.front = self.kind.live(c.window)
        self.keep_pause = bundle_keep(bundle.manifest, self.kind) if c.cut_pauses else None
        """Seconds of pause a window with speech keeps around it (`cut_pauses`), None: windows are not cut."""
        self._open_since: float | None = None  # the open voice gate's stretch (`_open_too_long`)
        self._open_quietest, self._open_noted = math.inf, False
        self._speech_since_learn = 0.0
        self._utterance: list[np.ndarray] = []  # "utterances": the open run of speech, hop by hop
        self._utterance_hops = 0
        self._utterance_speaker: tuple[int, ...] = ()  # the adapters' `resets` when the open utterance began
        self._gated_once = (
            False  # the first full window's earlier hops are gated with it (`_gate_earlier_hops`)
        )
        self._clip_noted = -math.inf  # stream time of the last "clipped" note
        self._last_speech: float | None = None  # stream time of the last update with speech (`_new_speaker`)
        self._start_states: list | None = None  # the speaker statistics at the run's start (`_new_speaker`)
        self._quiet_run = 0  # voiced hops under the gate in a row (`_quiet_voice`)
        self._quiet_noted = -math.inf  # stream time of the last "a voice under the gate" note

    def set_source_rate(self, rate: int | None, from_file: bool = False, pushed: bool = False) -> str | None:
        """Tell the pipeline the rate its audio was recorded at (a microphone's capture rate, a file's, a pushed
        session's); when that band is narrower than the model's (`narrower_band`: an 8 kHz headset under a 16 kHz
        model), every decision is flagged out of range, as `predict` flags such a file, and the note saying so
        is returned (None otherwise). `from_file`: the audio is a recording, whose band no capture setting
        widens, and the note's advice says so (a microphone or --mic-rate does not apply to it). `pushed`: a
        session the application feeds, whose capture the application sets (it was told of --mic-rate)."""
        self.narrow = narrower_band(self.kind, rate)
        if not self.narrow:
            return None
        return (
            f"the audio is recorded at {rate} Hz: nothing above {rate // 2} Hz, while the model was trained on "
            f"up to {self.kind.feature_spec.fmax_hz:g} Hz; every decision is flagged out of range "
            + (
                f"(the recording itself is band-limited, which resampling does not undo: record at "
                f"{2 * self.kind.feature_spec.fmax_hz / 1000:g} kHz or more)"
                if from_file
                else "(capturing at a higher rate fixes it: the session's sample_rate)"
                if pushed
                else "(a microphone or --mic-rate with a higher rate fixes it)"
            )
        )

    @staticmethod
    def make_gate(c: PipelineConfig) -> VadGate:
        """The voice gate a pipeline with config `c` runs (a fresh one: its floor and counts start anew)."""
        voicing = c.vad_voicing > 0
        # with voicing deciding, the floor only serves the notes: it jumps to a steady sound (a hum under a raised
        # --vad-db is not a quiet speaker; the jump would cut continuous speech if the floor decided: docs/live.md)
        return VadGate(
            c.vad_db,
            c.vad_margin_db,
            voicing=c.vad_voicing,
            floor=not voicing,
            # at least half a second a hop of hangover at a shorter hop (what the default was chosen on)
            hangover=c.vad_hangover * max(1, math.ceil(GATE_SECONDS / c.hop - 1e-9)),
            steady_seconds=c.vad_steady if voicing else 0.0,
            hop_seconds=c.hop,
            steady_hops=max(2, round(NOTE_STEADY_SECONDS / c.hop)) if voicing else 0,
            steady_db=NOTE_STEADY_DB,
        )

    @property
    def needs_faces(self) -> bool:
        return self.kind.faces > 0

    @property
    def without_faces(self) -> str:
        """What answers while no frame comes, for the run's notes: "audio-only" (an audio-only fallback bundle, or
        a fusion bundle that degrades to its audio branch), "the fused model on black frames" (an audio-visual
        bundle without a fallback: a review found the notes saying audio-only for it), or "no face" (face-only)."""
        if not self.kind.hears:
            return "no face"
        if self.fallback is not None or self.kind.enough_faces(None, self.config.min_faces):
            return "audio-only"
        return "the fused model on black frames"

    def feed(self, chunk: np.ndarray) -> None:
        """New mono samples at the bundle's rate (a kind that streams its features reads them here)."""
        self.front.feed(chunk)

    def step(
        self,
        t: float,
        window: np.ndarray,
        faces: Sequence | None = None,
        *,
        capture_ms: float = 0.0,
        face_ms: float = 0.0,
        notes: tuple[str, ...] = (),
        overflows: int = 0,
        frame_size: tuple[int, int] | None = None,
    ) -> LiveResult:
        """Classify the window ending at stream time `t` (seconds); `faces` are the window's FaceCrops."""
        t0 = time.perf_counter()
        earlier, learn_ms = (
            False,
            0.0,
        )  # learn: the features of utterances that join the statistics, ended here
        if self.config.new_speaker_after is not None and self._start_states is None:
            # the run's start, before the first window's earlier hops: an utterance that ended among them is the
            # first speaker's, and was kept for every later one when this was taken after them
            self._start_states = [(a, a.state()) for a in self._adapters()]
        if self.kind.hears and not self._gated_once:
            earlier, learn_ms = self._gate_earlier_hops(window)
        self._gated_once = True
        newest = window[-max(1, int(round(self.config.hop * self.sr))) :]  # the hop this update adds
        # a face-only model (no audio) asks for a face in view instead of speech
        if self.kind.hears:
            quiet_before = self.gate.quiet_hops
            db, open_now = self._gate_hop(window)
            notes = (*notes, *self._quiet_voice(t, db, self.gate.quiet_hops > quiet_before))
        else:
            db, open_now = level_db(newest), False
        speech = (
            open_now or earlier if self.kind.hears else self.kind.enough_faces(faces, self.config.min_faces)
        )
        notes = (*notes, *self._open_too_long(t, speech, db))
        if self.kind.hears:
            notes = (*notes, *self._new_speaker(t, speech))
        clipped = None
        if self.kind.hears:
            clipped = clipped_share(newest)
            if clipped > CLIPPED_NOTE and t - self._clip_noted >= CLIP_NOTE_EVERY:
                self._clip_noted = t
                notes = (
                    *notes,
                    f"clipped: {100 * clipped:.0f} % of the newest hop's samples at full scale: distorted audio, "
                    "turn the input's gain down",
                )
        tl = time.perf_counter()
        if self.config.learn == "utterances" and self._follow_utterance(
            window, open_now or not self.kind.hears and speech
        ):
            learn_ms += (time.perf_counter() - tl) * 1e3
        box = None
        if faces and getattr(faces[-1], "found", False) and faces[-1].box is not None:
            box = tuple(int(v) for v in faces[-1].box)  # the newest crop's face, if it has one
        mode = self.kind.mode
        if self._degrades(faces):
            mode = "audio"  # a fusion bundle without a face in view answers (or stays silent) on audio alone
        elif (
            self.fallback is not None
            and self.needs_faces
            and not self.kind.enough_faces(faces, self.config.min_faces)
        ):
            # the fallback would answer: a silent update says so too
            mode = self.fallback.bundle.input_kind.mode
        common = {"t": t, "labels": self.labels, "level_db": db, "face_box": box, "frame_size": frame_size,
                  "overflows": overflows, "notes": notes, "clipped": clipped,
                  "voiced": self.gate.voiced if self.kind.hears else None}  # fmt: skip
        # no estimate (silence, no face, a window skipped): `probs` and `smoothed` stay empty, as a vector of zeros
        # would read as a distribution over the labels; `label` says why
        if not speech:
            self.smoother.reset()
            if not self.kind.hears:
                common["face_box"] = (
                    None  # "no face" (too few of the window's crops had one): no box under it
                )
            total = capture_ms + face_ms + (time.perf_counter() - t0) * 1e3
            return LiveResult(
                **common, probs=(), smoothed=(), label=SILENCE if self.kind.hears else NO_FACE,
                confidence=0.0, speech=False, mode=mode,
                fallback=None, times=StageTimes(capture_ms, 0.0, face_ms, 0.0, total, learn_ms),
                speaker_clips=self.speaker_clips(),
            )  # fmt: skip
        try:
            r = self._classify(t0, window, faces, common, capture_ms, face_ms)
            return replace(r, times=replace(r.times, learn=learn_ms), speaker_clips=self.speaker_clips())
        except (InferenceError, AudioFormatError) as e:  # a window the model cannot answer: reported, skipped
            self.smoother.reset()
            common["notes"] = (*notes, f"window skipped: {e}")
            total = capture_ms + face_ms + (time.perf_counter() - t0) * 1e3
            return LiveResult(
                **common, probs=(), smoothed=(), label=NO_RESULT, confidence=0.0, speech=True, mode=mode,
                fallback=None, times=StageTimes(capture_ms, 0.0, face_ms, 0.0, total, learn_ms),
                speaker_clips=self.speaker_clips(),
            )  # fmt: skip

    def _adapters(self) -> list:
        """Every speaker-statistics adapter this pipeline learns: the bundle's, a fusion engine's branches', the
        fallback's."""
        found = list(active_adapters(self.speaker, self.engine).values())
        if self.fallback_speaker is not None and self.fallback_speaker.active:
            found.append(self.fallback_speaker)
        return found

    def _new_speaker(self, t: float, speech: bool) -> tuple[str, ...]:
        """With `new_speaker_after`: the first speech after that many seconds without any brings the speaker
        statistics back to the run's start (taken as its first update begins), with a note saying so."""
        after = self.config.new_speaker_after
        if after is None or self._start_states is None:
            return ()
        if not speech:
            return ()
        last, self._last_speech = self._last_speech, t
        if last is None or t - last < after:
            return ()
        for adapter, state in self._start_states:
            adapter.set_state(state, "the run's starting speaker statistics")
        self.smoother.reset()
        return (
            f"new speaker: {t - last:.0f} s without speech (--new-speaker-after {after:g}), so the speaker "
            "statistics are back where the run started",
        )

    def _quiet_voice(self, t: float, db: float, quiet: bool) -> tuple[str, ...]:
        """A note while a voice stays under the gate (`QUIET_LIVE_S` of voiced hops in a row above the noise floor
        and under --vad-db): a quiet speaker saw only "silence", and the advice came at the end of the run, if at
        all. At most once every `QUIET_NOTE_EVERY` s."""
        self._quiet_run = self._quiet_run + 1 if quiet else 0
        hops = math.ceil(QUIET_LIVE_S / self.config.hop)
        if self._quiet_run < hops or t - self._quiet_noted < QUIET_NOTE_EVERY:
            return ()
        self._quiet_noted = t
        lower = max(-120.0, 5 * math.floor((db - 5) / 5))
        return (
            f"a voice under the gate: {self._quiet_run * self.config.hop:g} s of voiced sound at about {db:.0f} dBFS, "
            f"under --vad-db {self.gate.vad_db:g}; a quiet speaker? raise the microphone's gain, or --vad-db "
            f"{lower:g} (PipelineConfig(vad_db={lower:g}) in Python)",
        )

    def no_audio(self, t: float, notes: tuple[str, ...] = ()) -> LiveResult:
        """The update sent while the microphone is lost (`NO_AUDIO`): no estimate, the smoother started again."""
        self.smoother.reset()
        return LiveResult(
            t=t, labels=self.labels, probs=(), smoothed=(), label=NO_AUDIO, confidence=0.0, speech=False,
            level_db=float("-inf"), mode=self.kind.mode, notes=notes, speaker_clips=self.speaker_clips(),
        )  # fmt: skip

    def _gate_hop(self, window: np.ndarray) -> tuple[float, bool]:
        """The newest hop of `window` through the voice gate: (its level in dBFS, whether the gate is open). The gate
        looks at the newest hop: "is someone speaking now", not "was there speech in the window"."""
        n_hop = max(1, int(round(self.config.hop * self.sr)))
        hop = window[-n_hop:]
        # its DC offset is no sound (the features remove it too: a quiet mic's offset read as a -34 dBFS voice)
        hop = hop - np.float32(hop.mean(dtype=np.float64)) if hop.size else hop
        db = level_db(hop)
        # voicing is judged over the last half second at least (what it was chosen on): a shorter hop's own frames
        # are too few, and an utterance's unvoiced stretches would flicker the gate
        n_voice = int(GATE_SECONDS * self.sr)
        voice = hop if n_hop >= n_voice or window.size <= n_hop else window[-n_voice:]
        # and so is the level it opens at: a 50 ms hop between two syllables dips under --vad-db, which cut one
        # sentence into several utterances (the hop's own level is still the one reported)
        gate_db = db if voice is hop else level_db(voice - np.float32(voice.mean(dtype=np.float64)))
        return db, self.gate(gate_db, voice, self.sr)

    def _gate_earlier_hops(self, window: np.ndarray) -> tuple[bool, float]:
        """The first full window's hops before the newest, gated now in order, as they would have been had a
        decision been made on each (none is before the window is full): an utterance that ended within the first
        window was never heard, so a file holding one short sentence gave nothing but "silence". They also warm the
        gate's floor and gather the utterance for the speaker statistics. (Whether any opened the gate, the ms
        spent learning an utterance that ended among them.)"""
        n_hop = max(1, int(round(self.config.hop * self.sr)))
        opened, learn_ms = False, 0.0
        for end in range(window.size - (window.size // n_hop - 1) * n_hop, window.size, n_hop):
            _, o = self._gate_hop(window[:end])
            opened |= o
            tl = time.perf_counter()
            if self.config.learn == "utterances" and self._follow_utterance(window[:end], o):
                learn_ms += (time.perf_counter() - tl) * 1e3
        return opened, learn_ms

    def _degrades(self, faces: Sequence | None) -> bool:
        """A bundle that takes faces but answers on audio alone when none is in view (late fusion: a window
        without a face is enough for it), and none is in view now: the newest crop shows none (a face that left
        a second ago was still fused from the window's earlier crops, against 'audio alone whenever no face is
        in view')."""
        return (
            self.needs_faces
            and self.kind.hears
            and self.kind.enough_faces(None, self.config.min_faces)
            and not faces_in_view(list(faces or [])[-1:])
        )

    def _open_too_long(self, t: float, speech: bool, db: float) -> tuple[str, ...]:
        """A note, once per stretch, when the voice gate has stayed open for OPEN_NOTE_SECONDS without a pause:
        people pause within that, so it is most likely a steady sound louder than the gate being classified as
        speech and learnt as the speaker: a voiced one (music, a hum, a television) when the gate tests voicing,
        any (a fan too) when the level and the floor decide (it climbs only 0.5 dB per hop; docs/live.md). Says
        what --vad-db would keep it out."""
        if not (self.kind.hears and speech):
            self._open_since, self._open_quietest, self._open_noted = None, math.inf, False
            return ()
        if self._open_since is None:
            self._open_since = t
        self._open_quietest = min(self._open_quietest, db)
        if self._open_noted or t - self._open_since < OPEN_NOTE_SECONDS:
            return ()
        self._open_noted = True
        above = min(0.0, 5 * math.ceil((self._open_quietest + 3) / 5))
        sound = (
            "a steady voiced sound (music, a hum, a television)"
            if self.gate.voicing
            else "a steady sound (a fan, music)"
        )
        # with voicing on and no steady-sound test, a hum is the likeliest: that test keeps a voice over it
        steady = (
            "; --vad-steady 2 shuts the gate on a sound whose pitch and level do not move (a hum) and still hears a "
            "voice over it, or"
            if self.gate.voicing and not self.config.vad_steady
            else ";"
        )
        return (
            f"the voice gate has been open for {t - self._open_since:.0f} s without a pause (its quietest hop "
            f"{self._open_quietest:.1f} dBFS): if nobody is speaking, {sound} is being classified and learnt as the "
            f"speaker{steady} --vad-db {above:g} keeps it out",
        )

    def speaker_clips(self) -> int | None:
        """Clips the speaker statistics hold (a fusion bundle: its adapting branches'), None if none adapt."""
        return clips_held(active_adapters(self.speaker, self.engine))

    def _follow_utterance(self, window: np.ndarray, speech: bool) -> bool:
        """ "utterances": gather the run of speech, from the hop before the gate opened to the hop that closes it,
        and let it join the statistics when it ends (or every UTTERANCE_MAX_S). True when one joined now."""
        if not self._learns_speaker():
            self._utterance, self._utterance_hops = [], 0
            return False
        hop = max(1, int(round(self.config.hop * self.sr)))
        if speech:
            if not self._utterance:
                self._utterance.append(window[-2 * hop : -hop])  # the onset may start in the hop before
                self._utterance_speaker = self._speaker_resets()
            self._utterance.append(window[-hop:])
            self._utterance_hops += 1
            if self._utterance_hops * self.config.hop < UTTERANCE_MAX_S - 1e-9:
                return False
        elif not self._utterance:
            return False
        else:
            self._utterance.append(window[-hop:])  # the decaying end
        return self._close_utterance()

    def _close_utterance(self) -> bool:
        """The gathered utterance joins the speaker statistics if it is long enough (UTTERANCE_MIN_S of speech);
        the gathering starts anew either way. True when it joined."""
        y = np.concatenate(self._utterance)
        long_enough = self._utterance_hops * self.config.hop >= UTTERANCE_MIN_S - 1e-9
        self._utterance, self._utterance_hops = [], 0
        if self._utterance_speaker != self._speaker_resets():
            # `Recognizer.reset_speaker()` while it was said: the last speaker's sentence was the new one's first clip
            return False
        if long_enough:
            clip = self._cut(y)
            if any(a.enabled for a in active_adapters(self.speaker, self.engine).values()):
                self.kind.check_clip(clip.size)
                learn_inputs(self.speaker, self.engine, self.front.utterance_inputs(clip))
            if (
                self._fallback_learns()
            ):  # the audio-only fallback knows the same speaker, from the same speech
                kind = self.fallback.bundle.input_kind
                kind.check_clip(clip.size)
                learn_clip(kind, self.fallback_speaker, self.fallback, clip, self.sr)
        return long_enough

    def _speaker_resets(self) -> tuple[int, ...]:
        """Each speaker-statistics adapter's `resets`: a change means a new speaker since."""
        return tuple(a.resets for a in self._adapters())

    def _fallback_learns(self) -> bool:
        fb = self.fallback_speaker
        return fb is not None and fb.active and fb.enabled

    def _learns_speaker(self) -> bool:
        """Whether any speaker statistics learn from the utterances: the bundle's (a fusion's branches') or its
        audio-only fallback's (av_cnn has none of its own, so its fallback's utterances were never gathered)."""
        adapters = active_adapters(self.speaker, self.engine)
        return any(a.enabled for a in adapters.values()) or self._fallback_learns()

    def finish_utterance(self) -> bool:
        """The end of the stream (a file's end, a stop, Ctrl-C) with an utterance still open: it joins the speaker
        statistics as one that ended, if it is long enough (a stop while someone spoke dropped it, so the speaker
        file lacked it). True when it joined."""
        if self.config.learn != "utterances" or not self._utterance:
            return False
        if not self._learns_speaker():
            self._utterance, self._utterance_hops = [], 0
            return False
        return self._close_utterance()

    def _cut(self, y: np.ndarray) -> np.ndarray:
        """`y` cut to its speech plus `keep_pause` seconds before and after it (`y` itself when nothing is cut)."""
        return y if self.keep_pause is None else trim_pauses(y, self.sr, self.keep_pause)

    def _learn_now(self) -> bool:
        """Whether this window with speech joins the speaker statistics: once `learn_seconds` of speech (counted
        in hops) have passed since the last one that did ("windows"; never for "utterances")."""
        if self.config.learn == "utterances":
            return False
        self._speech_since_learn += self.config.hop
        if self._speech_since_learn + 1e-9 < self.config.learn_seconds:
            return False
        self._speech_since_learn = 0.0
        return True

    def _classify(
        self,
        t0: float,
        window: np.ndarray,
        faces: Sequence | None,
        common: dict,
        capture_ms: float,
        face_ms: float,
    ) -> LiveResult:
        """Features, inference and smoothing of a window with speech in it."""
        tf = time.perf_counter()
        engine, kind, fallback, mode = self.engine, self.kind, None, self.kind.mode
        if self.needs_faces and not kind.enough_faces(faces, self.config.min_faces):
            if self.fallback is not None:
                engine, kind = self.fallback, self.fallback.bundle.input_kind
                mode, fallback = kind.mode, "no face: audio-only model"
            elif not faces:  # no frame at all (a session fed audio only): `window_inputs` gives black frames
                fallback = "no frames: fused model on black frames (no audio-only fallback bundle)"
            else:
                fallback = "no face: fused model on the centre crop (no audio-only fallback bundle)"
        elif self._degrades(faces):
            # a fusion bundle without a face in view: its face term is left out, so the answer is the audio's (no
            # fallback bundle is involved: the fusion degrades by itself)
            mode, faces = "audio", []
        learn = self._learn_now()
        frozen = [*active_adapters(self.speaker, self.engine).values()]
        if self.fallback_speaker is not None:
            frozen.append(self.fallback_speaker)
        with contextlib.nullcontext() if learn else held(frozen):
            # the fallback's inputs through its own speaker statistics: it was trained on standardised inputs, and
            # raw ones put it out of range (every window "angry 1.00" on av_fn_audio until 2026-12-05)
            if kind is not self.kind:
                x = self.fallback_speaker(kind.window_inputs(window))
            elif (cut := self._cut(window)) is window:
                x = self.speaker(self.front.inputs(window, faces))
            else:  # a window with its pauses cut is no longer the stream's newest window: framed on its own
                x = self.speaker(kind.window_inputs(cut, faces))
            features_ms = (time.perf_counter() - tf) * 1e3
            with self.fallback_lock if engine is self.fallback else self.engine_lock:
                ti = time.perf_counter()
                logits = engine.predict(x)  # a fusion engine updates its branches' statistics here
                inference_ms = (time.perf_counter() - ti) * 1e3
                ood = bool(getattr(getattr(engine, "adapt", None), "last_ood", np.zeros(0, bool)).any())
        p = kind.combine(logits)
        s = self.smoother(p)
        k = self.smoother.winner(s)
        total = capture_ms + face_ms + (time.perf_counter() - t0) * 1e3
        return LiveResult(
            **common, probs=tuple(map(float, p)), smoothed=tuple(map(float, s)), label=self.labels[k],
            confidence=float(s[k]), speech=True, mode=mode, fallback=fallback,
            times=StageTimes(capture_ms, features_ms, face_ms, inference_ms, total),
            ood=self.narrow or ood,
        )  # fmt: skip
