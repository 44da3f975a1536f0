"""converters.train: the refit mode (`keep_last`) trains exactly the epochs it is given and keeps the last; the
class-balanced loss gives every class the same total weight."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch (host extra)")

from converters.train import (  # noqa: E402
    BalancedCrossEntropy,
    Distill,
    TrainConfig,
    class_weights,
    train_classifier,
)


def _data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.standard_normal((n, 8)) + y[:, None]).astype(np.float32), y


def test_keep_last_trains_exactly_the_epochs_and_keeps_the_last_weights() -> None:
    X, y = _data()
    net = torch.nn.Sequential(torch.nn.Linear(8, 3))
    r = train_classifier(net, X, y, X, y, TrainConfig(epochs=7, patience=1, keep_last=True), progress=False)
    assert r.epochs_run == 7 and r.best_epoch == 7 and len(r.history) == 7  # patience never stops it
    assert r.best_val_acc == r.history[-1]["val_acc"]
    # the same run with selection keeps an earlier epoch's weights when a later one is not better
    sel = train_classifier(
        torch.nn.Sequential(torch.nn.Linear(8, 3)),
        X,
        y,
        X,
        y,
        TrainConfig(epochs=7, patience=100),
        progress=False,
    )
    assert sel.best_epoch <= 7 and sel.best_val_acc == max(h["val_acc"] for h in sel.history)


def test_class_weights_give_every_present_class_the_same_total_weight() -> None:
    y = torch.tensor([0, 0, 0, 0, 1, 1, 3])  # class 2 absent, 5 logits
    w = class_weights(y, 5)
    assert w.shape == (5,) and w[2] == 0 and w[4] == 0
    totals = torch.bincount(y, minlength=5).float() * w
    assert torch.allclose(totals[[0, 1, 3]], torch.full((3,), len(y) / 3))
    # balanced classes: every weight 1, the loss is the plain cross-entropy
    yb = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    plain = torch.nn.functional.cross_entropy(logits, yb)
    assert torch.allclose(BalancedCrossEntropy(yb)(logits, yb), plain)


def test_class_balanced_training_lifts_the_minority_class_recall() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(270, np.int64), np.ones(30, np.int64)]  # 9:1, overlapping classes
    X = (rng.standard_normal((300, 4)) + 0.8 * y[:, None]).astype(np.float32)

    def minority_recall(balanced: bool) -> float:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 2))
        cfg = TrainConfig(epochs=40, lr=1e-2, keep_last=True, class_balanced=balanced)
        r = train_classifier(net, X, y, X, y, cfg, progress=False)
        pred = r.model(torch.as_tensor(X)).argmax(1).numpy()
        return float((pred[y == 1] == 1).mean())

    assert minority_recall(True) > minority_recall(False) + 0.3
    with pytest.raises(ValueError, match="class_balanced with distill"):
        train_classifier(
            torch.nn.Sequential(torch.nn.Linear(4, 2)),
            X,
            y,
            X,
            y,
            TrainConfig(epochs=1, class_balanced=True),
            progress=False,
            distill=Distill(np.zeros((300, 2), np.float32)),
        )


def _resumable_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.Dropout(0.3), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    )


def _noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return x + 0.1 * torch.randn(x.shape, generator=gen)


def test_a_killed_run_resumes_to_the_weights_of_a_run_never_stopped(tmp_path) -> None:
    X, y = _data(96)
    config = TrainConfig(epochs=4, batch_size=16, cosine=True, patience=2)  # selection and early stopping too
    kw = {"progress": False, "mixup": 0.2}
    whole = train_classifier(_resumable_net(), X, y, X[:32], y[:32], config, augment=_noise, **kw)

    state, calls = tmp_path / "run.partial.pt", []

    def noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:  # the same augmentation, killed once
        calls.append(1)
        if len(calls) == 2 * 6 + 3:  # 6 batches an epoch: part way through the third
            raise KeyboardInterrupt
        return _noise(x, gen)

    with pytest.raises(KeyboardInterrupt):
        train_classifier(_resumable_net(), X, y, X[:32], y[:32], config, augment=noise, resume=state, **kw)
    assert state.is_file()
    again = train_classifier(
        _resumable_net(), X, y, X[:32], y[:32], config, augment=noise, resume=state, **kw
    )
    assert not state.exists()  # removed once the run ends: the next call starts afresh
    assert again.history == whole.history and again.best_epoch == whole.best_epoch
    for a, b in zip(whole.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_resume_file_from_another_run_is_refused_by_name(tmp_path) -> None:
    """Each thing that makes another run is refused alone: the config, the starting weights (QAT from another float
    model), the training rows, the validation rows, the augmentation, mixup; a file that is not torch's too."""
    from edge_ser.errors import ConfigError

    X, y = _data(48)
    state, calls, kill = tmp_path / "run.partial.pt", [], [True]

    def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        calls.append(1)
        if kill[0] and len(calls) == 5:
            raise KeyboardInterrupt
        return x

    def run(**change) -> None:
        args = {"model": _resumable_net(), "X_train": X, "X_val": X, "y_val": y, "augment": shift, **change}
        config = args.pop("config", TrainConfig(epochs=3, batch_size=16))
        train_classifier(y_train=y, config=config, progress=False, resume=state, **args)

    with pytest.raises(KeyboardInterrupt):
        run()
    kill[0] = False
    other_start = _resumable_net()
    torch.nn.init.zeros_(other_start[0].bias)  # e.g. QAT from another float model
    for change in (
        {"config": TrainConfig(epochs=5, batch_size=16)},
        {"model": other_start},
        {"X_train": X + 1},
        {"X_val": X[:8], "y_val": y[:8]},
        {"augment": _noise},
        {"augment": None},
        {"mixup": 0.4},
    ):
        with pytest.raises(ConfigError, match="run.partial.pt: a resume file from another run"):
            run(**change)
    run()  # the same run resumes, and ends
    assert not state.exists()
    state.write_bytes(b"not torch")
    with pytest.raises(ConfigError, match="run.partial.pt: not a training resume file"):
        run()


