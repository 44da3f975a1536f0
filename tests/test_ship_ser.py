"""benchmarks/ship_ser.py's recipe choice: inner folds of speaker pairs, the variant with the best mean of clean
+ noisy validation UAR, and the row bookkeeping the nested evaluation (benchmarks/ship_ser_nested.py) relies on."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import benchmarks.ship_ser as ship
from converters.speaker_norm import transductive


def test_inner_folds_pair_sorted_speakers_and_cover_each_once():
    assert ship.inner_folds(["12", "01", "03", "02"]) == [["01", "02"], ["03", "12"]]
    odd = ship.inner_folds([f"{i:02d}" for i in range(1, 12)])  # a leave-one-out fold of RAVDESS: 11 actors
    assert [len(f) for f in odd] == [2, 2, 2, 2, 3]
    assert sorted(s for f in odd for s in f) == [f"{i:02d}" for i in range(1, 12)]


def _rows(n_speakers: int = 4, clips: int = 6, views: int = 5, dim: int = 3) -> ship.Rows:
    rng = np.random.default_rng(0)
    n = n_speakers * clips
    spk = np.repeat([f"{i:02d}" for i in range(n_speakers)], clips)
    y = np.tile(np.arange(clips) % 3, n_speakers)
    X = rng.normal(size=(views * n, dim)).astype(np.float32)
    spk_all, copy_of = np.tile(spk, views), np.repeat(np.arange(views), n)
    groups = np.char.add(np.char.add(spk_all, "#"), copy_of.astype(str))
    return ship.Rows(X, transductive(X, groups), np.tile(y, views), spk_all, copy_of, groups, ["a", "b", "c"])


def test_choose_variant_takes_the_best_mean_of_clean_and_noisy_and_the_earlier_on_a_tie(monkeypatch):
    rows = _rows()
    seen: list[tuple] = []
    table = {  # (clean, noisy) validation UAR per variant, the same on every fold
        (0, False, False): (0.9, 0.1),  # best clean, poor noisy: mean 0.5
        (2, True, False): (0.6, 0.6),  # mean 0.6
        (2, True, True): (0.7, 0.5),  # mean 0.6 too: a tie, so the earlier one wins
    }

    online = {(0, False, False): 0.5, (2, True, False): 0.2, (2, True, True): 0.6}  # after 20 clips

    trained_at: set[int] = set()

    def fake_stage1(r, variant, val_spk, recipe, log=True, *, seed=0):
        seen.append((variant, tuple(val_spk)))
        trained_at.add(seed)
        clean, noisy = table[variant]
        o = online[variant]
        return {
            "figures": {
                "val_uar": clean,
                "val_uar_noisy": noisy,
                "val_uar_online": o,
                "val_uar_noisy_online": o,
            }
        }

    monkeypatch.setattr(ship, "stage1", fake_stage1)
    choice = ship.choose_variant(rows, list(table), "sensitivity@2.0")
    assert choice["chosen"] == (2, True, False)
    assert choice["folds"] == [["00", "01"], ["02", "03"]]
    assert choice["mean"][(0, False, False)] == pytest.approx(0.5)
    assert {fold for _, fold in seen} == {("00", "01"), ("02", "03")}  # every variant on every inner fold
    assert len(seen) == len(table) * 2
    # scored by what the device sees too (transductive and online-20 averaged): the online-robust one wins
    device = ship.choose_variant(rows, list(table), "sensitivity@2.0", by="device")
    assert device["chosen"] == (2, True, True)
    assert device["mean"][(2, True, True)] == pytest.approx((0.7 + 0.5 + 0.6 + 0.6) / 4)
    assert device["scores"][(2, True, False)][0] == (0.6, 0.6, 0.2, 0.2)
    assert trained_at == {0}  # the seed ship_ser.py ships with; ship_ser_nested.py --seed moves it
    ship.choose_variant(rows, list(table), "sensitivity@2.0", seed=20)
    assert trained_at == {0, 20}


def test_online_uar_with_every_clip_and_no_prior_is_the_transductive_uar():
    from edge_ser.features.speaker_norm import SpeakerNorm

    rows = _rows(clips=6)  # fewer clips per speaker than ONLINE_CLIPS: the device has seen all of them
    held = np.isin(rows.spk, ["00", "01"]) & ~rows.speed_rows
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    train = ~np.isin(rows.spk, ["00", "01"])
    no_prior = SpeakerNorm.from_speakers(rows.X[train], rows.groups[train], prior_weight=0.0)
    logits = ship.predict(model, rows.Z[held])
    want = ship._clean_noisy_uar(rows, held, logits)
    assert ship._online_uar(rows, held, model, no_prior) == pytest.approx(want)
    prior = SpeakerNorm.from_speakers(rows.X[train], rows.groups[train], prior_weight=300.0)
    heavy = ship._online_uar(rows, held, model, prior)  # a heavy prior: the training statistics dominate
    assert heavy != pytest.approx(want)


def test_rows_variants_subsets_and_dropped_classes():
    rows = _rows()
    speed = rows.copy_of > ship.NOISY_COPIES
    np.testing.assert_array_equal(rows.speed_rows, speed)
    np.testing.assert_array_equal(rows.trained_on((0, False, False)), rows.copy_of == 0)
    np.testing.assert_array_equal(rows.trained_on((2, True, False)), np.ones(len(rows.y), bool))
    np.testing.assert_array_equal(rows.trained_on((2, False, True)), ~speed)
    sub = rows.subset(rows.spk != "02")
    assert sub.speakers() == ["00", "01", "03"]
    np.testing.assert_array_equal(sub.Z, rows.Z[rows.spk != "02"])  # per (speaker, copy): unchanged
    dropped = rows.without_class("b")
    assert dropped.classes == ["a", "c"] and set(dropped.y.tolist()) == {0, 1}
    keep = rows.y != 1
    np.testing.assert_allclose(dropped.Z, transductive(rows.X[keep], rows.groups[keep]))


class _Fixed(torch.nn.Module):
    """A 'model' whose logits are a fixed table row per input row (its first feature indexes the table)."""

    def __init__(self, table: np.ndarray) -> None:
        super().__init__()
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0].long()]


def _seeded_stage1(logits_by_seed: dict[int, np.ndarray], seen: list):
    def fake_stage1(r, variant, val_spk, recipe, log=True, *, seed=0):
        seen.append((tuple(val_spk), seed))
        return {"c": SimpleNamespace(model=_Fixed(logits_by_seed[seed]), plan=None, codes=None)}

    return fake_stage1


def _indexed_rows() -> ship.Rows:
    """_rows() whose Z's first column is the row index (so _Fixed can look each row up)."""
    rows = _rows()
    Z = rows.Z.copy()
    Z[:, 0] = np.arange(len(Z))
    return ship.Rows(rows.X, Z, rows.y, rows.spk, rows.copy_of, rows.groups, rows.classes)


def test_choose_members_adopts_an_ensemble_only_when_it_beats_seed_0_and_the_mean_member(monkeypatch):
    rows = _indexed_rows()
    n, k = len(rows.y), len(rows.classes)
    right = np.eye(k)[rows.y] * 2.0  # confident and right
    wrong = np.eye(k)[(rows.y + 1) % k] * 1.0  # less confident and wrong
    # each seed is wrong on a different third of the rows; averaged, the right answer wins everywhere
    thirds = np.arange(n) % 3
    seeds = {s: np.where((thirds == s)[:, None], wrong, right) for s in range(ship.MEMBERS)}
    seen: list = []
    monkeypatch.setattr(ship, "stage1", _seeded_stage1(seeds, seen))
    monkeypatch.setattr(  # the ensemble of fixed tables: their mean (FunctionalsEnsemble is tested below)
        ship,
        "ensemble_of",
        lambda fitted: (_Fixed(np.mean([m.table.numpy() for m, _, _ in fitted], 0)), None, None),
    )
    choice = ship.choose_members(rows, (0, False, False), "sensitivity@2.0")
    assert choice["members"] == ship.MEMBERS
    assert choice["ensemble"] == pytest.approx(1.0) and choice["seed0"] < 1.0
    assert sorted(seen) == sorted((tuple(f), s) for f in ship.inner_folds(rows.speakers()) for s in range(3))

    same = {s: right for s in range(ship.MEMBERS)}  # identical members: an ensemble gains nothing
    monkeypatch.setattr(ship, "stage1", _seeded_stage1(same, []))
    assert ship.choose_members(rows, (0, False, False), "sensitivity@2.0")["members"] == 1


def test_functionals_ensemble_runs_its_members_side_by_side_and_averages_them_exactly():
    from converters.models.functionals_mlp import FunctionalsEnsemble, functionals_mlp
    from converters.quant.bitplan import BitPlan
    from converters.quant.qat import freeze
    from edge_ser.errors import ConfigError

    members = []
    for seed, bits in ((0, 1), (1, 3), (2, 2)):
        torch.manual_seed(seed)
        m = functionals_mlp(num_classes=4, in_features=6)
        m.set_normalization(torch.arange(6.0), torch.full((6,), 2.0))
        plan = BitPlan({**BitPlan.uniform(m, bits).bits, "classifier": 2}, BitPlan.uniform(m, bits).params)
        frozen, codes = freeze(m.eval(), plan)
        members.append((frozen, plan, codes))
    ens, plan, codes = FunctionalsEnsemble.from_members(members)
    x = torch.randn(7, 6)
    want = sum(m(x) for m, _, _ in members) / 3
    torch.testing.assert_close(ens(x), want, rtol=1e-5, atol=1e-6)
    # every member keeps its own layers at its own widths: the ensemble's average bits are its members'
    assert plan.bits == {
        f"branches.{i}.{n}": (2 if n == "classifier" else b)
        for i, b in enumerate((1, 3, 2))
        for n in ("features.0", "features.3", "classifier")
    }
    singles = sum(p.average_bits * sum(p.params.values()) for _, p, _ in members)
    assert plan.average_bits == pytest.approx(singles / sum(sum(p.params.values()) for _, p, _ in members))
    assert plan.info["members"] == 3 and ens.members == 3
    for i, (_, _, own) in enumerate(members):
        np.testing.assert_array_equal(codes[f"branches.{i}.features.3"][0], own["features.3"][0])
        np.testing.assert_array_equal(codes[f"branches.{i}.features.0"][1], own["features.0"][1])
        np.testing.assert_array_equal(codes[f"branches.{i}.classifier"][0], own["classifier"][0])
        np.testing.assert_allclose(codes[f"branches.{i}.classifier"][1], own["classifier"][1] / 3, rtol=1e-7)
    for name, (q, scale) in codes.items():  # the model's weights are exactly its codes x scales
        w = ens.get_submodule(name).weight.detach().numpy()
        np.testing.assert_array_equal(w, q.astype(np.float32) * scale[:, None])
    other = functionals_mlp(num_classes=4, in_features=6)  # another standardisation: not the same rows
    with pytest.raises(ConfigError, match="member 1"):
        FunctionalsEnsemble.from_members([members[0], (other, members[0][1], members[0][2])])
    with pytest.raises(ConfigError, match="at least 2"):
        FunctionalsEnsemble.from_members(members[:1])


