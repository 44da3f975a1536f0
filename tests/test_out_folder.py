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


def test_a_stop_while_train_saves_its_model_leaves_the_last_one_whole(tmp_path, monkeypatch) -> None:
    """`train` wrote model.pt in place: a Ctrl-C (or a full disk) mid-write left a torn file where the last
    run's model was, which `laq --from-model` then could not read. It is written whole or not at all."""
    import torch

    out = tmp_path / "run"
    args = ["train", "--data", "synthetic", "--n-per-class", "3", "--epochs", "1", "-q", "--out", str(out)]
    assert main(args) == 0
    before = (out / "model.pt").read_bytes()
    real = torch.save

    def torn(obj, f, *a, **k):  # some bytes written, then stopped
        if isinstance(f, (str, Path)):
            Path(f).write_bytes(b"PK\x03\x04 torn")
        else:
            f.write(b"PK\x03\x04 torn")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn)
    assert main([*args, "--seed", "1"]) == 130
    monkeypatch.setattr(torch, "save", real)
    assert (out / "model.pt").read_bytes() == before
