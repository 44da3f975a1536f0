"""The installed versions of the libraries a measurement ran with, for the reports that record them (roofline,
live bench, the benchmark results files): a figure that does not reproduce can then be traced to a library."""

from __future__ import annotations

from collections.abc import Iterable

RUNTIME = ("edge-ser", "numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime", "opencv-python-headless")
"""What the device side runs with."""
HOST = (*RUNTIME, "torch", "scikit-learn", "soundfile", "librosa", "tensorflow")
"""And what training and the research tables run with."""


def library_versions(dists: Iterable[str] = RUNTIME) -> dict[str, str]:
    """{distribution: version} of those of `dists` that are installed, in the order given. edge-ser's is the
    running code's (`edge_ser.__version__`): the installed distribution's metadata named a stale copy when a
    checkout ran through PYTHONPATH beside an older install."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in dists:
        if dist == "edge-ser":
            import edge_ser

            out[dist] = edge_ser.__version__
            continue
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