def test_an_ensemble_over_the_bit_budget_ships_seed_0_alone(monkeypatch):
    runs = [{"c": SimpleNamespace(model=None, plan=None, codes=None), "seed": k} for k in range(3)]
    for bits, kept, over in ((1.8, 3, None), (ship.BIT_BUDGET, 3, None), (2.3, 1, 2.3)):
        monkeypatch.setattr(
            ship, "ensemble_of", lambda fitted, b=bits: (None, SimpleNamespace(average_bits=b), None)
        )
        got, over_bits = ship.within_budget(runs)
        assert [r["seed"] for r in got] == list(range(kept)) and over_bits == over
    assert ship.within_budget(runs[:1]) == (runs[:1], None)  # one MLP: nothing to check


def test_early_views_add_the_clean_training_clips_as_the_device_standardises_them_after_k_clips():
    rows = _rows(clips=12)
    fit = ~np.isin(rows.spk, ["03"])
    Z, y = rows.training(fit)  # no early views: the rows as they are
    np.testing.assert_array_equal(Z, rows.Z[fit])
    np.testing.assert_array_equal(y, rows.y[fit])

    early = replace(rows, early_views=(1, 8))
    Z, y = early.training(fit)
    clean = fit & (rows.copy_of == 0)
    n_fit, n_clean = int(fit.sum()), int(clean.sum())
    assert Z.shape == (n_fit + 2 * n_clean, rows.Z.shape[1])
    np.testing.assert_array_equal(Z[:n_fit], rows.Z[fit])
    np.testing.assert_array_equal(y[n_fit:], np.tile(rows.y[clean], 2))  # only clean clips, labels kept
    # after 1 clip the prior dominates; after 8 of 12 the statistics are near the speaker's own
    after_1, after_8 = Z[n_fit : n_fit + n_clean], Z[n_fit + n_clean :]
    own = rows.Z[clean]
    assert np.abs(after_8 - own).mean() < np.abs(after_1 - own).mean()
    assert np.abs(after_8 - own).mean() > 1e-3  # the prior still counts (weight PRIOR_WEIGHT)
    # subsets and dropped classes keep the setting (the nested run and the RAVDESS 'calm' drop rely on it)
    assert early.subset(fit).early_views == (1, 8)
    assert early.without_class("b").early_views == (1, 8)


