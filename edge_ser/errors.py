"""Typed errors of edge-ser: every reader raises one of these, naming the file and what was wrong."""

from __future__ import annotations


class EdgeSerError(Exception):
    """Base class of every error edge-ser raises on purpose."""


class ConfigError(EdgeSerError, ValueError):
    """A parameter, spec or configuration value is invalid."""


class AudioFormatError(EdgeSerError, ValueError):
    """An audio file or buffer cannot be read or is not valid audio."""


class VideoFormatError(EdgeSerError, ValueError):
    """A video file cannot be opened or decoded, or is not a video at all."""


class DatasetError(EdgeSerError):
    """A data set folder is missing, empty or has files that do not follow its naming scheme."""


class BundleError(EdgeSerError):
    """A model bundle is missing a file, fails verification or has an unsupported schema."""


class PackedFormatError(BundleError, ValueError):
    """A packed .esq weights file is damaged, truncated, or not an .esq file at all."""


class InferenceError(EdgeSerError, ValueError):
    """The model cannot give a valid answer: its input or its logits hold NaN or infinity (no probabilities)."""


class DelegateError(EdgeSerError):
    """A TFLite delegate named on the command line (`--delegate PATH`) is missing or cannot be loaded; the
    message names the path and why."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"TFLite delegate {path}: {why}")
        self.path = path


def install_hint(package: str, extra: str) -> str:
    """How to install a missing optional package: the package itself (edge-ser is not on PyPI, so a hint of
    `pip install 'edge-ser[extra]'` could not work, or could install someone else's package), or its extra from a
    checkout; a device installs from its offline wheelhouse (deploy/README.md)."""
    return (
        f"pip install {package} (or the '{extra}' extra from an edge-ser checkout: pip install '.[{extra}]')"
    )


class MissingDependencyError(EdgeSerError, ImportError):
    """An optional package is not installed; the message says how to install it (`install_hint`)."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"{package} is not installed{what}: {install_hint(package, extra)}")
        self.package = package
        self.extra = extra


class CacheWarning(UserWarning):
    """A cache (the host profile's measured peaks, the feature cache) cannot be read or written: the work is done
    again, or not kept. Said with the cache file's name."""


class InputWarning(UserWarning):
    """Suspicious but usable input: files skipped in a folder, audio beyond full scale, a long file cut into
    windows. Said once per file, with its name."""


class ProviderWarning(UserWarning):
    """An onnxruntime execution provider asked for by name (CUDA, TensorRT) is not available here: the engine
    runs on the next one asked for, and always on the CPU last. Said once per engine, naming what runs."""
