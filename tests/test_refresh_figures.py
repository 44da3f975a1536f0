"""benchmarks/refresh_figures.py and ship_ser's `over_seeds`: a shipped bundle's speaker-independent figures
follow its nested tables (the procedure at other training seeds too) without retraining, and nothing else of
the bundle changes."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import pytest

import benchmarks.ship_ser as ship
from edge_ser.bundle import load_bundle, write_bundle
from edge_ser.errors import BundleError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import refresh_figures  # noqa: E402


def _copy(name: str, dest: Path, edit=None) -> Path:  # noqa: ANN001 - a callable on the manifest
    """A shipped bundle copied to `dest`, its manifest changed by `edit` (rewritten as a valid bundle)."""
    shutil.copytree(ROOT / "bundles" / name, dest)
    if edit is not None:
        m = json.loads((dest / "manifest.json").read_text())
        edit(m)
        write_bundle(dest, manifest=m, files={f: (dest / f).read_bytes() for f in m["files"]})
    return dest


def test_the_shipped_bundles_carry_the_procedure_over_seeds():
    """ser_emodb and ser_ravdess were nested at training seeds 0-5 with stage 0 rerun at each; their manifests give
    that figure beside the seed-0 headline, and `edge-ser info` prints it."""
    for name, n in (("ser_emodb", 6), ("ser_ravdess", 6)):
        si = json.loads((ROOT / "bundles" / name / "manifest.json").read_text())["accuracy"][
            "speaker_independent"
        ]
        seeds = si["over_seeds"]
        assert seeds["seeds"] == list(range(n)) and "--stage0-from" not in seeds["made_by"]
        assert seeds["per_seed_uar"]["0"] == pytest.approx(
            si["transductive"]["uar"], abs=1e-6
        )  # seed 0 = headline
        assert (ROOT / seeds["source"]).is_file()
        table = json.loads((ROOT / seeds["source"]).with_suffix(".json").read_text())
        assert seeds["transductive"]["uar"] == pytest.approx(
            table["table"]["refit"]["transductive"]["pooled"]["uar"]
        )


def test_info_prints_the_seeds_beside_the_headline(capsys: pytest.CaptureFixture[str]):
    from edge_ser.cli import main

    si = json.loads((ROOT / "bundles" / "ser_ravdess" / "manifest.json").read_text())["accuracy"][
        "speaker_independent"
    ]["over_seeds"]
    assert main(["info", str(ROOT / "bundles" / "ser_ravdess")]) == 0
    line = next(
        ln for ln in capsys.readouterr().out.splitlines() if "training seeds" in ln and "pooled" in ln
    )
    assert f"UAR {100 * si['transductive']['uar']:.1f} +- {100 * si['transductive']['uar_std']:.1f} %" in line
    assert " / ".join(f"{100 * v:.1f}" for v in si["per_seed_uar"].values()) in line


def test_refresh_rewrites_only_the_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):  # noqa: ANN001
    def stale(m: dict) -> None:
        del m["accuracy"]["speaker_independent"]["over_seeds"]
        m["accuracy"]["speaker_independent"]["transductive"]["uar"] = 0.5

    b = _copy("ser_ravdess", tmp_path / "b", stale)
    before = {f.name: f.read_bytes() for f in b.iterdir() if not f.name.startswith("manifest")}
    old = json.loads((b / "manifest.json").read_text())

    monkeypatch.setattr(sys, "argv", ["refresh_figures.py", str(b), "--check"])
    with pytest.raises(SystemExit) as e:
        refresh_figures.main()
    assert e.value.code == 1 and "behind its tables" in capsys.readouterr().out

    monkeypatch.setattr(sys, "argv", ["refresh_figures.py", str(b)])
    refresh_figures.main()
    figures = ship.nested_figures("ravdess_device_early_member_reverb_auto")
    # the pooled figure over the seeds the tables hold (six since 2026-12-07: 61.4 %)
    assert f"{100 * figures['over_seeds']['transductive']['uar']:.1f} %" in capsys.readouterr().out
    new = json.loads((b / "manifest.json").read_text())
    assert new["accuracy"]["speaker_independent"] == figures
    rest_new, rest_old = copy.deepcopy(new), copy.deepcopy(old)
    for m in (rest_new, rest_old):
        del m["accuracy"]["speaker_independent"]
    assert rest_new == rest_old  # nothing else of the manifest
    assert {f.name: f.read_bytes() for f in b.iterdir() if not f.name.startswith("manifest")} == before
    load_bundle(b)  # its checksum was rewritten with it

    monkeypatch.setattr(sys, "argv", ["refresh_figures.py", str(b), "--check"])
    refresh_figures.main()
    assert "up to date" in capsys.readouterr().out


def test_a_bundle_without_a_nested_figure_is_refused(tmp_path: Path):
    b = _copy("laq_mlp_emodb", tmp_path / "b")
    with pytest.raises(BundleError, match="no speaker-independent figure from ship_ser_nested.py"):
        refresh_figures.refreshed(b)


def test_seed_tables_that_reused_one_stage_0_do_not_count(tmp_path: Path):
    """A `--stage0-from` repeat trains only what follows the choice: it is not the procedure over seeds."""

    def table(seeds: list[int], command: str, uar: float) -> dict:
        cell = {"uar": uar, "uar_std": 0.1, "war": uar, "war_std": 0.1}
        per_seed = {str(s): {"uar": uar, "uar_std": 0.1} for s in seeds}
        return {
            "command": command,
            "name": "mine",
            "seeds": seeds,
            "complete": True,
            "table": {"refit": {"transductive": {"seeds": per_seed, "pooled": cell}}},
        }

    reused = table(
        [0, 1, 2], "python benchmarks/ship_ser_nested.py --data x --stage0-from y --seed 0,1,2", 0.9
    )
    (tmp_path / "ship_ser_nested_mine_seeds0-1-2.json").write_text(json.dumps(reused))
    assert ship.seeds_figures("mine", tmp_path) is None
    whole = table([0, 1], "python benchmarks/ship_ser_nested.py --data x --seed 0,1", 0.6)
    (tmp_path / "ship_ser_nested_mine_seeds0-1.json").write_text(json.dumps(whole))
    got = ship.seeds_figures("mine", tmp_path)
    assert got["seeds"] == [0, 1] and got["transductive"]["uar"] == 0.6
    assert got["source"] == str(tmp_path.resolve() / "ship_ser_nested_mine_seeds0-1.md")


def test_a_path_that_does_not_exist_is_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A review: a missing path was 'not a folder (a tar bundle is refreshed by rebuilding it)'; a tar still is."""
    monkeypatch.setattr(sys, "argv", ["refresh_figures.py", str(tmp_path / "nope")])
    with pytest.raises(BundleError, match=r"nope: does not exist \(give a bundle folder"):
        refresh_figures.main()
    (tmp_path / "b.tar").write_bytes(b"")
    monkeypatch.setattr(sys, "argv", ["refresh_figures.py", str(tmp_path / "b.tar")])
    with pytest.raises(BundleError, match="not a folder \\(a tar bundle is refreshed by rebuilding it\\)"):
        refresh_figures.main()