def test_nested_figures_come_from_a_complete_nested_run_only(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(ship, "RESULTS", tmp_path)
    assert ship.nested_name("ravdess", "device", True) == "ravdess_device_early"
    assert ship.nested_name("emodb", "transductive", False) == "emodb"
    assert ship.nested_figures("emodb") is None  # no run
    cell = {"uar": 0.61, "uar_std": 0.1, "war": 0.62, "war_std": 0.09, "confusion": [[1]]}
    run = {
        "command": "python benchmarks/ship_ser_nested.py --data emodb",
        "protocol": "leave one speaker out",
        "n_folds": 10,
        "complete": False,
        "table": {"refit": {"transductive": cell, "online-20": {**cell, "uar": 0.58}}},
    }
    (tmp_path / "ship_ser_nested_emodb.json").write_text(json.dumps(run))
    assert ship.nested_figures("emodb") is None  # a run still going says nothing yet
    (tmp_path / "ship_ser_nested_emodb.json").write_text(json.dumps({**run, "complete": True}))
    got = ship.nested_figures("emodb")
    assert got["n_folds"] == 10 and got["protocol"].startswith("leave one speaker out")
    assert got["transductive"] == {"uar": 0.61, "uar_std": 0.1, "war": 0.62, "war_std": 0.09}  # no confusion
    assert got["online-20"]["uar"] == 0.58
    assert got["made_by"] == run["command"] and got["source"].endswith("ship_ser_nested_emodb.md")


@pytest.mark.parametrize("name", ["ser_emodb", "ser_ravdess"])
def test_shipped_ser_bundles_carry_their_nested_figure_and_info_prints_it(name, capsys):
    import json
    from pathlib import Path

    from edge_ser.cli import main

    bundle = Path(ship.__file__).resolve().parents[1] / "bundles" / name
    m = json.loads((bundle / "manifest.json").read_text())
    made_by = m["recipe"]["made_by"]
    choose_by = made_by.split("--choose-by ")[1].split()[0] if "--choose-by" in made_by else "transductive"
    reverb = made_by.split("--reverb ")[1].split()[0] if "--reverb" in made_by else "off"
    early = "member" if m["recipe"].get("early_member") else bool(m["recipe"]["early_views"])
    lengths = bool(m["recipe"].get("length_views"))
    assert lengths == ("--length-views on" in made_by)
    nested = ship.nested_name(m["accuracy"]["dataset"], choose_by, early, reverb, lengths)
    assert m["accuracy"]["speaker_independent"] == ship.nested_figures(
        nested
    )  # the table it was shipped with
    assert main(["info", str(bundle)]) == 0
    out = capsys.readouterr().out
    si = m["accuracy"]["speaker_independent"]
    uar = 100 * si["transductive"]["uar"]
    assert "on speakers it never heard" in out and f"UAR {uar:.1f}" in out
    assert "seed ?" not in out
    # info and the results table print the same figures (the manifest kept 4 digits, so ser_emodb's online-20,
    # 78.7496 %, was stored as 0.7875 and printed as 78.8 beside the table's 78.7)
    row = next(ln for ln in (bundle.parents[1] / si["source"]).read_text().splitlines() if "(refit)" in ln)
    for k in ("transductive", "online-1", "online-5", "online-20"):
        assert f"{100 * si[k]['uar']:.1f} +- {100 * si[k]['uar_std']:.1f}" in row
        assert f"{100 * si[k]['uar']:.1f}" in out


def test_reverberant_copies_train_only_when_chosen_and_never_validate_or_join_the_prior():
    """Rows after the speed copies are the reverberant ones: trained on with `reverb`, like the speed copies
    never scored as validation rows nor counted as voices of the prior; subsets and dropped classes keep it."""
    views = 1 + ship.NOISY_COPIES + len(ship.SPEED_FACTORS) + ship.REVERB_COPIES
    rows = _rows(views=views)
    rev = rows.copy_of > ship.NOISY_COPIES + len(ship.SPEED_FACTORS)
    np.testing.assert_array_equal(rows.reverb_rows, rev)
    assert not np.any(rows.trained_on((2, True, False)) & rev)  # the default: not trained on
    on = replace(rows, reverb=True)
    np.testing.assert_array_equal(on.trained_on((2, True, False)), np.ones(len(rows.y), bool))
    np.testing.assert_array_equal(on.trained_on((0, False, False)), (rows.copy_of == 0) | rev)
    assert np.all(on.speed_rows[rev])  # training-only views: excluded from validation and from the prior
    fit = on.trained_on((2, True, False))
    voices = fit & ~on.speed_rows
    assert set(rows.groups[voices]) == {g for g in rows.groups if int(g.split("#")[1]) <= ship.NOISY_COPIES}
    assert on.subset(rows.spk != "00").reverb and on.without_class("b").reverb


def test_choose_reverb_keeps_the_copies_only_when_the_inner_folds_score_them_higher(monkeypatch):
    rows = _rows(views=1 + ship.NOISY_COPIES + len(ship.SPEED_FACTORS) + ship.REVERB_COPIES)
    seen: list = []

    def fake_stage1(r, variant, val_spk, recipe, log=True, *, seed=0):
        seen.append((r.reverb, tuple(val_spk)))
        v = 0.7 if r.reverb else 0.6
        return {"figures": dict.fromkeys(ship.CHOOSE_BY["device"], v)}

    monkeypatch.setattr(ship, "stage1", fake_stage1)
    got = ship.choose_reverb(rows, (2, True, True), "sensitivity@2.0", by="device")
    assert got["reverb"] and got["on"] == pytest.approx(0.7) and got["off"] == pytest.approx(0.6)
    assert sorted(seen) == sorted(
        (on, tuple(f)) for f in ship.inner_folds(rows.speakers()) for on in (False, True)
    )
    seen.clear()  # stage 0's score of the variant given: only the copies are trained; a tie keeps them out
    tie = ship.choose_reverb(rows, (2, True, True), "sensitivity@2.0", by="device", off=0.7)
    assert (
        not tie["reverb"]
        and all(on for on, _ in seen)
        and len(seen) == len(ship.inner_folds(rows.speakers()))
    )
    assert ship.nested_name("ravdess", "device", False, "auto") == "ravdess_device_reverb_auto"


def test_reverb_member_trains_a_second_member_with_the_copies_and_refits_each_on_its_own_rows(monkeypatch):
    """`--reverb member`: member 0 is the variant without the reverberant copies (stage 1 as shipped), member 1 the
    same variant with them at seed 1; the refit gives each member its own rows (the copies of the speakers the
    refit trains on for member 1 only) and leaves the one-member refit exactly as before."""
    rows = _rows(views=1 + ship.NOISY_COPIES + len(ship.SPEED_FACTORS) + ship.REVERB_COPIES)
    seen: list = []

    def fake_stage1(r, variant, val_spk, recipe, log=True, *, seed=0, norm=None):
        seen.append((r.reverb, seed, tuple(val_spk), norm))
        return {"c": SimpleNamespace(plan="plan", model=None, codes=None), "epochs": {}, "reverb": r.reverb}

    monkeypatch.setattr(ship, "stage1", fake_stage1)
    args = SimpleNamespace(
        reverb="member", members="auto", choose="pairs", recipe="sensitivity@2.0", data="x"
    )
    best = {"reverb": False, "c": SimpleNamespace(plan="plan"), "epochs": {}, "norm": "norm0"}
    members, choice = ship.members_of(args, rows, (2, True, False), ["03"], best)
    assert (
        choice is None
        and members[0] is best
        and members[1]["reverb"]
        and seen == [(True, 1, ("03",), "norm0")]
    )
    with pytest.raises(ValueError, match="reverberant copies"):
        ship.reverberant_member(_rows(), (2, True, False), ["03"], "sensitivity@2.0", best)

    trained: list = []
    monkeypatch.setattr(
        ship, "refit", lambda dim, n, Z, y, plan, epochs, **kw: trained.append((Z, kw["norm"])) or (None, {})
    )
    held = rows.subset(rows.spk != "03")
    fit = held.trained_on((2, True, False))
    ship.refit_members(held, fit, members, balanced=False)
    rev = held.reverb_rows
    np.testing.assert_array_equal(trained[0][0], held.Z[fit])
    np.testing.assert_array_equal(trained[1][0], held.Z[fit | rev])
    for k in range(2):  # both members standardise as member 0 (the ensemble standardises once)
        np.testing.assert_array_equal(trained[k][1][0], held.Z[fit].mean(0))
    trained.clear()  # a one-member refit: the rows `fit`, as before
    ship.refit_members(held, fit, [{"c": SimpleNamespace(plan="plan"), "epochs": {}}], balanced=False)
    np.testing.assert_array_equal(trained[0][0], held.Z[fit])
    assert ship.nested_name("emodb", "device", False, "member") == "emodb_device_reverb_member"


def test_early_member_trains_the_same_variant_with_early_views_and_refits_with_them(monkeypatch):
    """`--early-views member`: member 0 is the variant as shipped (no early views), member 1 the same variant with
    the early views at seed 1, its input standardised as member 0's; the refit gives member 1 the early views of
    the rows it refits on and member 0 none."""
    from types import SimpleNamespace

    rows = _rows(clips=12)
    seen: list = []

    def fake_stage1(r, variant, val_spk, recipe, log=True, *, seed=0, norm=None):
        seen.append((r.early_views, seed, tuple(val_spk), norm))
        return {"c": SimpleNamespace(plan="plan"), "epochs": {}, "early_views": r.early_views}

    monkeypatch.setattr(ship, "stage1", fake_stage1)
    args = SimpleNamespace(
        reverb="off", early_views="member", members="auto", choose="pairs", recipe="sensitivity@2.0", data="x"
    )
    best = {"early_views": (), "c": SimpleNamespace(plan="plan"), "epochs": {}, "norm": "norm0"}
    members, choice = ship.members_of(args, rows, (2, True, False), ["03"], best)
    assert choice is None and members[0] is best and seen == [(ship.EARLY_VIEWS, 1, ("03",), "norm0")]

    trained: list = []
    monkeypatch.setattr(
        ship, "refit", lambda dim, n, Z, y, plan, epochs, **kw: trained.append((Z, kw["seed"])) or (None, {})
    )
    held = rows.subset(rows.spk != "03")
    fit = held.trained_on((2, True, False))
    ship.refit_members(held, fit, members, balanced=False)
    np.testing.assert_array_equal(trained[0][0], held.Z[fit])  # member 0: the rows as they are
    with_views, _ = replace(held, early_views=ship.EARLY_VIEWS).training(fit)
    np.testing.assert_array_equal(trained[1][0], with_views)  # member 1: with the early views of those rows
    assert [seed for _, seed in trained] == [0, 1] and len(with_views) > fit.sum()
    assert ship.nested_name("emodb", "device", "member") == "emodb_device_early_member"
    assert ship.nested_name("emodb", "device", "on") == ship.nested_name("emodb", "device", True)
    assert ship.ensemble_label(2, False, True) == " x 2 members (plain + early views)"


def test_info_and_banners_lead_with_the_unseen_speaker_figure(capsys):
    """A bundle's banner (`describe`, the first line of info, run and predict) gives the nested unseen-speaker
    UAR where the manifest has one; a figure on a random split says its speakers were trained on; a recorded
    test UAR is printed beside the accuracy (av_fusion's UAR was left out)."""
    from pathlib import Path

    from edge_ser.bundle import load_bundle
    from edge_ser.cli import main

    bundles = Path(ship.__file__).resolve().parents[1] / "bundles"

    def accuracy(name: str) -> dict:
        return json.loads((bundles / name / "manifest.json").read_text())["accuracy"]

    si = accuracy("ser_emodb")["speaker_independent"]
    seeds = si["over_seeds"]  # the same procedure at several training seeds, beside the one-seed headline
    assert (
        f"UAR {si['transductive']['uar']:.3f} on unseen speakers of emodb ({si['n_folds']} folds nested; "
        f"{seeds['transductive']['uar']:.3f} over training seeds {', '.join(map(str, seeds['seeds']))})"
        in load_bundle(bundles / "ser_emodb").describe()
    )
    laq = load_bundle(bundles / "laq_mlp_emodb").describe()
    test = accuracy("laq_mlp_emodb")["test"]
    assert laq.endswith(f"test accuracy {test:.3f} on emodb (a random split: speakers it trained on)")
    assert main(["info", str(bundles / "laq_mlp_emodb")]) == 0
    assert (
        "split: random (speakers shared with training: not a speaker-independent figure)"
        in capsys.readouterr().out
    )
    assert main(["info", str(bundles / "av_fusion")]) == 0
    acc = accuracy("av_fusion")
    want = f"accuracy: test UAR {acc['test_uar']:.3f}, accuracy {acc['test']:.3f} on paired RAVDESS"
    assert want in capsys.readouterr().out and acc["test_uar"] != acc["test"]  # so the UAR is the one printed


# --data FOLDER: the recipe on the user's own recordings (docs/data.md, "The recommended recipe on your own data")

RESULTS = Path(ship.__file__).resolve().parent / "results"


def _results_state() -> dict[str, int]:
    """Every file of benchmarks/results/ with its modification time: a folder's run must leave it as it was."""
    return {str(p.relative_to(RESULTS)): p.stat().st_mtime_ns for p in RESULTS.rglob("*") if p.is_file()}


def _folder(root: Path, speakers: int, per_class: int = 2) -> Path:
    """Generated recordings as a user's folder: <label>/<speaker>_<i>.wav, `per_class` 1-s clips of each of 3
    classes per speaker."""
    from converters.data.synthetic import SyntheticSpec, generate
    from edge_ser.audio import write_wav

    labels = ("angry", "neutral", "sad")
    spec = SyntheticSpec(n_per_class=per_class * speakers, n_speakers=speakers, labels=labels, duration=1.0)
    for i, (y, label, speaker) in enumerate(generate(spec)):
        (root / label).mkdir(parents=True, exist_ok=True)
        write_wav(root / label / f"{speaker}_{i:03d}.wav", y, spec.sr)
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[int, Path]:
    """Folders named 'mydata' of 3, 4 and 5 speakers."""
    return {n: _folder(tmp_path_factory.mktemp(f"spk{n}") / "mydata", n) for n in (3, 4, 5)}


def _nested():
    import benchmarks.ship_ser_nested as nested

    return nested


def _main(monkeypatch, module, *argv) -> None:
    """`module.main()` run as its script with `argv` (torch's thread count restored after)."""
    import sys

    name = "ship_ser_nested" if module.__name__.endswith("nested") else "ship_ser"
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{name}.py", *map(str, argv)])
    threads = torch.get_num_threads()
    try:
        module.main()
    finally:
        torch.set_num_threads(threads)


def _usage_error(monkeypatch, capsys, module, *argv) -> str:
    """The one error line of a usage error (exit status 2) of `module`'s main with `argv`."""
    with pytest.raises(SystemExit) as exit_:
        _main(monkeypatch, module, *argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"{module.__name__.split('.')[-1]}.py: error: "), last
    return last


def test_data_is_a_corpus_name_or_an_existing_folder(folders, tmp_path, monkeypatch, capsys):
    assert ship.resolve_data("emodb") == ship.Data("emodb", "emodb", True)
    assert ship.resolve_data("emodb").val_speakers == 1 and ship.resolve_data("ravdess").val_speakers == 2
    folder = ship.resolve_data(str(folders[4]) + "/")
    assert (folder.name, folder.corpus, folder.val_speakers) == ("mydata", False, 1)
    monkeypatch.chdir(folders[4])  # "." is the folder too: its name is the folder's
    assert ship.resolve_data(".").name == "mydata"
    (tmp_path / "a_file.wav").write_bytes(b"")
    for module in (ship, _nested()):
        out = ("--out", tmp_path / "b") if module is ship else ()
        for bad in ("emodbb", tmp_path / "absent", tmp_path / "a_file.wav"):
            line = _usage_error(monkeypatch, capsys, module, "--data", bad, "--tables", tmp_path, *out)
            assert "neither a corpus (emodb, ravdess) nor an existing folder" in line


def test_val_speakers_and_too_few_speakers_are_refused_before_any_features(
    folders, tmp_path, monkeypatch, capsys
):
    """--val-speakers must leave 2 training speakers; the inner folds of speaker pairs need 4 speakers (the nested
    run 5: its outer fold holds one out); a folder's tables need a folder outside benchmarks/results/. All are
    one-line usage errors given before a feature is made."""
    assert ship.speaker_problem("d", 4, 2, inner=True) is None
    assert "leaves 1 to train on" in ship.speaker_problem("d", 4, 3, inner=True)
    assert "d has 3 speaker(s)" in ship.speaker_problem("d", 3, 1, inner=True)
    assert (
        ship.speaker_problem("d", 3, 1, inner=False) is None
    )  # no inner folds asked for: 2 train, 1 validates
    assert ship.speaker_problem("d", 5, 1, inner=True, outer=1) is None
    assert "at least 5" in ship.speaker_problem("d", 4, 1, inner=True, outer=1)
    nested = _nested()

    def no_features(*a, **k):
        raise AssertionError("features were made before the arguments were checked")

    monkeypatch.setattr(ship, "training_matrix", no_features)
    monkeypatch.setattr(nested, "training_matrix", no_features)
    out = tmp_path / "b"
    line = _usage_error(monkeypatch, capsys, ship, "--data", folders[3], "--out", out)
    assert "mydata has 3 speaker(s); the inner folds of speaker pairs need at least 4" in line
    line = _usage_error(monkeypatch, capsys, ship, "--data", folders[4], "--out", out, "--val-speakers", "3")
    assert "--val-speakers 3: mydata has 4 speaker(s), which leaves 1 to train on" in line
    assert "at least 2 (at most 2 validation speakers)" in line
    line = _usage_error(monkeypatch, capsys, ship, "--data", folders[4], "--out", out, "--val-speakers", "0")
    assert "--val-speakers 0: at least 1" in line
    line = _usage_error(
        monkeypatch, capsys, ship, "--data", folders[4], "--out", out, "--tables", RESULTS / "mine"
    )
    assert "benchmarks/results/ holds the corpora's records" in line
    # an --out in benchmarks/results/ without --tables named a --tables the user never gave (a review)
    line = _usage_error(monkeypatch, capsys, ship, "--data", folders[4], "--out", RESULTS / "mine")
    assert (
        "the tables' default folder" in line and "no --tables given" in line and "error: --tables" not in line
    )
    line = _usage_error(monkeypatch, capsys, nested, "--data", folders[4], "--tables", tmp_path / "t")
    assert "mydata has 4 speaker(s), 3 after the 1 an outer fold holds out" in line and "at least 5" in line
    line = _usage_error(monkeypatch, capsys, nested, "--data", folders[5])
    assert "a folder's tables need --tables DIR" in line
    assert not out.exists() and not (tmp_path / "t").exists()


def test_name_is_a_folder_s_printable_name(folders, tmp_path, monkeypatch, capsys):
    """--name (the manifest's name for a folder; a folder called data was 'data') is refused, before any
    feature, for a corpus and when blank."""
    out = ("--out", tmp_path / "b")
    line = _usage_error(monkeypatch, capsys, ship, "--data", "emodb", *out, "--name", "mine")
    assert "--name is for a folder of your own recordings: the corpus emodb keeps its name" in line
    for bad in (" ", "a\nb"):
        line = _usage_error(monkeypatch, capsys, ship, "--data", folders[3], *out, "--name", bad)
        assert "give the data set's name as printable text, not blank" in line


def test_early_views_alone_means_on_in_both_scripts(folders, tmp_path, monkeypatch, capsys):
    """`--early-views` with no value is `on` in ship_ser.py as in ship_ser_nested.py (docs/protocol.md gives the
    flag alone; ship_ser.py refused it: "expected one argument"). Checked through the speaker check that follows
    parsing, so no feature is made."""
    out = ("--out", tmp_path / "b")
    for module, extra in ((ship, out), (_nested(), ("--tables", tmp_path / "t"))):
        line = _usage_error(monkeypatch, capsys, module, "--data", folders[3], *extra, "--early-views")
        assert "expected one argument" not in line and "mydata has 3 speaker(s)" in line
        line = _usage_error(
            monkeypatch, capsys, module, "--data", folders[3], *extra, "--early-views", "sometimes"
        )
        assert "invalid choice: 'sometimes'" in line


def test_a_folder_ships_with_its_tables_and_nested_figure_outside_the_repository(
    folders, tmp_path, monkeypatch, capsys
):
    """ship_ser.py --data FOLDER end to end on 5 generated speakers (cheap: one training variant, 90 clips): its
    tables go to <out>.tables, or --tables; ship_ser_nested.py --data FOLDER --tables T writes the nested table
    and its runs there, and ship_ser.py --tables T puts that figure in the bundle, as for the corpora. Nothing is
    written under benchmarks/results/."""
    import json

    from edge_ser.cli import main as cli

    before = _results_state()
    monkeypatch.setenv("EDGE_SER_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(folders[5].parent)
    cheap = ("--noise-copies", "0", "--speed", "off", "--balanced", "off")
    _main(monkeypatch, ship, "--data", "mydata", "--out", tmp_path / "b", *cheap)
    assert sorted(p.name for p in (tmp_path / "b.tables").iterdir()) == [
        "ship_ser_members_mydata.json",
        "ship_ser_members_mydata.md",
    ]
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert m["accuracy"]["dataset"] == "mydata" and "speaker_independent" not in m["accuracy"]
    # sizes are clips; rows count the copies (validation: each clip clean and with 2 noisy copies), apart
    clips = len(list(folders[5].rglob("*.wav")))
    sizes, counted = m["accuracy"]["split"]["sizes"], m["accuracy"]["split"]["rows"]
    assert sizes["train"] == clips == sizes["stage1_train"] + sizes["val"] and 0 < sizes["val"] < clips
    assert counted["val"] == (1 + ship.NOISY_COPIES) * sizes["val"] and counted["train"] == clips  # no copies
    probes = m["accuracy"]["split"]["clip_probes"]  # eval knows these files under another name (test_heldout)
    assert len(probes) == 5 and all(len(p) == 2 for p in probes.values())
    assert (
        "accuracy.speaker_independent" not in m["accuracy"]["split"]["kind"]
    )  # no pointer to a missing field
    assert "the training variant (noisy and speed copies, loss) as given" in m["accuracy"]["split"]["kind"]
    assert m["recipe"][
        "made_by"
    ] == f"python benchmarks/ship_ser.py --data mydata --out {tmp_path / 'b'} " + " ".join(cheap)
    assert (
        str(tmp_path / "b.tables" / "ship_ser_members_mydata.md") in m["accuracy"]["split"]["members_choice"]
    )

    nested = _nested()
    for script in (nested, ship):  # the one variant ship_ser is given: both nest and ship that procedure
        monkeypatch.setattr(script, "VARIANTS", [(0, False, False)])
    tables = tmp_path / "t"
    _main(monkeypatch, nested, "--data", "mydata", "--tables", tables)
    run = json.loads((tables / "ship_ser_nested_mydata.json").read_text())
    assert run["complete"] and run["n_folds"] == 5 and run["protocol"] == "leave one speaker out"
    assert len((tables / "ship_ser_nested_runs" / "mydata.jsonl").read_text().splitlines()) == 5
    assert (
        (tables / "ship_ser_nested_mydata.md").read_text().startswith("# The ser_mydata shipping procedure")
    )

    named = ("--name", "lab recordings")  # the manifest's name for the folder; the tables keep the folder's
    _main(monkeypatch, ship, "--data", "mydata", "--out", tmp_path / "b2", "--tables", tables, *named, *cheap)
    m = json.loads((tmp_path / "b2" / "manifest.json").read_text())
    assert (
        m["accuracy"]["dataset"] == "lab recordings" and "--name 'lab recordings'" in m["recipe"]["made_by"]
    )
    assert m["accuracy"]["data_name"] == "mydata"  # edge-ser eval still knows the folder as the bundle's own
    si = m["accuracy"]["speaker_independent"]
    assert si == ship.nested_figures("mydata", tables) and si["n_folds"] == 5
    assert si["source"] == str(tables / "ship_ser_nested_mydata.md")
    assert (
        f"--tables {tables}" in m["recipe"]["made_by"] and (tables / "ship_ser_members_mydata.md").is_file()
    )
    assert not (tmp_path / "b2.tables").exists()
    assert cli(["info", str(tmp_path / "b2")]) == 0
    assert " on lab recordings (" in capsys.readouterr().out
    assert cli(["predict", str(tmp_path / "b2"), str(next((folders[5] / "sad").glob("*.wav")))]) == 0
    assert _results_state() == before


def test_nested_tables_give_the_sample_std_over_folds():
    """The nested tables gave the population std (ddof 0) where docs/protocol.md and every other table give the
    sample std: ser_emodb's headline 82.1 +- 5.2 is +- 5.5 as the docs define it."""
    import json
    import statistics
    from pathlib import Path
    from unittest import mock

    with mock.patch.dict("os.environ"):  # the script pins BLAS threads in the environment at import
        import benchmarks.ship_ser_nested as nested
    runs = Path(ship.__file__).resolve().parent / "results" / "ship_ser_nested_runs" / "emodb_device.jsonl"
    folds = [json.loads(line) for line in runs.read_text().splitlines()]
    payload, md = nested.summary("emodb", folds, [str(i) for i in range(7)], len(folds), "device")
    uars = [f["refit"]["transductive"]["uar"] for f in folds]
    cell = payload["table"]["refit"]["transductive"]
    assert cell["uar_std"] == pytest.approx(statistics.stdev(uars)) and cell["uar"] == pytest.approx(
        statistics.fmean(uars)
    )
    assert f"{100 * cell['uar']:.1f} +- {100 * cell['uar_std']:.1f}" in md


def test_the_nested_table_says_when_a_held_out_speaker_has_fewer_clips_than_an_online_figure_names():
    """A folder of 16 clips a speaker: the table and `edge-ser info` said "online-20" / "after 20 of their
    clips" of a figure made after all 16 (`online` takes what there is), without a word (a review)."""
    import json
    from pathlib import Path

    nested = _nested()
    runs = Path(ship.__file__).resolve().parent / "results" / "ship_ser_nested_runs" / "emodb_device.jsonl"
    folds = [json.loads(line) for line in runs.read_text().splitlines()]
    _, md = nested.summary("emodb", folds, [str(i) for i in range(7)], len(folds), "device")
    assert "fewer than N clips" not in md  # EMODB's fewest is 35
    folds[0]["n"], folds[1]["n"] = 16, 4
    _, md = nested.summary("emodb", folds, [str(i) for i in range(7)], len(folds), "device")
    a, b = folds[0]["test"], folds[1]["test"]
    assert (
        "online-N of a held-out speaker with fewer than N clips is after all of their clips, not N: "
        f"online-5: {b} (4 clips); online-20: {a} (16 clips), {b} (4 clips)."
    ) in md
    assert nested.short_speakers({"x": 20, "y": 35}, nested.ONLINE) is None


def test_length_views_sit_after_the_reverberant_slots_train_only_when_asked_and_leave_other_rows_as_they_were():
    """`--length-views on`: the length views' copy indices come after REVERB_LAST whether or not the reverberant
    copies exist (so they are never taken for reverberant ones); they train only with `lengths`, never validate or
    join the prior, are standardised apart (every other row's Z is exactly what it is without them), and subsets
    and dropped classes keep the flag."""
    base = 1 + ship.NOISY_COPIES + len(ship.SPEED_FACTORS)
    plain = _rows(views=base)
    n = len(plain.y) // base
    rng = np.random.default_rng(1)
    cuts = rng.normal(size=(ship.LENGTH_COPIES * n, plain.X.shape[1])).astype(np.float32)
    X = np.concatenate([plain.X, cuts])
    copy_of = np.concatenate(
        [plain.copy_of, np.repeat(np.arange(ship.LENGTH_COPIES) + ship.REVERB_LAST + 1, n)]
    )
    spk = np.concatenate([plain.spk, np.tile(plain.spk[:n], ship.LENGTH_COPIES)])
    groups = np.char.add(np.char.add(spk, "#"), copy_of.astype(str))
    y = np.concatenate([plain.y, np.tile(plain.y[:n], ship.LENGTH_COPIES)])
    Z = ship.standardise(X, groups, ship.view_parts(copy_of))
    np.testing.assert_array_equal(Z[: len(plain.y)], plain.Z)  # the other rows exactly as without them
    rows = ship.Rows(X, Z, y, spk, copy_of, groups, plain.classes)
    cut = copy_of > ship.REVERB_LAST
    np.testing.assert_array_equal(rows.length_rows, cut)
    assert not rows.reverb_rows.any()
    for variant in ((0, False, False), (2, True, True)):
        assert not np.any(rows.trained_on(variant) & cut)  # off by default
        on = replace(rows, lengths=True)
        np.testing.assert_array_equal(on.trained_on(variant), rows.trained_on(variant) | cut)
        assert not np.any(replace(on, reverb=True).trained_on(variant) & ~on.trained_on(variant))
    assert np.all(rows.speed_rows[cut])  # training-only: excluded from validation and from the prior
    on = replace(rows, lengths=True)
    voices = on.trained_on((2, True, False)) & ~on.speed_rows
    assert not np.any(voices & cut)
    assert on.subset(rows.spk != "00").lengths and on.without_class("b").lengths
    assert ship.nested_name("ravdess", "device", "member", "auto", True) == (
        "ravdess_device_early_member_reverb_auto_lengths"
    )


def test_nested_cuts_table_gives_each_model_as_recorded_and_cut_short():
    """ship_ser_nested's short-utterance table: per model, the clips as recorded and each cut, mean +- sample std
    over folds, read from the folds' records."""
    from unittest import mock

    with mock.patch.dict("os.environ"):
        import benchmarks.ship_ser_nested as nested

    def fold(whole: float, one: float) -> dict:
        fig = {"uar": whole}
        return {
            "refit": {"transductive": fig},
            "member0": {"transductive": {"uar": whole - 0.1}},
            "cuts": {
                "as recorded": {"refit": fig, "member0": {"uar": whole - 0.1}},
                "first 1 s": {"refit": {"uar": one}, "member0": {"uar": one - 0.1}},
            },
        }

    lines = nested.cuts_table([fold(0.6, 0.3), fold(0.8, 0.5)])
    assert lines[-2] == "| shipped procedure (refit) | 70.0 +- 14.1 | 40.0 +- 14.1 |"
    assert lines[-1] == "| its close-talk member alone (refit) | 60.0 +- 14.1 | 30.0 +- 14.1 |"
    assert "first 1 s of speech" in lines[2]


def _nested():
    from unittest import mock

    with mock.patch.dict("os.environ"):  # the script pins BLAS threads in the environment at import
        import benchmarks.ship_ser_nested as nested
    return nested


def test_nested_cut_clips_meet_the_speakers_own_statistics_and_the_priors_floors():
    """`known_speaker`: the held-out speaker's clips standardised by its own statistics (no prior weight), a feature
    the training prior says never moves (EMODB's equivalent sound level: every clip is 2.00 s and level-set) giving
    0 for a cut clip too, as on the device, and another feature by the speaker's own mean and std."""
    nested = _nested()
    rng = np.random.default_rng(2)
    base = ship.SpeakerNorm(np.array([0.0, 50.0]), np.array([4.0, 0.0]), prior_weight=3.0)
    clips = np.stack([rng.normal(3.0, 2.0, 12), np.full(12, 50.0)], axis=1)
    known = nested.known_speaker(base, clips)
    cut = np.array([[5.0, 47.0]])
    z = known.apply(cut)[0]
    assert z[1] == 0.0  # never moves in the prior: 0, not (47 - 50) / a floor
    assert z[0] == pytest.approx((5.0 - clips[:, 0].mean()) / clips[:, 0].std(), rel=1e-5)
    assert base.prior_weight == 3.0  # the fold's prior is not changed


def test_nested_reuse_takes_only_a_finished_record_of_the_same_procedure(monkeypatch):
    """`--reverb auto` with `--stage0-from`: a fold whose inner folds say no reuses the earlier record only when it
    was the procedure without the reverberant copies (not a `--reverb on` or `member` record, which have no stage-0c
    choice), with the same length views and with the cut clips scored; otherwise the fold is trained."""
    nested = _nested()
    rows = _rows(views=1 + ship.NOISY_COPIES + len(ship.SPEED_FACTORS))

    class Trained(Exception):
        pass

    def trains(*a, **k):
        raise Trained

    monkeypatch.setattr(nested, "choose_reverb", lambda *a, **k: {"reverb": False, "on": 0.5, "off": 0.6})
    monkeypatch.setattr(nested, "choose_members", trains)
    monkeypatch.setattr(nested, "stage1", trains)
    chosen = (2, True, False)
    record = {
        "chosen": {"noise_copies": 2, "speed": True, "class_balanced": False},
        "inner_mean": {ship.variant_label(chosen): 0.6},
        "refit": {},
        "early_member": False,
        "early_views": [],
        "length_views": False,
        "cuts": {},
    }
    cuts = {"first 1 s": rows.X[rows.copy_of == 0]}
    got = nested.outer_fold(rows, "00", 1, cached=record, reverb="auto", cuts=cuts)
    assert got["reused"] and got["reverb"] == {"reverb": False, "on": 0.5, "off": 0.6}
    for change in ({"reverb_copies": True}, {"reverb_member": True}, {"rooms": {}}, {"length_views": True}):
        with pytest.raises(Trained):
            nested.outer_fold(rows, "00", 1, cached={**record, **change}, reverb="auto", cuts=cuts)
    with pytest.raises(Trained):  # a record from before the cut clips were scored
        nested.outer_fold(
            rows, "00", 1, cached={k: v for k, v in record.items() if k != "cuts"}, reverb="auto", cuts=cuts
        )
    with pytest.raises(Trained):  # the procedure with length views never reuses one without
        nested.outer_fold(replace(rows, lengths=True), "00", 1, cached=record, reverb="auto", cuts=cuts)


def test_member_choice_tables_are_named_by_the_copies_the_members_train_with():
    rows = _rows()
    assert ship.members_table("mydata", rows) == "ship_ser_members_mydata"
    both = replace(rows, lengths=True, early_views=(1, 2))
    assert ship.members_table("mydata", both) == "ship_ser_members_mydata_early_lengths"


def test_a_folder_with_speakers_of_few_clips_is_warned_about_before_shipping(tmp_path, capsys):
    """Review: ship_ser_nested.py on a folder with a speaker of 1 clip scored its fold 0.0 (a speaker standardised
    by its own one clip) in the mean that went into the manifest, without the few-clips warning `edge-ser data`
    gives."""
    from edge_ser.audio import write_wav

    y = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    for cls in ("angry", "sad"):
        for spk, n in (("spk01", 5), ("spk02", 5), ("solo", 1 if cls == "sad" else 0)):
            for i in range(n):
                write_wav(tmp_path / "mine" / cls / f"{spk}_{i}.wav", y, 16000)
    from converters.data.scan import DatasetWarning

    data = ship.resolve_data(str(tmp_path / "mine"))
    with pytest.warns(DatasetWarning, match=r"1 speaker\(s\) with fewer than 5 clips: solo \(1 clip\)"):
        assert ship.data_speakers(data) == ["solo", "spk01", "spk02"]


def test_room_figures_standardise_the_held_out_speaker_with_the_training_rows_floors(monkeypatch):
    """The test room's transductive figure takes its variance floors from the fold's clean training rows, as the
    clean figure does, not from the held-out speaker's own clips (docs/protocol.md, "Audit")."""
    nested = _nested()
    rng = np.random.default_rng(0)
    R = rng.normal(size=(12, 4))
    R[6:, 0] = 1 + 1e-5 * rng.normal(size=6)  # barely moves for the held-out speaker in this room
    train = 5 * rng.normal(size=(40, 4))  # it moves in training: the floor there is above its spread
    rows = SimpleNamespace(y=np.arange(12) % 2, spk=np.array(["a"] * 6 + ["b"] * 6), classes=["x", "y"])
    test_rows = np.arange(6, 12)
    seen = []
    monkeypatch.setattr(nested, "predict", lambda model, Z: seen.append(Z) or np.zeros((len(Z), 2)))
    monkeypatch.setattr(nested, "online", lambda *a, **k: [R[test_rows]])
    nested.room_figures(None, R, rows, test_rows, None, train)
    want = transductive(R[test_rows], rows.spk[test_rows], floor_from=train)
    np.testing.assert_array_equal(seen[0], want)
    assert not np.allclose(want, transductive(R[test_rows], rows.spk[test_rows]))  # the old floors differ


def test_unnamed_speakers_and_a_swapped_layout_are_refused_before_any_features(folders, tmp_path):
    """A review: files naming no speaker became a speaker 'unknown' (and the stage-1 validation speaker), and a
    <speaker>/<emotion>_N.wav folder a speaker classifier validated on "speaker" sad, each with a figure written;
    `edge-ser train --split speaker` refuses the first. The shipping scripts now refuse both, by name."""
    import shutil

    from edge_ser.errors import ConfigError

    unnamed = shutil.copytree(folders[5], tmp_path / "unnamed")
    shutil.copy(next((unnamed / "angry").iterdir()), unnamed / "angry" / "take1.wav")
    with (
        pytest.warns(Warning, match="name no speaker"),
        pytest.raises(ConfigError, match="1 of 31 files name no"),
    ):
        ship.data_speakers(ship.resolve_data(str(unnamed)))
    swapped = tmp_path / "swapped"
    for f in sorted(folders[5].rglob("*.wav")):
        speaker = f.stem.split("_")[0]
        (swapped / f"spk{speaker}").mkdir(parents=True, exist_ok=True)
        shutil.copy(f, swapped / f"spk{speaker}" / f"{f.parent.name}_{f.stem.split('_')[1]}.wav")
    with pytest.warns(Warning), pytest.raises(ConfigError, match="speakers and classes look swapped"):
        ship.data_speakers(ship.resolve_data(str(swapped)))
    assert len(ship.data_speakers(ship.resolve_data(str(folders[5])))) == 5


def test_a_fold_whose_training_speakers_lack_a_class_is_said():
    """A class only the held-out speaker has counts recall 0 in that fold's UAR; `edge-ser train` says so and the
    nested run did not (a review)."""
    nested = _nested()
    rows = SimpleNamespace(
        spk=np.array(["a", "a", "b", "b", "c"]),
        y=np.array([0, 1, 0, 1, 2]),
        copy_of=np.zeros(5, int),
        classes=["angry", "sad", "disgust"],
    )
    (line,) = nested.missing_classes(rows, ["a", "b", "c"])
    assert line.startswith("fold c: no training clip of disgust (only c has it)")


def test_a_one_fold_nested_table_says_one_fold_not_a_spread_of_zero() -> None:
    """`ship_ser_nested.py --limit-folds 1` printed "77.5 +- 0.0" in every cell: one fold has no known spread."""
    import benchmarks.ship_ser_nested as nested

    assert nested.pm(0.775, 0.0, 1) == "77.5 (one fold)"
    assert nested.pm(0.775, 0.052, 5) == "77.5 +- 5.2"


def test_a_procedure_seed_moves_every_training_seed_of_a_fold_and_never_reuses_another_seeds_record(
    monkeypatch,
):
    """`ship_ser_nested.py --seed S`: stage 1 of the plain member, the early-views member and the refit all train
    at SEED_STRIDE * S (+ k for member k), stage 0 and its reverberation choice too; and with `--reverb auto`, a
    finished record made at another seed is never returned as this seed's fold."""
    nested = _nested()
    rows = _rows(views=1 + ship.NOISY_COPIES + len(ship.SPEED_FACTORS))
    seen: dict[str, int] = {}

    class Stop(Exception):
        pass

    def fake_stage1(r, variant, val_spk, recipe, log=True, *, seed=0, norm=None):
        seen["stage1"] = seed
        return {"c": SimpleNamespace(plan="plan"), "epochs": {}, "norm": None}

    def fake_member(r, variant, val_spk, recipe, first, *, seed=0):
        seen["member"] = seed
        return first

    def trains(*a, **k):
        raise Stop

    def fake_refit(r, fit, runs, balanced, *, seed=0):
        seen["refit"] = seed
        raise Stop

    def fake_variant(r, variants, recipe, *, by="transductive", seed=0, progress=False):
        seen["stage0"] = seed
        return {"chosen": (2, True, False), "mean": {v: 0.5 for v in variants}}

    def fake_reverb(r, variant, recipe, *, by="transductive", off=None, seed=0, progress=False):
        seen["stage0c"] = seed
        return {"reverb": False, "on": 0.5, "off": 0.6}

    for name, fake in (("stage1", fake_stage1), ("early_member", fake_member), ("refit_members", fake_refit)):
        monkeypatch.setattr(nested, name, fake)
    monkeypatch.setattr(nested, "choose_variant", fake_variant)
    monkeypatch.setattr(nested, "choose_reverb", fake_reverb)
    monkeypatch.setattr(nested, "within_budget", lambda runs: (runs, None))
    monkeypatch.setattr(nested, "choose_members", trains)  # a reused record never trains
    with pytest.raises(Stop):
        nested.outer_fold(rows, "00", 1, early_pair=True, reverb="auto", seed=2)
    stride = nested.SEED_STRIDE
    assert seen == {"stage0": 2 * stride, "stage0c": 2 * stride, "stage1": 2 * stride, "member": 2 * stride,
                    "refit": 2 * stride}  # fmt: skip
    # the same finished record, reused at its own seed, trained again at another
    record = {
        "chosen": {"noise_copies": 2, "speed": True, "class_balanced": False},
        "inner_mean": {ship.variant_label((2, True, False)): 0.6},
        "refit": {},
        "early_member": False,
        "early_views": [],
        "length_views": False,
        "seed": 1,
    }
    assert nested.outer_fold(rows, "00", 1, cached=record, reverb="auto", seed=1)["reused"]
    with pytest.raises(Stop):
        nested.outer_fold(rows, "00", 1, cached=record, reverb="auto", seed=0)
    with pytest.raises(Stop):  # a record from before --seed is seed 0's
        nested.outer_fold(rows, "00", 1, cached={k: v for k, v in record.items() if k != "seed"}, reverb="auto",
                          seed=1)  # fmt: skip


def test_ship_ser_members_train_at_the_procedure_seed_plus_their_index(monkeypatch):
    """ship_ser's early-views and reverberant members train at `seed` + 1 and the refit of member k at `seed` + k
    (`seed` 0: the seeds the bundles ship with)."""
    rows = _rows(clips=12)
    seen: list[int] = []
    monkeypatch.setattr(ship, "stage1", lambda *a, seed=0, **k: seen.append(seed) or {"seed": seed})
    best = {"norm": None}
    ship.early_member(rows, (2, True, False), ["03"], "sensitivity@2.0", best, seed=20)
    assert seen == [21]
    trained: list[int] = []
    monkeypatch.setattr(ship, "refit", lambda *a, **kw: trained.append(kw["seed"]) or (None, {}))
    runs = [{"c": SimpleNamespace(plan="p"), "epochs": {}} for _ in range(3)]
    ship.refit_members(rows, rows.copy_of == 0, runs, balanced=False, seed=20)
    assert trained == [20, 21, 22]


def _fold_record(test: str, confusion: list[list[int]]) -> dict:
    """A nested fold record whose every model and norm has `confusion` (and the UAR it gives)."""
    from converters.evaluate import Metrics

    m = Metrics(("a", "b"), np.asarray(confusion))
    fig = {"uar": m.uar, "war": m.accuracy, "confusion": confusion}
    return {"test": test, **{k: {n: fig for n in ("transductive", "online-1", "online-5", "online-20")}
                             for k in ("refit", "stage1")}}  # fmt: skip


def test_nested_seeds_pool_each_folds_confusions_and_give_each_seeds_mean():
    """`--seed 0,1`: each seed's row is its mean over folds; the pooled row is the mean over folds of the UAR of
    the fold's confusions summed over the seeds (not the mean of the seeds' UARs)."""
    nested = _nested()
    per_seed = {
        0: [_fold_record("01", [[4, 0], [2, 2]]), _fold_record("02", [[3, 1], [0, 4]])],
        1: [_fold_record("01", [[2, 0], [0, 6]]), _fold_record("02", [[4, 0], [4, 0]])],
    }
    payload, md = nested.seeds_summary("emodb", "emodb_device", per_seed, ["a", "b"], 2)
    t = payload["table"]["refit"]["transductive"]
    assert t["seeds"]["0"]["uar"] == pytest.approx(np.mean([0.75, 0.875]))
    assert t["seeds"]["1"]["uar"] == pytest.approx(np.mean([1.0, 0.5]))
    # fold 01 pooled: [[6, 0], [2, 8]] -> (1 + 0.8) / 2; fold 02: [[7, 1], [4, 4]] -> (7/8 + 0.5) / 2
    pooled = [(1 + 0.8) / 2, (7 / 8 + 0.5) / 2]
    assert t["pooled"]["per_fold_uar"] == pytest.approx(pooled)
    assert t["pooled"]["uar"] == pytest.approx(np.mean(pooled))
    assert t["pooled"]["uar_std"] == pytest.approx(np.std(pooled, ddof=1))
    assert f"**{100 * np.mean(pooled):.1f} +- {100 * np.std(pooled, ddof=1):.1f}**" in md
    assert payload["seeds"] == [0, 1] and payload["complete"]
    with pytest.raises(ValueError, match="same outer folds"):
        nested.seeds_summary("emodb", "x", {0: per_seed[0], 1: per_seed[1][:1]}, ["a", "b"], 2)


def test_a_runs_file_of_another_seed_is_refused(tmp_path):
    nested = _nested()
    runs = tmp_path / "emodb_seed1.jsonl"
    runs.write_text(json.dumps({"test": "01", "seed": 0, "members": 1}) + "\n")
    with pytest.raises(SystemExit, match="trained at seed 0, not 1"):
        nested.run_folds(_rows(), ["00"], runs, {}, seed=1, val_speakers=1)


def test_a_folder_of_one_class_is_refused_and_one_level_too_deep_is_said(folders, tmp_path):
    """A review: `ship_ser.py --data mydata` with the class folders one level down (mydata/all/<class>/...) found
    one class, 'all', and shipped a one-class "recogniser" at validation UAR 100 %, with two warnings that did
    not say what was wrong."""
    import shutil

    from edge_ser.errors import ConfigError

    deep = tmp_path / "deep"
    shutil.copytree(folders[5], deep / "all")
    with (
        pytest.warns(Warning),
        pytest.raises(ConfigError, match=r"all of class all: .*at least 2 class folders"),
    ):
        ship.data_speakers(ship.resolve_data(str(deep)))
    with pytest.warns(Warning), pytest.raises(ConfigError, match=r"are emotions: give --data \S*deep/all$"):
        ship.data_speakers(ship.resolve_data(str(deep)))


def test_the_manifest_says_where_the_training_variant_was_chosen():
    """The split text said 'noisy copies chosen on the validation speakers in stage 1' of every refit bundle,
    though stage 0's inner folds choose them (`--choose pairs`, the default; a review)."""
    assert ship.variant_source("pairs", 8) == "on inner folds of speaker pairs"
    assert ship.variant_source("holdout", 8) == "on the validation speakers"
    assert ship.variant_source("pairs", 1) == ship.variant_source("holdout", 1) == "as given"


@pytest.mark.parametrize("nested_script", [False, True])
def test_each_data_set_warning_is_said_once_per_run(monkeypatch, nested_script):
    """ship_ser.py listed a folder three times on the way (its speakers, functionals and copies) and printed the
    loader's warnings for each (a review): `main` says each once."""
    import warnings

    from converters.data.scan import DatasetWarning

    module = _nested() if nested_script else ship

    def listed_twice():
        for _ in range(2):
            warnings.warn(
                "mine: files in 7 folders take their speaker from their name", DatasetWarning, stacklevel=1
            )
        warnings.warn("mine: another warning", DatasetWarning, stacklevel=1)

    monkeypatch.setattr(module, "_main", listed_twice)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        module.main()
    assert [str(w.message) for w in said] == [
        "mine: files in 7 folders take their speaker from their name",
        "mine: another warning",
    ]


def test_a_validation_speaker_of_few_clips_is_said():
    """A one-clip speaker named last became stage 1's only validation speaker with no word of it (a review)."""
    rows = _rows(n_speakers=4, clips=6)
    keep = (rows.spk != "03") | (np.arange(len(rows.spk)) % 6 == 0)  # speaker 03: 1 clip per view
    thin = rows.subset(keep)
    [line] = ship.thin_validation(thin, ["03"])
    assert line.startswith("speaker 03 validates stage 1 (the last by name) with 1 clip(s)")
    assert "--val-speakers" in line
    assert ship.thin_validation(thin, ["02"]) == [] and ship.thin_validation(rows, ["03"]) == []


def test_the_runner_up_variant_is_stage_0s_second_best():
    """`--variant-members 2` trains the pair for stage 0's two best variants: the runner-up is the best inner-fold
    mean after the chosen one, an exact tie going to the earlier variant as `choose_variant` breaks it; a stage 0
    of one candidate (a variant given, not chosen) has none, and the pair stays a pair."""
    nested = _nested()
    labels = {v: nested.variant_label(v) for v in nested.VARIANTS}
    chosen, second, third = nested.VARIANTS[5], nested.VARIANTS[6], nested.VARIANTS[2]
    inner = {labels[v]: 0.5 for v in nested.VARIANTS}
    inner.update({labels[chosen]: 0.62, labels[second]: 0.61, labels[third]: 0.61})
    assert nested.second_variant(inner, chosen) == third  # tied with `second`, and earlier
    inner[labels[second]] = 0.615
    assert nested.second_variant(inner, chosen) == second
    assert nested.second_variant({labels[chosen]: 0.6}, chosen) is None


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (("--variant-members", "2"), "give --early-views member"),
        (("--stage0-per-seed",), "give --stage0-from"),
    ],
)
def test_nested_refuses_options_that_need_another(argv, said, monkeypatch, capsys):
    """Refused as the options are read, before any features are made."""
    with pytest.raises(SystemExit) as e:
        _main(monkeypatch, _nested(), "--data", "emodb", *argv)
    assert e.value.code == 2 and said in capsys.readouterr().err