def test_a_run_killed_after_its_patience_ran_out_ends_where_it_stopped(tmp_path, monkeypatch) -> None:
    """Killed between its last save and the removal of the file, a run that early stopping had ended resumed for
    one more epoch (a review): it now returns what the unbroken run returned."""
    from pathlib import Path

    X, y = _data(64)
    config = TrainConfig(epochs=60, batch_size=16, patience=1, lr=0.05)
    whole = train_classifier(_resumable_net(), X, y, X[:16], y[:16], config, progress=False)
    assert whole.epochs_run < 60  # patience stopped it
    state = tmp_path / "run.partial.pt"
    unlink = Path.unlink

    def killed(self, *a, **k):  # the kill lands after the last save, before the file is removed
        if self == state:
            raise KeyboardInterrupt
        return unlink(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", killed)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(_resumable_net(), X, y, X[:16], y[:16], config, progress=False, resume=state)
    monkeypatch.setattr(Path, "unlink", unlink)
    again = train_classifier(_resumable_net(), X, y, X[:16], y[:16], config, progress=False, resume=state)
    assert again.history == whole.history and again.epochs_run == whole.epochs_run
    assert not state.exists()


@pytest.mark.parametrize(
    "kw, says",
    [
        ({"epochs": -1}, "TrainConfig.epochs=-1 must be an integer >= 0"),
        ({"patience": 0}, "TrainConfig.patience=0 must be an integer >= 1"),
        ({"patience": -3}, "TrainConfig.patience=-3 must be an integer >= 1"),
        ({"batch_size": 0}, "TrainConfig.batch_size=0 must be an integer >= 1"),
        ({"lr": 0.0}, "TrainConfig.lr=0.0 must be > 0"),
        ({"lr": -1e-3}, "TrainConfig.lr=-0.001 must be > 0"),
        ({"lr": float("nan")}, "TrainConfig.lr=nan must be > 0"),
        ({"weight_decay": -1e-4}, "TrainConfig.weight_decay=-0.0001 must be >= 0"),
        ({"threads": 0}, "TrainConfig.threads=0 must be None or an integer >= 1"),
        ({"epochs": 2.5}, "TrainConfig.epochs=2.5 must be an integer >= 0"),
    ],
)
def test_a_train_config_that_cannot_train_is_refused_by_name(kw, says) -> None:
    """review: patience 0 or below trained one epoch and stopped, epochs below 0 trained nothing and returned
    the untrained model as the best, batch 0 was a ZeroDivisionError, lr 0 trained nothing, threads 0 was
    ignored: each without a word."""
    from edge_ser.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(says)):
        TrainConfig(**kw)


def test_zero_epochs_still_means_no_training_as_qat_epochs_0_does() -> None:
    """The zoo's and the sequence trainer's qat_epochs 0 (no QAT) reach TrainConfig as epochs 0, patience 0."""
    TrainConfig(epochs=0, patience=0)
    X, y = _data()
    net = torch.nn.Sequential(torch.nn.Linear(8, 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = train_classifier(net, X, y, X, y, TrainConfig(epochs=0, patience=0), progress=False)
    assert r.epochs_run == 0 and r.history == []
    assert all(torch.equal(before[k], v) for k, v in r.model.state_dict().items())
