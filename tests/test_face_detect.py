"""benchmarks/face_detect.py: the rule that chooses face_fer's Haar search, and the bundle rewrite that ships it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("cv2")

from benchmarks.face_detect import choose, set_face_crop  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.vision.face import FaceCropSpec  # noqa: E402

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def _scores(**rows: tuple[float, float]) -> dict[FaceCropSpec, dict]:
    """Candidate searches keyed by scale factor name ("s110" = 1.10) -> (agreement all, agreement found)."""
    return {
        FaceCropSpec(scale_factor=int(k[1:]) / 100): {"agreement": a, "agreement_found": f}
        for k, (a, f) in rows.items()
    }


def test_choose_takes_the_best_all_image_agreement() -> None:
    train = _scores(s110=(0.78, 0.873), s105=(0.80, 0.872), s103=(0.79, 0.870))
    assert choose(FaceCropSpec(scale_factor=1.1), train).scale_factor == 1.05


def test_choose_breaks_a_tie_by_the_cheaper_search() -> None:
    """Within 0.3 point of the best, the coarser pyramid (fewer windows) wins."""
    train = _scores(s110=(0.78, 0.873), s105=(0.799, 0.872), s103=(0.801, 0.860))
    assert choose(FaceCropSpec(scale_factor=1.1), train).scale_factor == 1.05


def test_choose_refuses_a_search_that_frames_found_faces_worse() -> None:
    """More than 1.0 point less agreement where the face is found is out, however many faces it finds."""
    train = _scores(s110=(0.78, 0.873), s105=(0.79, 0.870), s103=(0.85, 0.85))
    assert choose(FaceCropSpec(scale_factor=1.1), train).scale_factor == 1.05


def test_set_face_crop_rewrites_only_the_manifest(tmp_path: Path) -> None:
    """The shipped face bundle gets the new search and a record of the old one; every other file is kept byte
    for byte, the manifest is re-signed (the bundle loads), and the kind crops with the new search."""
    dst = tmp_path / "face_fer"
    shutil.copytree(BUNDLES / "face_fer", dst)
    before = {p.name: p.read_bytes() for p in dst.iterdir() if not p.name.startswith("manifest")}
    old = load_bundle(dst).input_kind.face_crop
    new = replace(old, scale_factor=1.08, min_neighbors=4)
    figures = {"agreement": 0.8, "agreement_found": 0.87, "found_rate": 0.86}
    set_face_crop(dst, new, figures, "python benchmarks/face_detect.py --write")
    assert {p.name: p.read_bytes() for p in dst.iterdir() if not p.name.startswith("manifest")} == before
    b = load_bundle(dst)
    assert b.input_kind.face_crop == new
    record = json.loads((dst / "manifest.json").read_text())["accuracy"]["face_crop_choice"]
    assert record["before"] == old.to_dict()
    assert record["publictest_agreement"] == 0.8
    assert list(tmp_path.iterdir()) == [dst]  # no temp file left behind


def _fake_fer_run(monkeypatch, mod, bundle: Path) -> None:
    """`mod` (face_views or face_detect) runs on `bundle` with 20 blank FER images for train and PublicTest, no
    device crops and one fixed score row per candidate: its naming and writing are tested, not its figures."""
    from types import SimpleNamespace

    import numpy as np

    b = load_bundle(bundle)
    fer = SimpleNamespace(images=np.zeros((20, 48, 48), np.uint8), labels=np.arange(20) % 7)
    monkeypatch.setattr(mod, "fer_setup", lambda args: (fer, fer, b, b.input_kind, None, None))
    monkeypatch.setattr(mod, "device_crops", lambda *a, **k: None)
    row = {"agreement": 0.8, "agreement_found": 0.87, "found_rate": 0.86, "accuracy": 0.6, "uar": 0.5,
           "accuracy_device_crop": 0.55, "uar_device_crop": 0.5, "n": 20}  # fmt: skip
    monkeypatch.setattr(mod, "score", lambda *a, **k: dict(row))


@pytest.mark.parametrize("script", ["face_views", "face_detect"])
def test_the_recorded_command_is_the_whole_command_line(monkeypatch, script) -> None:
    """face_views.py / face_detect.py recorded a fixed "python benchmarks/<script>.py [--write]" in their results
    and in the bundle's manifest (`made_by`), so a run with `--engine numpy` or another `--bundle` claimed to be
    the default run. Now the command line as given (the data, the scoring and the writes stubbed out)."""
    import importlib
    import sys

    from benchmarks._common import this_command

    mod = importlib.import_module(f"benchmarks.{script}")
    bundle = BUNDLES / "face_fer"
    _fake_fer_run(monkeypatch, mod, bundle)
    got: dict = {}
    monkeypatch.setattr(mod, "write_results", lambda name, payload, md: got.update(payload=payload, md=md))
    writer = "set_views" if script == "face_views" else "set_face_crop"
    monkeypatch.setattr(mod, writer, lambda path, chosen, test, command: got.update(made_by=command))
    # a choice other than the bundle's, so --write rewrites it
    if script == "face_views":
        monkeypatch.setattr(mod, "choose", lambda train: (0.95, 1.05))
    else:
        monkeypatch.setattr(mod, "choose", lambda shipped, train: replace(shipped, scale_factor=1.03))
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{script}.py", "--engine", "numpy", "--write"])
    mod.main()
    recorded = {"command": this_command(), **got["payload"]}["command"]
    assert recorded.endswith(f"{script}.py --engine numpy --write"), recorded
    assert got["made_by"] == recorded
    # the bundle as the repository names it (face_views.json held this machine's absolute path)
    assert got["payload"]["bundle"] == "bundles/face_fer" and "Bundle `bundles/face_fer`" in got["md"]


@pytest.mark.parametrize("script", ["face_views", "face_detect"])
@pytest.mark.parametrize(
    "argv, suffix",
    [
        ([], ""),
        (["--engine", "numpy"], "_numpy"),
        (["--bundle", "TRIAL"], "_trial"),
        (["--name", "mine"], None),
    ],
)
def test_a_trial_run_gets_its_own_results_and_writes_only_its_bundle(
    monkeypatch, tmp_path: Path, script, argv, suffix
) -> None:
    """face_views.py / face_detect.py wrote benchmarks/results/<script>.{md,json} whatever the --bundle or
    --engine: a trial on a copy of the bundle replaced the shipped model's record. Now such a run is
    <script>_<bundle folder> / <script>_<engine> (or --name), and --write rewrites the --bundle given only."""
    import hashlib
    import importlib
    import sys

    mod = importlib.import_module(f"benchmarks.{script}")
    trial = tmp_path / "trial"
    shutil.copytree(BUNDLES / "face_fer", trial)
    argv = [str(trial) if a == "TRIAL" else a for a in argv]
    bundle = trial if str(trial) in argv else BUNDLES / "face_fer"
    shipped = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (BUNDLES / "face_fer").iterdir()}
    before = (trial / "manifest.json").read_bytes()
    _fake_fer_run(monkeypatch, mod, bundle)
    names: list[str] = []
    monkeypatch.setattr(mod, "write_results", lambda name, payload, md: names.append(name))
    if script == "face_views":
        monkeypatch.setattr(mod, "choose", lambda train: (0.95, 1.05))
    else:
        monkeypatch.setattr(mod, "choose", lambda shipped, train: replace(shipped, scale_factor=1.03))
    writes: list[Path] = []
    writer = "set_views" if script == "face_views" else "set_face_crop"
    real = getattr(mod, writer)
    if bundle == trial:  # the real rewrite, on the trial copy
        monkeypatch.setattr(mod, writer, lambda path, *a: (writes.append(path), real(path, *a)))
    else:  # the shipped bundle is never rewritten by a test
        monkeypatch.setattr(mod, writer, lambda path, *a: writes.append(path))
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{script}.py", *argv, "--write"])
    mod.main()
    assert names == ([script + suffix] if suffix is not None else ["mine"])
    assert writes == [bundle]
    assert {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (BUNDLES / "face_fer").iterdir()
    } == shipped
    if bundle == trial:
        assert (trial / "manifest.json").read_bytes() != before
        load_bundle(trial)


@pytest.mark.parametrize("script", ["face_views", "face_detect", "face_geometry"])
@pytest.mark.parametrize("other", ["ser_emodb", "av_cnn"])
def test_a_bundle_that_is_not_a_face_bundle_is_one_line_before_the_data(
    monkeypatch, capsys, script, other
) -> None:
    """`--bundle bundles/ser_emodb` was a TypeError traceback (asdict of its crop) and av_cnn an AttributeError,
    each after FER-2013 was read; now one `error:` line naming the bundle and its kind, status 2, no data read."""
    import importlib
    import sys

    mod = importlib.import_module(f"benchmarks.{script}")

    def no_data(*args, **kwargs):
        raise AssertionError("FER-2013 was read before the bundle was checked")

    views = importlib.import_module("face_views")  # the module fer_setup lives in, as the scripts import it
    for m in (mod, views):
        monkeypatch.setattr(m, "find_dataset", no_data, raising=False)
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{script}.py", "--bundle", str(BUNDLES / other)])
    with pytest.raises(SystemExit) as e:
        mod.run_main(mod.main)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert f"{BUNDLES / other}: a face bundle is needed" in err, err
