"""The live runtime: capture (mic, camera, files), the streaming audio-visual pipeline and its outputs.

Device side: numpy, opencv and (for the microphone) sounddevice, each imported where it is used.
"""

from __future__ import annotations

from edge_ser.live.result import SILENCE, LiveResult, StageTimes

__all__ = ["SILENCE", "LiveResult", "StageTimes"]
