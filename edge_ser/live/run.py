"""The live loop: sources -> (every hop) face crops + audio window -> LivePipeline.step -> outputs.

One thread does the model work; sources capture on their own threads (or, for files in fast mode, hand out
data as the loop pulls it, so a run is exactly reproducible). Stream time comes from the audio: an update
happens each time one more hop of audio has arrived. Faces are cropped from the newest camera frame at
`window / frames` intervals of stream time (6 crops per window, as training sampled 6 frames per clip), not
for every camera frame: that keeps the Haar cost at a few crops per second whatever the camera's rate.

A camera or microphone that disappears is reported in the results' notes and retried by its source with
back-off; the loop keeps running (audio-only when there are no faces).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser.errors import EdgeSerError
from edge_ser.inputs.base import CLIPPED_NOTE
from edge_ser.live import sdnotify
from edge_ser.live.pipeline import LivePipeline, SlidingWindow
from edge_ser.live.result import CAMERA_AWAY, CAMERA_BACK, LiveResult

STAGES = ("capture", "features", "face", "inference", "learn", "total")
LOST_EVERY = 1.0
"""Seconds of wall time between the updates sent while the microphone is lost (`result.NO_AUDIO`)."""
LOST = object()
"""What `LiveRunner._read_hop` returns when an update should say the microphone is lost."""
CAMERA_GRACE = 2.0
"""Seconds of stream time a camera has to deliver its first frame before the results note it as missing."""


@dataclass
class RunStats:
    """Counts for the run and the stage times (ms) of the last `keep` updates (bounded: a live run lasts for
    days, and its statistics must not grow with it). `speech[i]` says whether update i ran the model."""

    keep: int = 10_000
    updates: int = 0
    speech_updates: int = 0
    fallbacks: int = 0
    faces_cropped: int = 0
    faces_found: int = 0
    stages: dict[str, deque] = field(default_factory=dict)
    speech: deque = field(default_factory=deque)
    stream_seconds: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    loudest_db: float = float("-inf")
    """The loudest hop of the run (dBFS): what the voice gate saw at best."""
    stopped: bool = False
    """The run was stopped (Ctrl-C, SIGTERM, the overlay's q) before its sources ended."""
    utterances: int = 0
    """Runs of updates with the voice gate open that have ended: the utterances heard."""
    short_utterances: int = 0
    """Those with less than SHORT_SPEECH_S of speech (`LiveRunner` measures the runs that can be: `short_speech`)."""
    clipped_updates: int = 0
    """Updates whose newest hop was clipped (more than `CLIPPED_NOTE` of its samples at full scale)."""
    mic_losses: int = 0
    """Times the microphone was lost during the run."""
    mic_lost_seconds: float = 0.0
    """Wall seconds without a microphone, in all."""
    mic_lost_at_end: bool = False
    """The run ended with the microphone lost."""
    audio_ended: bool = False
    """The run ended because its audio ran out (a file's end), not stopped nor at --seconds."""
    _open: int = 0

    def __post_init__(self) -> None:
        self.stages = {k: deque(maxlen=self.keep) for k in STAGES}
        self.speech = deque(maxlen=self.keep)

    def add(self, r: LiveResult) -> int:
        """Count the update `r`; returns the length (updates) of the run of open-gate updates that ended on it, or 0."""
        ended = 0
        self.updates += 1
        self.speech_updates += r.speech
        self.fallbacks += r.fallback is not None
        self.speech.append(bool(r.speech))
        if r.hears and r.speech:
            self._open += 1
        elif self._open:  # an utterance ended on this update
            self.utterances += 1
            ended, self._open = self._open, 0
        self.clipped_updates += (getattr(r, "clipped", None) or 0.0) > CLIPPED_NOTE
        if r.hears and r.level_db is not None and r.level_db > self.loudest_db:
            self.loudest_db = float(r.level_db)
        for k in STAGES:
            self.stages[k].append(getattr(r.times, k))
        return ended


def gate_note(stats: RunStats, gate: Any, source: Any = None) -> str | None:
    """Why a run that listened gave "silence" where there may have been speech (else None), from the run's
    statistics and its voice gate (`VadGate`): an input that was digital silence throughout (a muted or wrong
    device), one where nothing rose above the noise floor (no speech reached the microphone), a gate that never
    opened on sound that did rise above it (too quiet, or loud but not voiced), or one that opened on some speech
    while much of it stayed under
    `--vad-db` (a quiet speaker). Each says the level it saw, to one decimal, and a `--vad-db` in -120..0 that would
    open the gate on it; a plain "silence" run used to end with no word, and the advice could be out of range.
    `source`: the file the audio came from (None: a microphone), which the first two name instead of a device."""
    if not stats.updates:
        return None
    vad_db = float(gate.vad_db)
    if stats.loudest_db == -math.inf:
        # heard speech: only the newest hop of each update, the one measured, was zeros (a short file whose one
        # speech window ends in digital silence was said to "hold no sound")
        if stats.speech_updates:
            return None
        if source is not None:  # a file's advice is about the file, not a device (a review)
            return f"every hop was digital silence (all zeros): {Path(source).name} holds no sound"
        return (
            "every hop was digital silence (all zeros): the input is muted, or it is the wrong device "
            "(--mic; `python -m sounddevice` lists the devices)"
        )
    if not gate.stood_out:
        where = (
            f"{Path(source).name} holds no speech, or only speech too quiet to stand out"
            if source is not None
            else "no speech reached the microphone; is it muted, the wrong device (--mic), or too far?"
        )
        return (
            f"no sound rose {gate.margin_db:g} dB above the noise floor (the loudest hop {stats.loudest_db:.1f} dBFS): "
            + where
        )
    steady = getattr(gate, "steady_shut", 0)
    # a run that heard mostly a steady voiced sound the gate kept out (--vad-steady) says so, with the way back
    if steady and steady >= STEADY_NOTE_RATIO * stats.speech_updates and steady >= gate.quiet_hops:
        return (
            f"the voice gate kept {steady} hops out: they reached --vad-db {vad_db:g} and were voiced, but their "
            f"pitch and level did not move, which is a hum or a drone, not a voice (--vad-steady); it opened on "
            f"{stats.speech_updates}; if that was speech (a held note), --vad-steady 0 lets it through"
        )
    unvoiced = getattr(gate, "unvoiced_hops", 0)
    # loud but unvoiced hops (noise) say so, unless more hops were quiet: then the quiet speaker's note below is
    # the one to follow (the noise bursts of a quiet room must not hide it)
    if not stats.speech_updates and unvoiced and unvoiced >= gate.quiet_hops:
        return (
            f"the voice gate never opened: {unvoiced} hops reached --vad-db {vad_db:g} (the loudest "
            f"{stats.loudest_db:.1f} dBFS) but were not voiced, which is noise (a fan, traffic, rustling), not a "
            "voice; if it was speech (a whisper), --vad-voicing 0 lets the level and the noise floor decide"
        )
    if gate.quiet_hops == 0:
        if not stats.speech_updates:  # sound under the gate, never voiced: a room's noise (a fan at -52 dBFS)
            return (
                f"the voice gate never opened: nothing voiced was heard (the loudest hop {stats.loudest_db:.1f} "
                f"dBFS; the gate opens at {vad_db:g} dBFS), only the room's noise: no speech reached the "
                "microphone; is it muted, the wrong device (--mic), or too far?"
            )
        return None
    lower = max(-120.0, 5 * math.floor((gate.quiet_loudest - 5) / 5))
    if not stats.speech_updates:
        return (
            f"the voice gate never opened: sound rose above the noise floor, but its loudest hop was "
            f"{gate.quiet_loudest:.1f} dBFS, under --vad-db {vad_db:g}; if that was speech, raise the microphone's "
            f"gain or lower the gate (--vad-db {lower:g})"
        )
    if gate.quiet_hops >= QUIET_NOTE_HOPS and gate.quiet_hops >= QUIET_NOTE_SHARE * (
        gate.quiet_hops + stats.speech_updates
    ):
        return (
            f"{gate.quiet_hops} hops rose above the noise floor but stayed under --vad-db {vad_db:g} (the loudest "
            f"{gate.quiet_loudest:.1f} dBFS), against {stats.speech_updates} that opened the gate: if they were speech, "
            f"a quiet speaker is being called silence; raise the microphone's gain or lower the gate (--vad-db {lower:g})"
        )
    return None


def video_end(frames: Any) -> float | None:
    """Where a video file or image folder ends (its last frame shown for one frame's time), in media seconds;
    None for a camera or a video that does not declare its frame count."""
    count, fps = getattr(frames, "frame_count", 0), getattr(frames, "fps", None)
    return count / fps if count and fps else None


def audio_ended_note(stats: RunStats, frames: Any, hop: float) -> str | None:
    """The note for a run whose audio ran out before its video (`video ended at ...` says the opposite): the run
    follows the audio, so the rest of the video was not classified, which it used to leave unsaid. None when the
    video ends within a hop of the audio (updates come a hop apart), or the run was stopped."""
    end = video_end(frames)
    if not stats.audio_ended or end is None or end - stats.stream_seconds < hop:
        return None
    return (
        f"audio ended at {stats.stream_seconds:.1f} s, {end - stats.stream_seconds:.1f} s before the video "
        f"({end:.1f} s): the run follows the audio, so the rest of the video was not classified"
    )


def utterance_note(stats: RunStats) -> str | None:
    """A note when most of a run's utterances were short (at least SHORT_NOTE_UTTERANCES of them, at least
    SHORT_NOTE_SHARE with less than SHORT_SPEECH_S of speech), else None: a bundle trained on whole sentences reads
    a second of speech far less reliably, and the user can act on it (docs/live.md, "Short utterances")."""
    n, short = stats.utterances, stats.short_utterances
    if n < SHORT_NOTE_UTTERANCES or short < SHORT_NOTE_SHARE * n:
        return None
    return (
        f"{short} of {n} utterances had less than {SHORT_SPEECH_S:g} s of speech: a word or a short phrase reads far "
        "less reliably than a sentence (the shipped ser_ravdess reads the first second of a new speaker's speech at "
        '28 % UAR, against 64 % for whole sentences: docs/protocol.md, "Utterance length"); say a whole sentence of '
        "2 s or more"
    )


def measured_runs(hop: float) -> int:
    """The longest run of open-gate updates whose speech `LiveRunner` measures (`short_speech`) at a hop of `hop` s:
    those that span less than MEASURED_SPAN_S (3 at the default 0.5 s hop); a longer run holds more speech."""
    return max(1, math.ceil(MEASURED_SPAN_S / hop - 1e-9) - 1)


def ended_run_short(ended: int, audio: np.ndarray, hop_n: int, sr: int, longest: int) -> bool | None:
    """Whether the run of `ended` open-gate updates that the newest hop of `audio` closed was a short utterance
    (`short_speech` on the run's hops, the one before it, an onset, and the closing one, its end); None when the run
    is longer than `longest` updates (`measured_runs`: too long to be short, not measured)."""
    if ended > longest:
        return None
    return short_speech(audio[-(ended + 2) * hop_n :], sr)


def short_speech(tail: np.ndarray, sr: int) -> bool:
    """Whether the audio `tail` (an ended run's hops, the hop before it and the one that closed it) holds less than
    SHORT_SPEECH_S of speech (`edge_ser.audio.pauses.speech_span`: from its first to its last voiced frame); no
    voiced frame: not an utterance to count as short."""
    from edge_ser.audio.pauses import speech_span

    span = speech_span(np.asarray(tail, np.float32), sr)
    return span is not None and (span[1] - span[0]) / sr < SHORT_SPEECH_S


SHORT_SPEECH_S = 1.2
"""An utterance with less speech than this is short (`utterance_note`): the shipped bundles read a new speaker's first
1.0 s at 28.4 % (ser_ravdess) and 70.1 % (ser_emodb) UAR, against 63.9 and 83.0 % whole (docs/protocol.md)."""
MEASURED_SPAN_S = 2.0
"""Runs of open-gate updates spanning less than this have their speech measured (`measured_runs`): at the default
hop, 1-3 updates, which is what nearly every utterance of up to 1 s of speech gives (benchmarks/short_utterances.py);
measuring costs ~5 ms a run, so only those that can be short are."""
SHORT_NOTE_UTTERANCES = 6
"""`utterance_note` speaks only after this many utterances ..."""
SHORT_NOTE_SHARE = 0.5
"""... when at least this share of them were short."""
STEADY_NOTE_RATIO = 4
"""`gate_note` speaks of a steady sound kept out when its hops are at least this many times the updates with speech
(a hum alone opens the gate for its first tests; a run of speech over a hum is not "mostly a hum")."""
QUIET_NOTE_HOPS = 4
"""`gate_note` speaks of quiet speech when at least this many hops rose above the floor under the gate ..."""
QUIET_NOTE_SHARE = 0.25
"""... and they were at least this share of all the hops that rose above it."""


def seconds_down(seconds: float) -> str:
    """A file's length for a note, to two decimals rounded down (2.9999 s is not '3.00 s, less than one 3 s
    window'); rounded to 1e-6 first, so 0.29 s (28.999999... hundredths in binary) is 0.29, not 0.28."""
    return f"{math.floor(round(seconds * 100, 6)) / 100:.2f}"


def too_short(
    audio_file: Any, window: float, stats: RunStats, what: str = "audio", unit: str = "window"
) -> str | None:
    """Why a run over a file (`what`: audio, or the video a face-only bundle runs on) gave no decision at all, when
    the file was shorter than one `window` seconds (else None): `edge-ser run` and `Recognizer.stream` say so
    instead of ending without a result. `unit`: what that length is (`Recognizer.stream` classifies a file
    shorter than a window, so its limit is one hop). The length is rounded down: 0.49994 s is not '0.50 s, less
    than one 0.5 s hop'."""
    if stats.updates or audio_file is None or stats.stream_seconds >= window or stats.stopped:
        return None  # a run stopped before its first window is not a file too short for one
    held = seconds_down(stats.stream_seconds)
    return (
        f"{audio_file} holds {held} s of {what}, less than one {window:g} s {unit}, so no decision was made"
    )


class LiveRunner:
    """Runs `pipeline` on an audio source (and a frame source for faces) until stopped or the files end."""

    def __init__(
        self,
        pipeline: LivePipeline,
        audio,
        frames=None,
        outputs=(),
        tracker=None,
        *,
        stop=None,
        max_seconds: float | None = None,
        keep: int = 10_000,
    ) -> None:
        self.pipeline, self.audio, self.frames = pipeline, audio, frames
        self.outputs = list(outputs)
        self.tracker = tracker
        self.stop = stop
        self.max_seconds = max_seconds
        c = pipeline.config
        self.stats = RunStats(keep)
        self.measured_runs = measured_runs(c.hop)
        self.sr = pipeline.sr
        self.hop_n = int(round(c.hop * self.sr))
        self.win_n = int(round(c.window * self.sr))
        k = pipeline.kind.faces  # face crops per window (0: the model sees no faces)
        self.face_dt = c.window / k if k else None
        self._faces: deque = deque(maxlen=k or 1)
        self._next_face = 0.0
        self._frame_size: tuple[int, int] | None = None
        self._notes: list[str] = []
        self._short_noted = False
        # None until the camera first delivers a frame, or first counts as missing
        self._camera_ok: bool | None = None
        self._camera_seen = False
        self._mic_ok = True
        self._channel_noted = False
        self._lost_since: float | None = None  # wall time the microphone was lost at, while it is
        self._lost_sent: float | None = None  # wall time of the last update that said so
        self._last_frame_t: float | None = None  # media time of the newest frame read (a video file's end)
        self._video_over = False
        self.frame_hook = None
        """Called with every camera frame the loop reads (e.g. the overlay window's update_frame)."""
        self.classify_short = False
        """When an audio file ends before the first window is full (no decision yet), classify what it held once,
        with a note, as `AudioSession.finish` and `predict_file` do (`Recognizer.stream`); False: no result, and
        `too_short` says why (`edge-ser run`, which points to `edge-ser predict`)."""

    def _stopped(self) -> bool:
        """The stop flag is set, or an output asks to quit (the overlay window's q / Esc / close): the loop ends,
        and the statistics say it was stopped."""
        if (self.stop is not None and self.stop.is_set()) or any(
            getattr(out, "quit_requested", False) for out in self.outputs
        ):
            self.stats.stopped = True
        return self.stats.stopped

    def run(self) -> RunStats:
        """The loop, each result to every output; returns the run's statistics."""
        for r in self.results():
            for out in self.outputs:
                out.emit(r)
        return self.stats

    def results(self) -> Generator[LiveResult, None, RunStats]:
        """The loop as an iterator of results (`Recognizer.stream`; `run` feeds them to the outputs). Sources
        are started on the first `next` and stopped when the stream ends, is stopped, or the iterator is
        closed (a `break` out of a for loop closes it)."""
        window = SlidingWindow(self.win_n)
        pending = np.zeros(0, np.float32)
        self.audio.start()
        note = getattr(self.audio, "capture_note", None)
        if note:  # where the audio comes from and how it is converted, in the first result's notes
            self._notes.append(note)
        from edge_ser.live.files import WavSource

        narrow = self.pipeline.set_source_rate(
            getattr(self.audio, "source_rate", None), from_file=isinstance(self.audio, WavSource)
        )
        if narrow:
            self._notes.append(narrow)
        if self.frames is not None and self.pipeline.needs_faces:
            self.frames.start()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        ended = False  # the source ran out (not stopped, not --seconds)
        try:
            while not self._stopped():
                chunk = self._read_hop(self.hop_n - pending.size)
                if chunk is None:
                    ended = True
                    self.stats.audio_ended = not self._stopped()
                    break
                if not self._channel_noted and (cn := getattr(self.audio, "channel_note", None)):
                    # the channels cancel: on the page and in the JSON, not on stderr only
                    self._notes.append(cn)
                    self._channel_noted = True
                if chunk is LOST:  # an update that says so, not the last label standing
                    notes = tuple(self._notes)
                    self._notes.clear()
                    yield self.pipeline.no_audio(float(self.audio.stream_time), notes)
                    continue
                # capture = putting the hop into the window (and the streamed frames); the wait for the audio
                # to arrive is not work and is not counted
                tc = time.perf_counter()
                pending = np.concatenate([pending, chunk]) if pending.size else chunk
                if pending.size < self.hop_n:
                    if getattr(self.audio, "finished", False):
                        ended = self.stats.audio_ended = True
                        break
                    continue
                hop, pending = pending[: self.hop_n], pending[self.hop_n :]
                self.pipeline.feed(hop)
                full = window.add(hop)
                capture_ms = (time.perf_counter() - tc) * 1e3
                t = float(self.audio.stream_time)
                face_ms = self._faces_until(t)
                if not full:
                    continue  # the first window is not complete yet
                notes = tuple(self._notes)
                self._notes.clear()
                r = self.pipeline.step(
                    t,
                    window.samples,
                    list(self._faces) if self.pipeline.needs_faces else None,
                    capture_ms=capture_ms,
                    face_ms=face_ms,
                    notes=notes,
                    overflows=int(getattr(self.audio, "overflows", 0)),
                    frame_size=self._frame_size,
                )
                ended = self.stats.add(r)  # only a model that hears has runs of open-gate updates
                if ended:
                    short = ended_run_short(ended, window.samples, self.hop_n, self.sr, self.measured_runs)
                    self.stats.short_utterances += bool(short)
                if not self._short_noted and (short := utterance_note(self.stats)):
                    self._notes.append(short)  # once, in the next result's notes (the live page shows them)
                    self._short_noted = True
                yield r
                if self.max_seconds is not None and t >= self.max_seconds:
                    break
            short = self._short_file(window, pending) if ended and self.classify_short else None
            if short is not None:
                self.stats.add(short)
                yield short
        finally:
            self._finish(wall0, cpu0)
        return self.stats

    def _short_file(self, window: SlidingWindow, pending: np.ndarray) -> LiveResult | None:
        """The one result of a file that ended before the first window was full (`classify_short`): all its
        audio classified as it is (the session's rule), the last part of a hop too (it was dropped: a 2.9 s file
        was classified on 2.5 s and said to hold 2.5 s); None when a window was full or it held less than a hop."""
        part = window.filled
        if self.stats.updates or not self.hop_n <= part.size < window.size:
            return None
        if pending.size:
            self.pipeline.feed(pending)
            part = np.concatenate([part, pending])[-window.size :]
        # rounded down (`seconds_down`); a face-only bundle runs on a video
        held, what = seconds_down(part.size / self.sr), "audio" if self.pipeline.kind.hears else "video"
        notes = (
            *self._notes,
            f"the file held {held} s of {what}, less than one {window.size / self.sr:g} s window: classified "
            "as it is",
        )
        self._notes.clear()
        return self.pipeline.step(
            float(self.audio.stream_time),
            part,
            list(self._faces) if self.pipeline.needs_faces else None,
            notes=notes,
            frame_size=self._frame_size,
        )

    def _finish(self, wall0: float, cpu0: float) -> None:
        """The end of `results`: the run's times, the sources stopped, an unfinished sentence learnt."""
        if self._lost_since is not None:
            self.stats.mic_lost_seconds += time.perf_counter() - self._lost_since
            self.stats.mic_lost_at_end = True
        self.stats.wall_seconds = time.perf_counter() - wall0
        self.stats.cpu_seconds = time.process_time() - cpu0
        self.stats.stream_seconds = float(self.audio.stream_time)
        self.audio.stop()
        if self.frames is not None:
            self.frames.stop()
        try:  # a stop mid-sentence: the sentence still joins the speaker file (after the devices are stopped)
            self.pipeline.finish_utterance()
        except EdgeSerError:
            pass  # a clip the model cannot take (too short): it is not learnt, as a live one would not be

    def _read_hop(self, n: int) -> np.ndarray | object | None:
        """Up to `n` new samples (waiting for them in real time); None when the source is done; `LOST` when the
        microphone is lost and an update should say so (at once, then every `LOST_EVERY` s until it is back)."""
        maintain = getattr(self.audio, "maintain", None)
        while not self._stopped():
            sdnotify.ping()  # systemd's watchdog: the loop is alive (a no-op outside systemd)
            if maintain is not None:
                maintain()
            healthy = bool(getattr(self.audio, "healthy", True))
            now = time.perf_counter()
            if healthy != self._mic_ok:
                self._mic_ok = healthy
                note = getattr(self.audio, "capture_note", None) if healthy else None
                if healthy:
                    gone = now - (self._lost_since if self._lost_since is not None else now)
                    self.stats.mic_lost_seconds += gone
                    self._lost_since = None
                    self._notes.append(f"microphone back after {gone:.1f} s" + (f": {note}" if note else ""))
                else:
                    self.stats.mic_losses += 1
                    self._lost_since = now
                    self._lost_sent = None
                    self._notes.append("microphone lost: retrying")
            chunk = self.audio.read(n, min_samples=n, timeout=0.5)
            if chunk.size:
                return np.asarray(chunk, dtype=np.float32)
            if getattr(self.audio, "finished", False):
                return None
            if self._lost_since is not None and (
                self._lost_sent is None or time.perf_counter() - self._lost_sent >= LOST_EVERY
            ):
                self._lost_sent = time.perf_counter()
                return LOST
        return None

    def _faces_until(self, t: float) -> float:
        """Crop faces from frames up to stream time `t`, one per `face_dt`; returns the ms spent."""
        if (
            self.face_dt is None
            or self.frames is None
            or self.tracker is None
            or not self.pipeline.needs_faces
        ):
            return 0.0
        t0 = time.perf_counter()
        self._camera_health(t)
        realtime = getattr(self.frames, "realtime", True)
        while self._next_face <= t:
            frame = None
            if realtime:
                frame = self.frames.read(timeout=0)
                if frame is None:
                    break
            else:  # a file in fast mode: skip to the frame shown at the crop time
                while True:
                    f = self.frames.read(timeout=0)
                    if f is None:
                        break
                    frame = f
                    if f.t >= self._next_face:
                        break
                if frame is None:
                    break
            self._last_frame_t = frame.t
            if self.frame_hook is not None:
                self.frame_hook(frame.image)
            crop = self.tracker(frame.image, frame.t)
            self._frame_size = (int(frame.image.shape[1]), int(frame.image.shape[0]))
            self._faces.append(crop)
            self.stats.faces_cropped += 1
            self.stats.faces_found += bool(crop.found)
            self._next_face += self.face_dt
            if realtime:
                self._next_face = max(self._next_face, t - self.face_dt)
        self._end_of_video(t)
        return (time.perf_counter() - t0) * 1e3

    def _camera_health(self, t: float) -> None:
        """Note a camera that is lost, comes back, or has not delivered a frame `CAMERA_GRACE` s into the
        stream (a camera takes a moment to open: a missing one is not reported before that), with the source's
        reason; a lost camera's crops are dropped."""
        healthy = bool(getattr(self.frames, "healthy", True))
        if healthy:
            if self._camera_ok is False:
                self._notes.append(CAMERA_BACK[0] if self._camera_seen else CAMERA_BACK[1])
            self._camera_ok = self._camera_seen = True
            return
        if self._camera_ok is False or (not self._camera_seen and t < CAMERA_GRACE):
            return
        self._camera_ok = False
        meanwhile = f"{self.pipeline.without_faces} meanwhile"
        why = getattr(self.frames, "last_error", None) or "retrying"
        self._notes.append(f"{CAMERA_AWAY[0] if self._camera_seen else CAMERA_AWAY[1]}: {why} ({meanwhile})")
        self._faces.clear()
        self.tracker.reset()

    @property
    def camera_seen(self) -> bool:
        """Whether the frame source has delivered a frame during the run."""
        return self._camera_seen

    def _end_of_video(self, t: float) -> None:
        """A video file shorter than the audio: once its last frame has left the window, its crops are dropped
        (they would stand for a face long gone) and the bundle goes on as without a camera; said once."""
        if self._video_over or not getattr(self.frames, "finished", False) or self._last_frame_t is None:
            return
        fps = getattr(self.frames, "fps", None)
        end = self._last_frame_t + (1 / fps if fps else 0.0)  # the last frame is shown for one frame's time
        if t - end > self.pipeline.config.window:
            self._video_over = True
            self._faces.clear()
            self.tracker.reset()
            self._notes.append(f"video ended at {end:.1f} s: no faces from here")
