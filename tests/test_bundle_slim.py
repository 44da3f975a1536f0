"""`edge-ser slim`: a bundle without its TFLite variants, re-signed; and what a variant deleted by hand says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge_ser.bundle import load_bundle
from edge_ser.cli import main
from edge_ser.errors import BundleError

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def test_slim_keeps_every_other_file_byte_for_byte_and_the_copy_loads(tmp_path, capsys):
    src = BUNDLES / "ser_emodb"
    assert main(["slim", str(src), str(tmp_path / "s"), "--keep", "int8"]) == 0
    assert "without model_fp16.tflite, model_fp32.tflite" in capsys.readouterr().out
    slim = load_bundle(tmp_path / "s")
    assert sorted(slim.files) == ["model.onnx", "model_int8.tflite", "weights.esq"]
    for name in slim.files:
        assert (tmp_path / "s" / name).read_bytes() == (src / name).read_bytes()
    assert list(slim.manifest["tflite"]["variants"]) == ["int8"]
    m_src = json.loads((src / "manifest.json").read_text())
    m_slim = json.loads((tmp_path / "s" / "manifest.json").read_text())
    for m in (m_src, m_slim):
        m.pop("files"), m.pop("tflite")
    assert m_src == m_slim  # nothing else changed

    assert main(["slim", str(src), str(tmp_path / "n.tar")]) == 0  # no variant at all, as a tar
    none = load_bundle(tmp_path / "n.tar")
    assert "tflite" not in none.manifest and sorted(none.files) == ["model.onnx", "weights.esq"]


def test_slim_refuses_what_it_cannot_do(tmp_path, capsys):
    assert main(["slim", str(BUNDLES / "av_fusion"), str(tmp_path / "f")]) == 2
    assert "fusion bundle" in capsys.readouterr().err
    assert main(["slim", str(BUNDLES / "ser_emodb"), str(tmp_path / "a")]) == 0
    assert main(["slim", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "has no TFLite variants" in capsys.readouterr().err
    assert main(["slim", str(tmp_path / "a"), str(tmp_path / "b"), "--keep", "int8"]) == 2
    # was "has no TFLite variants to leave out": what was asked is a variant to keep
    assert "no TFLite variant int8 to keep (it has no TFLite variants" in capsys.readouterr().err
    assert (
        main(["slim", str(BUNDLES / "ser_emodb"), str(tmp_path / "a")]) == 0
    )  # replaces its own earlier copy
    assert not (tmp_path / "b").exists()
    src = tmp_path / "src"
    shutil.copytree(BUNDLES / "ser_emodb", src)
    for out in (src / "inner", src / "slim.tar", src):  # inside the bundle: it would no longer load (review)
        assert main(["slim", str(src), str(out)]) == 2
        assert "write the copy outside it" in capsys.readouterr().err
    load_bundle(src)
    every = ["--keep", "fp32", "--keep", "fp16", "--keep", "int8"]
    assert main(["slim", str(src), str(tmp_path / "all"), *every]) == 2
    assert "leaves nothing out" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["slim", str(src), str(tmp_path / "file" / "sub")]) == 2
    assert "cannot make its folder" in capsys.readouterr().err
    assert main(["slim", str(src), str(tmp_path / "o.TAR")]) == 0
    assert (tmp_path / "o.TAR").is_file() and load_bundle(tmp_path / "o.TAR").files


def test_a_variant_deleted_by_hand_names_the_command_that_does_it(tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(BUNDLES / "ser_emodb", copy)
    (copy / "model_int8.tflite").unlink()
    with pytest.raises(
        BundleError, match="model_int8.tflite: listed in manifest.json but missing.*edge-ser slim"
    ):
        load_bundle(copy)


def test_the_fix_a_deleted_variant_suggests_works_as_it_is_said(tmp_path, capsys):
    """Review: the message said "put it back, or make a copy without the variants: edge-ser slim BUNDLE OUT", but
    slim on that bundle failed with the same message (it loads the whole bundle first). It now says to put the file
    back first, which is what makes slim work."""
    copy = tmp_path / "b"
    shutil.copytree(BUNDLES / "ser_emodb", copy)
    (copy / "model_int8.tflite").unlink()
    assert main(["slim", str(copy), str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "put it back, then make a copy without the variants: edge-ser slim" in err
    shutil.copy(BUNDLES / "ser_emodb" / "model_int8.tflite", copy)
    assert main(["slim", str(copy), str(tmp_path / "s")]) == 0
    assert sorted(load_bundle(tmp_path / "s").files) == ["model.onnx", "weights.esq"]
