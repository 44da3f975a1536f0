"""What the live pipeline emits per update: one `LiveResult`, consumed by every output (console, overlay,
JSON lines, web page). Plain data, JSON-ready through `to_dict()`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent per stage for this update (0 when a stage did not run)."""

    capture: float = 0.0
    features: float = 0.0
    face: float = 0.0
    inference: float = 0.0
    total: float = 0.0
    learn: float = 0.0
    """The features of an utterance that joins the speaker statistics (`PipelineConfig.learn` "utterances"), on
    the update that ends it (0 on the others); part of `total`, not of `features`."""


@dataclass(frozen=True)
class LiveResult:
    """One update of the live pipeline.

    t: seconds since the stream started (the end of the audio window, stream time, not wall time).
    labels: the bundle's labels, in output order. probs: this window's probabilities (empty when not run,
    e.g. silence). smoothed: probabilities after smoothing (EMA or majority over k windows); empty, as `probs`,
    when the update has no estimate (`label` is then SILENCE, NO_FACE or NO_RESULT): the smoother starts again at
    the next window with speech, so there is nothing to show, and zeros would read as a distribution.
    label: the reported label: the smoothed arg-max, or "silence" when the voice-activity gate is closed.
    confidence: the smoothed probability of `label` (0 without an estimate). speech: the gate's decision on the
    newest hop.
    level_db: the newest hop's RMS level in dBFS. mode: "fused", "audio" (audio-only bundle; a fusion
    bundle with no face in view, its face term left out; or the fallback bundle when no face is seen: `fallback`
    says why) or "video". face_box: (x, y, w, h) in the camera frame's
    pixels, or None. frame_size: (width, height) of the camera frame, or None. overflows: audio input
    overflows counted so far. notes: human-readable events (camera lost, retrying, ...). ood: the input was
    out of the model's training range (clamped), so the label is a guess.
    """

    t: float
    labels: tuple[str, ...]
    probs: tuple[float, ...]
    smoothed: tuple[float, ...]
    label: str
    confidence: float
    speech: bool
    level_db: float
    mode: str
    fallback: str | None = None
    face_box: tuple[int, int, int, int] | None = None
    frame_size: tuple[int, int] | None = None
    overflows: int = 0
    times: StageTimes = field(default_factory=StageTimes)
    notes: tuple[str, ...] = ()
    ood: bool = False
    """The window's model input was beyond the range the model was trained on (clamped; `Prediction.ood`)."""
    voiced: float | None = None
    """The share of the newest half second's frames that were voiced, when the voice gate tested it (a hop that
    reached the level with the voicing gate on); None otherwise. A hop at -30 dBFS that reads `silence` with a
    share under the gate's (0.1 by default) was noise, not a voice."""
    clipped: float | None = None
    """The share of the newest hop's samples at full scale (`edge_ser.audio.level.clipped_share`), for a bundle
    that hears; above `CLIPPED_NOTE` (1 %) the input is distorted and `notes` says so (every `CLIP_NOTE_EVERY` s)."""
    speaker_clips: int | None = None
    """Utterances of the current speaker (and enrolled clips; windows with `PipelineConfig.learn` "windows") the
    speaker statistics hold after this update; None when the bundle does not learn its speaker. A new speaker is
    near the fully adapted figure after ~30."""

    @property
    def hears(self) -> bool:
        """Whether the bundle listens: a face-only bundle (mode "video") has no voice gate, and no level."""
        return self.mode != "video"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: tuples become lists, and non-finite floats None (the level of digital silence is -inf,
        which strict JSON parsers, browsers' JSON.parse and `json.dumps(allow_nan=False)` refuse)."""
        return finite_values(asdict(self))


def finite_values(x: Any) -> Any:
    """`x` with every non-finite float replaced by None, through dicts, lists and tuples (which become lists)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite_values(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_values(v) for v in x]
    return x


SILENCE = "silence"
NO_FACE = "no face"
"""The label of a window in which a face-only model saw no face (its `speech` is False: nothing to classify)."""
NO_AUDIO = "no audio"
"""The label of an update while the microphone is lost (`notes` says so): sent every `LOST_EVERY` s of wall time
until it is back, so a page or a JSON reader sees the loss instead of the last label standing."""
NO_RESULT = "no result"
"""The label of a window the model could not answer (NaN or infinite input or logits; `notes` says why)."""
CAMERA_AWAY = ("camera lost", "no camera yet")
"""How an update's note begins when the camera goes away: after it gave frames, or before its first
(`edge_ser.live.run`); the live page keeps it for a tab opened later, until a `CAMERA_BACK` note."""
CAMERA_BACK = ("camera back", "camera found")
"""The note of the camera's first frame after `CAMERA_AWAY`: after it gave frames before, or its very first."""
