"""edge-ser device runtime: features, audio input and inference for speech emotion recognition on the edge.

    from edge_ser import Recognizer
    rec = Recognizer("bundles/laq_mlp_emodb")
    print(rec.predict_file("clip.wav"))

Importing the package costs nothing but the standard library (`Recognizer` and `Prediction` are loaded on
first use); numpy, opencv, sounddevice and inference back-ends are imported inside the modules and functions
that need them, and torch, tensorflow, librosa and the host package `converters` are never imported (tests
enforce both).
"""

from typing import TYPE_CHECKING

from edge_ser.errors import (
    AudioFormatError,
    BundleError,
    ConfigError,
    DatasetError,
    DelegateError,
    EdgeSerError,
    InferenceError,
    InputWarning,
    MissingDependencyError,
    PackedFormatError,
    ProviderWarning,
    VideoFormatError,
)

if TYPE_CHECKING:  # a type checker sees the lazy names' real types (they are Any through __getattr__)
    from edge_ser.live.pipeline import PipelineConfig
    from edge_ser.live.result import LiveResult
    from edge_ser.live.session import AudioSession
    from edge_ser.recognizer import Prediction, Recognizer, WindowPrediction

__version__ = "0.1.0"

_LAZY = {
    "Recognizer": "edge_ser.recognizer",
    "Prediction": "edge_ser.recognizer",
    "WindowPrediction": "edge_ser.recognizer",
    "LiveResult": "edge_ser.live.result",
    "PipelineConfig": "edge_ser.live.pipeline",
    "AudioSession": "edge_ser.live.session",
}


def __getattr__(name: str):  # PEP 562: the API classes import numpy, so they load when first asked for
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edge_ser' has no attribute {name!r}")


__all__ = [
    "AudioFormatError",
    "AudioSession",
    "BundleError",
    "ConfigError",
    "DatasetError",
    "DelegateError",
    "EdgeSerError",
    "InferenceError",
    "InputWarning",
    "LiveResult",
    "MissingDependencyError",
    "PackedFormatError",
    "PipelineConfig",
    "Prediction",
    "ProviderWarning",
    "Recognizer",
    "VideoFormatError",
    "WindowPrediction",
    "__version__",
]
