"""The installed versions of the libraries a measurement ran with, for the reports that record them (roofline,
live bench, the benchmark results files): a figure that does not reproduce can then be traced to a library."""

from __future__ import annotations

from collections.abc import Iterable

RUNTIME = ("edge-ser", "numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime", "opencv-python-headless")
"""What the device side runs with."""
HOST = (*RUNTIME, "torch", "scikit-learn", "soundfile", "librosa", "tensorflow")
"""And what training and the research tables run with."""


def library_versions(dists: Iterable[str] = RUNTIME) -> dict[str, str]:
    """{distribution: version} of those of `dists` that are installed, in the order given."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in dists:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
