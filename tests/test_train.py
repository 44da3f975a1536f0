"""converters.train: the refit mode (`keep_last`) trains exactly the epochs it is given and keeps the last."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch (host extra)")

from converters.train import TrainConfig, train_classifier  # noqa: E402


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