def test_no_nested_run_names_the_command_only_when_the_nested_run_can_be_made():
    """A folder of 4 speakers can ship (ship_ser.py needs 4) but not be nested (ship_ser_nested.py needs 5): the
    line says why there is no figure instead of suggesting a command that is then refused (a review)."""
    args = SimpleNamespace(data="mydata", choose_by="transductive", early_views="off", reverb="off")
    data = ship.Data("mydata", "mydata", False)
    four = ship.no_nested_run(args, data, 4, Path("t"), False)
    assert "ship_ser_nested.py cannot make one: mydata has 4 speaker(s)" in four and "at least 5" in four
    assert "--data" not in four
    five = ship.no_nested_run(args, data, 5, Path("t"), False)
    assert "python benchmarks/ship_ser_nested.py --data mydata --choose-by transductive --tables t" in five


def test_a_bundle_of_four_speakers_does_not_say_the_nested_run_makes_its_figure(
    folders, tmp_path, monkeypatch, capsys
):
    """4 speakers ship but cannot be nested (5 needed): the run said so, but the manifest's split said "no
    speaker-independent figure: ship_ser_nested.py makes it", and `edge-ser info` printed that (a review)."""
    import json

    monkeypatch.setenv("EDGE_SER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ship, "VARIANTS", [(0, False, False)])  # cheap, and still the nested run's procedure
    _main(monkeypatch, ship, "--data", folders[4], "--out", tmp_path / "b")
    assert "ship_ser_nested.py cannot make one: mydata has 4 speaker(s)" in capsys.readouterr().out
    kind = json.loads((tmp_path / "b" / "manifest.json").read_text())["accuracy"]["split"]["kind"]
    assert (
        "no speaker-independent figure: ship_ser_nested.py cannot make one: mydata has 4 speaker(s)" in kind
    )
    assert "makes it" not in kind


def test_a_bad_recipe_is_refused_before_any_features(folders, tmp_path, monkeypatch, capsys):
    """--recipe was read first by compress, after the features and a float model were made (a review): a typo
    cost a corpus's feature run before its one-line error."""

    def no_features(*a, **k):
        raise AssertionError("features were made before the arguments were checked")

    monkeypatch.setattr(ship, "training_matrix", no_features)
    argv = ("--data", folders[4], "--out", tmp_path / "b", "--recipe")
    line = _usage_error(monkeypatch, capsys, ship, *argv, "sensitivity@9")
    assert "--recipe: recipe 'sensitivity@9': the average-bits budget after '@' must be in 1..8" in line
    assert "unknown recipe 'sensitivty'" in _usage_error(monkeypatch, capsys, ship, *argv, "sensitivty")


def test_an_out_that_is_not_a_bundle_is_refused_before_any_features(folders, tmp_path, monkeypatch, capsys):
    """build_bundle refuses to replace a folder that is not a bundle, but ship_ser reached it only after the
    features and every stage's training (a review): the check is made with the other arguments now."""

    def no_features(*a, **k):
        raise AssertionError("features were made before the arguments were checked")

    monkeypatch.setattr(ship, "training_matrix", no_features)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep")
    line = _usage_error(monkeypatch, capsys, ship, "--data", folders[4], "--out", precious)
    assert (
        f"--out: bundle {precious}: exists and is not a bundle (no manifest.json); refusing to replace it"
        in line
    )
    assert (precious / "notes.txt").read_text() == "keep"


def test_tables_or_runs_that_are_a_file_are_refused_before_any_features(tmp_path, monkeypatch, capsys):
    """--tables FILE (or --runs FILE) was found out by the first table's write: ship_ser.py trained stage 0 and
    ship_ser_nested.py made the features (or ran every fold, with --runs elsewhere) before a traceback
    (FileExistsError, NotADirectoryError) (a review). Both are one-line usage errors now, before any features."""
    nested = _nested()

    def no_features(*a, **k):
        raise AssertionError("features were made before the arguments were checked")

    monkeypatch.setattr(ship, "training_matrix", no_features)
    monkeypatch.setattr(nested, "training_matrix", no_features)
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    out = ("--out", tmp_path / "b")
    line = _usage_error(monkeypatch, capsys, ship, "--data", "emodb", *out, "--tables", a_file)
    assert f"--tables {a_file}: exists and is not a folder" in line
    line = _usage_error(monkeypatch, capsys, ship, "--data", "emodb", *out, "--tables", a_file / "t")
    assert f"--tables {a_file / 't'}: {a_file} is a file, not a folder" in line
    line = _usage_error(monkeypatch, capsys, nested, "--data", "emodb", "--tables", a_file)
    assert f"--tables {a_file}: exists and is not a folder" in line
    line = _usage_error(
        monkeypatch, capsys, nested, "--data", "emodb", "--tables", tmp_path / "t", "--runs", a_file
    )
    assert f"--runs {a_file}: exists and is not a folder" in line
    assert a_file.read_text() == "keep" and not (tmp_path / "b").exists() and not (tmp_path / "t").exists()


def test_nested_mismatch_names_every_option_the_nested_procedure_does_not_have():
    """Only a bundle made as ship_ser_nested.py's procedure (every choice on the inner folds, RECIPE) gets its
    figure; --recipe was not checked, so a bundle at another bit budget got the 2-bit procedure's figure, and a run
    with the variant fixed said nothing about why it had none (a review)."""
    base = dict(features="extended", choose="pairs", members="auto", recipe=ship.RECIPE)
    base.update(noise_copies=None, speed="auto", balanced="auto")
    assert ship.nested_mismatch(SimpleNamespace(**base), list(ship.VARIANTS)) == []
    other = SimpleNamespace(**{**base, "recipe": "sensitivity@1.5"})
    assert ship.nested_mismatch(other, list(ship.VARIANTS)) == ["--recipe sensitivity@1.5"]
    fixed = SimpleNamespace(**{**base, "noise_copies": 0, "speed": "off", "members": "1"})
    assert ship.nested_mismatch(fixed, [(0, False, False), (0, False, True)]) == [
        "--members 1",
        "--noise-copies 0",
        "--speed off",
    ]
    assert _nested().RECIPE == ship.RECIPE  # one constant: the nested run compresses as the default does


def test_val_speakers_and_no_refit_keep_the_figure_out_and_say_so(capsys):
    """ship_ser_nested.py validates stage 1 with the data set's default count of speakers and scores the refit:
    a bundle made with another --val-speakers or with --no-refit got no figure, but its manifest said
    "no speaker-independent figure: ship_ser_nested.py makes it", which no nested run does (a review)."""
    base = dict(features="extended", choose="pairs", members="auto", recipe=ship.RECIPE, no_refit=False)
    base.update(noise_copies=None, speed="auto", balanced="auto")
    same = ship.nested_mismatch(SimpleNamespace(**base), list(ship.VARIANTS), val_speakers=1, default_val=1)
    assert same == []
    more = ship.nested_mismatch(
        SimpleNamespace(**base), list(ship.VARIANTS), say=True, val_speakers=2, default_val=1
    )
    assert more == ["--val-speakers 2"]
    said = capsys.readouterr().out
    assert "ship_ser_nested.py's procedure does not run --val-speakers 2" in said
    assert "validates stage 1 with 1 speaker(s)" in said
    stage1 = SimpleNamespace(**{**base, "no_refit": True})
    assert ship.nested_mismatch(stage1, list(ship.VARIANTS), val_speakers=1, default_val=1) == ["--no-refit"]


def test_the_refit_epochs_are_said_in_words():
    """ship_ser's last line gave the refit's epochs as Python dicts ("at epochs {'float': 44, 'qat': 19}")."""
    assert ship.epochs_words({"float": 44, "qat": 19}) == "float epoch 44, QAT epoch 19"
    pair = ship.epochs_words([{"float": 5, "qat": 21}, {"float": 6, "qat": 2}])
    assert pair == "float epoch 5, QAT epoch 21 (member 1) and float epoch 6, QAT epoch 2 (member 2)"


def test_reverb_auto_without_inner_folds_is_refused_before_any_features(
    folders, tmp_path, monkeypatch, capsys
):
    """--reverb auto chooses on the inner folds, so --choose holdout or --paired-fold cannot run it; the refusal
    came after the features were made (minutes on a corpus), as a bare exit without the script's usage line."""

    def no_features(*a, **k):
        raise AssertionError("features were made before the arguments were checked")

    monkeypatch.setattr(ship, "training_matrix", no_features)
    argv = ("--data", folders[4], "--out", tmp_path / "b", "--reverb", "auto")
    line = _usage_error(monkeypatch, capsys, ship, *argv, "--choose", "holdout")
    assert "--reverb auto chooses on the inner folds of speaker pairs: give --choose pairs" in line
    line = _usage_error(monkeypatch, capsys, ship, *argv[2:], "--data", "ravdess", "--paired-fold", "0")
    assert "give --choose pairs (--paired-fold has none)" in line
    assert not (tmp_path / "b").exists()


def test_the_rows_block_counts_the_early_views_a_model_trains_on():
    """The split's `rows` gives the rows each part trained or was scored on; with --early-views on every clean
    training clip is trained on once more per early view (`Rows.training`), which `rows` left out (EMODB's
    train count was short by 4 x its clean clips). Validation is scored without them."""
    rows = replace(_rows(clips=12), early_views=(1, 8))
    fit = ~np.isin(rows.spk, ["03"])
    val = ~fit & (rows.copy_of <= ship.NOISY_COPIES)
    parts = ship.part_sizes(rows, train=fit, val=val)
    assert parts["rows"]["train"] == len(rows.training(fit)[0])
    assert parts["rows"]["val"] == int(val.sum())
    assert parts["sizes"] == {
        "train": int((fit & (rows.copy_of == 0)).sum()),
        "val": int((val & (rows.copy_of == 0)).sum()),
    }
    plain = ship.part_sizes(replace(rows, early_views=()), train=fit, val=val)
    assert plain["rows"]["train"] == int(fit.sum())


@pytest.mark.parametrize("member", ["early", "reverb"])
def test_the_rows_block_counts_each_members_rows(monkeypatch, member):
    """`--early-views member` and `--reverb member` ship two members that train on rows of their own; the split's
    `rows` gave member 1's alone. A training part's `rows` is now one count per member, each the rows its refit
    trains on (`refit_members`); validation, scored on the same rows, stays one count; a seed ensemble, whose
    members share their rows, one count as before."""
    views = 1 + ship.NOISY_COPIES + len(ship.SPEED_FACTORS) + ship.REVERB_COPIES
    rows = _rows(clips=12, views=views) if member == "reverb" else _rows(clips=12)
    key, other = ("reverb", True) if member == "reverb" else ("early_views", ship.EARLY_VIEWS)
    plain = {"reverb": False, "early_views": (), "c": SimpleNamespace(plan="plan"), "epochs": {}}
    members = [plain, {**plain, key: other}]
    fit = rows.trained_on((2, True, False)) & ~np.isin(rows.spk, ["03"])
    val = np.isin(rows.spk, ["03"]) & ~rows.speed_rows
    trained: list[int] = []
    monkeypatch.setattr(
        ship, "refit", lambda dim, n, Z, y, plan, epochs, **kw: trained.append(len(Z)) or (None, {})
    )
    ship.refit_members(rows, fit, members, balanced=False)
    parts = ship.part_sizes(rows, members, train=fit, val=val)
    assert parts["rows"] == {"train": trained, "val": int(val.sum())}
    assert trained[0] == int(fit.sum()) < trained[1]
    assert parts["sizes"]["train"] == int((fit & (rows.copy_of == 0)).sum())  # clips: the members share them
    seeds = ship.part_sizes(rows, [plain, plain], train=fit, val=val)
    assert seeds["rows"] == {"train": trained[0], "val": int(val.sum())}
    assert seeds == ship.part_sizes(rows, train=fit, val=val)


def test_a_nested_run_of_other_data_of_the_same_name_is_not_taken(tmp_path):
    """The nested tables are found by the data set's short name, which lab/ and lab/labels.csv share (and two
    folders called data): a nested run of one went into the bundle of the other. Its classes and its outer folds'
    speakers and clip counts must be this data's; the repository's tables pass as they are."""
    run = {"classes": ["neutral", "angry"], "folds": [{"test": "a", "n": 3}, {"test": "b", "n": 4}]}
    (tmp_path / "ship_ser_nested_lab.json").write_text(json.dumps(run))
    mine = {"a": 3, "b": 4}
    assert ship.nested_data_problem("lab", tmp_path, ["neutral", "angry"], mine) is None
    fewer = ship.nested_data_problem("lab", tmp_path, ["neutral", "angry"], {"a": 3, "b": 2})
    assert "holds out 2 speakers of 7 clips, this data has 2 speakers of 5 clips" in fewer
    assert "classes neutral, angry" in ship.nested_data_problem("lab", tmp_path, ["angry", "sad"], mine)
    assert ship.nested_data_problem("absent", tmp_path, ["neutral"], mine) is None  # nested_figures: none
    emodb = json.loads((ship.RESULTS / "ship_ser_nested_emodb.json").read_text())
    clips = {f["test"]: f["n"] for f in emodb["folds"]}
    assert ship.nested_data_problem("emodb", None, emodb["classes"], clips) is None


def test_the_inner_fold_tables_say_when_a_validation_speaker_has_fewer_clips_than_online_20(
    monkeypatch, tmp_path
):
    """A folder of 6 clips a speaker: stage 0's table said "online-20 after the semicolon" of figures made after
    all 6 of each validation speaker's clips (`online` takes what there is), without a word (a review)."""
    rows = _rows(clips=6)

    def fake_stage1(r, variant, val_spk, recipe, log=True, *, seed=0):
        return {
            "figures": {
                "val_uar": 0.5,
                "val_uar_noisy": 0.5,
                "val_uar_online": 0.5,
                "val_uar_noisy_online": 0.5,
            }
        }

    monkeypatch.setattr(ship, "stage1", fake_stage1)
    choice = ship.choose_variant(rows, [(0, False, False)], "sensitivity@2.0", by="device")
    ship.write_choice("mine", choice, tmp_path)
    note = (
        "online-N of a validation speaker with fewer than N clips is after all of their clips, not N: "
        "online-20: 00 (6 clips), 01 (6 clips), 02 (6 clips), 03 (6 clips)"
    )
    assert note in (tmp_path / "ship_ser_choice_mine.md").read_text()
    assert json.loads((tmp_path / "ship_ser_choice_mine.json").read_text())["online_short"] == note
    reverb = ship.choose_reverb(rows, (0, False, False), "sensitivity@2.0", by="device", off=0.5)
    ship.write_reverb_choice("mine", (0, False, False), reverb, tmp_path)
    assert note in (tmp_path / "ship_ser_reverb_mine.md").read_text()
    # transductive scoring uses no online figure: nothing to say
    reverb = ship.choose_reverb(rows, (0, False, False), "sensitivity@2.0", by="transductive", off=0.5)
    ship.write_reverb_choice("mine", (0, False, False), reverb, tmp_path)
    assert "fewer than N clips" not in (tmp_path / "ship_ser_reverb_mine.md").read_text()
    # enough clips (EMODB's fewest is 35): nothing said
    choice = ship.choose_variant(_rows(clips=20), [(0, False, False)], "sensitivity@2.0", by="device")
    ship.write_choice("enough", choice, tmp_path)
    assert "fewer than N clips" not in (tmp_path / "ship_ser_choice_enough.md").read_text()


def test_a_nested_figure_of_speakers_with_fewer_clips_than_online_n_says_so_in_the_manifest(tmp_path):
    """The nested table said it (review), but the manifest's `speaker_independent` block, which `edge-ser info`
    prints as "after 20 of their clips", did not: a held-out speaker of 16 clips was scored after all 16."""
    cell = {"uar": 0.61, "uar_std": 0.1, "war": 0.62, "war_std": 0.09}
    run = {
        "command": "python benchmarks/ship_ser_nested.py --data mine",
        "protocol": "leave one speaker out",
        "n_folds": 2,
        "complete": True,
        "folds": [{"test": "a", "n": 16}, {"test": "b", "n": 40}],
        "table": {"refit": {"transductive": cell, "online-5": cell, "online-20": cell}},
    }
    (tmp_path / "ship_ser_nested_mine.json").write_text(json.dumps(run))
    got = ship.nested_figures("mine", tmp_path)
    assert got["online_short"] == (
        "online-N of a held-out speaker with fewer than N clips is after all of their clips, not N: "
        "online-20: a (16 clips)"
    )
    run["folds"][0]["n"] = 20
    (tmp_path / "ship_ser_nested_mine.json").write_text(json.dumps(run))
    assert "online_short" not in ship.nested_figures("mine", tmp_path)
