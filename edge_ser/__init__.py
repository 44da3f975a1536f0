"""edge-ser device runtime: features, audio input and inference for speech emotion recognition on the edge.

This package imports numpy only at the top level; opencv, sounddevice and inference back-ends are imported
inside the functions that need them, and torch, tensorflow and librosa are never imported (a test enforces it).
"""

from edge_ser.errors import (
    AudioFormatError,
    BundleError,
    ConfigError,
    DatasetError,
    EdgeSerError,
    MissingDependencyError,
    PackedFormatError,
    VideoFormatError,
)

__version__ = "0.1.0"

__all__ = [
    "AudioFormatError",
    "BundleError",
    "ConfigError",
    "DatasetError",
    "EdgeSerError",
    "MissingDependencyError",
    "PackedFormatError",
    "VideoFormatError",
    "__version__",
]
