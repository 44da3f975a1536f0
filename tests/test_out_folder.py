"""`--out` of `edge-ser train / laq / demo` pointing at a bundle folder: refused, naming the option, before any
work. It was accepted and the command wrote summary.json, bitplan.json, model.pt and a bundle/ folder into the
bundle, which then no longer loaded ("not listed in manifest.json")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_ser.cli import main

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "laq_mlp_emodb"


@pytest.mark.parametrize("command", ["train", "laq"])
def test_out_at_a_bundle_is_refused_and_the_bundle_left_alone(tmp_path, capsys, command) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(BUNDLE, bundle)
    before = sorted(p.name for p in bundle.iterdir())
    code = main(
        [command, "--data", "synthetic", "--n-per-class", "3", "--epochs", "1", "-q", "--out", str(bundle)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"--out {bundle}" in err and "is a bundle" in err
    assert sorted(p.name for p in bundle.iterdir()) == before
    from edge_ser.bundle import load_bundle

    load_bundle(bundle)  # still loads
