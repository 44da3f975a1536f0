"""Helpers for the speaker-normalisation tests: a small bundle with a `speaker_norm` block and vowel-like clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edge_ser.bundle import manifest_sum_line

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "bundles" / "laq_mlp_emodb"
SR = 16000


def _with_block(tmp_path: Path, edit=None) -> Path:
    """A copy of the shipped clip-vector bundle with a speaker_norm block (prior: its training statistics)."""
    b = tmp_path / "b"
    shutil.copytree(SHIPPED, b)
    m = json.loads((b / "manifest.json").read_text())
    norm = m["normalization"]
    m["speaker_norm"] = {
        "input": "features",
        "prior_mean": norm["mean"],
        "prior_var": [s * s for s in norm["std"]],
        "prior_weight": 3,
    }
    if edit:
        edit(m["speaker_norm"])
    data = json.dumps(m).encode()
    (b / "manifest.json").write_bytes(data)
    (b / "manifest.sha256").write_bytes(manifest_sum_line(data))
    return b


def _voice(seed: int, seconds: float = 1.5) -> np.ndarray:
    """A vowel-like clip: a 130-230 Hz harmonic tone with a little noise, at about -20 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 130 + 100 * rng.random()
    y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) + 0.05 * rng.normal(size=t.size)
    return (0.1 * y / np.abs(y).max()).astype(np.float32)
