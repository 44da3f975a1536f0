"""Classical baselines on clip feature vectors: random forest, RBF SVM and logistic regression (scikit-learn),
standardised inputs.

The comparative RAVDESS study the zoo is measured against puts a random forest at 62 % (an MLP at 69.9 %, a
CNN at 77.9 %). Both baselines see the same feature vectors as the LAQ MLP (`converters.pipeline.prepare`) and
choose their one knob on the same validation part the neural models early-stop on, so the comparison is fair:

    fit = fit_classical("svm", Xtr, ytr, Xva, yva, seed=0)
    fit.accuracy(Xte, yte), fit.stored_values

`stored_values` is the model's size in numbers it must keep to predict (the analogue of a network's
parameter count): support vectors + dual coefficients + intercepts for the SVM; weights + intercepts for logistic regression;
per node a feature index,
a threshold and, for leaves, the class distribution for the forest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge_ser.errors import ConfigError, MissingDependencyError, install_hint

KINDS = ("rf", "svm", "logreg")
SVM_C = (1.0, 3.0, 10.0, 30.0, 100.0)
"""C values the SVM chooses from on validation (gamma = "scale": 1 / (d * var) of the standardised input)."""
LOGREG_C = (0.01, 0.1, 1.0, 10.0)
"""Inverse L2 strengths logistic regression chooses from on validation."""
RF_MAX_FEATURES = ("sqrt", 0.2)
"""max_features values the forest chooses from on validation."""
RF_TREES = 300


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(
            "the random forest / SVM baselines need scikit-learn: " + install_hint("scikit-learn", "host")
        ) from e


@dataclass
class ClassicalFit:
    """A fitted scaler + estimator, the knob validation chose, and the validation scores of every candidate."""

    kind: str
    pipeline: object
    choice: dict
    val_scores: list[dict] = field(default_factory=list)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.pipeline.predict(np.asarray(X, dtype=np.float32))

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        if len(y) == 0:
            return float("nan")
        return float((self.predict(X) == np.asarray(y)).mean())

    @property
    def stored_values(self) -> int:
        """Numbers the fitted model keeps to predict (scaler excluded, as a network's normalisation is)."""
        est = self.pipeline[-1]
        if self.kind == "svm":
            sv = est.support_vectors_
            return int(sv.size + est.dual_coef_.size + est.intercept_.size)
        if self.kind == "logreg":
            return int(est.coef_.size + est.intercept_.size)
        total = 0
        for tree in est.estimators_:
            t = tree.tree_
            leaves = int((t.children_left == -1).sum())
            total += 2 * (t.node_count - leaves) + leaves * t.value.shape[-1]
        return int(total)


def make_pipeline(kind: str, seed: int = 0, **knob):
    """FlooredScaler -> RandomForestClassifier / SVC(rbf) / LogisticRegression, seeded, one thread (fair against
    1-thread nets)."""
    _sklearn()
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    if kind == "rf":
        est = RandomForestClassifier(
            n_estimators=RF_TREES, max_features=knob.get("max_features", "sqrt"), random_state=seed, n_jobs=1
        )
    elif kind == "svm":
        est = SVC(C=float(knob.get("C", 10.0)), kernel="rbf", gamma="scale", random_state=seed)
    elif kind == "logreg":
        est = LogisticRegression(C=float(knob.get("C", 1.0)), max_iter=5000, random_state=seed)
    else:
        raise ConfigError(f"classical baseline must be one of {KINDS}, got {kind!r}")
    from converters.scaler import FlooredScaler

    return Pipeline([("scale", FlooredScaler()), (kind, est)])


def fit_classical(
    kind: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int = 0,
    score: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> ClassicalFit:
    """Fit every candidate knob on train, keep the best on validation (first wins ties).

    `score(y_val, predicted)` rates a candidate (default: accuracy; e.g. UAR for a UAR protocol)."""
    grids = {
        "svm": [{"C": c} for c in SVM_C],
        "logreg": [{"C": c} for c in LOGREG_C],
        "rf": [{"max_features": m} for m in RF_MAX_FEATURES],
    }
    grid = grids.get(kind, [])
    if kind not in KINDS:
        raise ConfigError(f"classical baseline must be one of {KINDS}, got {kind!r}")
    Xtr, Xva = np.asarray(X_train, np.float32), np.asarray(X_val, np.float32)
    best: ClassicalFit | None = None
    best_acc = -1.0
    scores = []
    for knob in grid:
        pipe = make_pipeline(kind, seed, **knob).fit(Xtr, y_train)
        if not len(y_val):
            acc = 0.0
        elif score is not None:
            acc = float(score(np.asarray(y_val), pipe.predict(Xva)))
        else:
            acc = float((pipe.predict(Xva) == np.asarray(y_val)).mean())
        scores.append({**knob, "val_acc": acc})
        if acc > best_acc:
            best, best_acc = ClassicalFit(kind, pipe, dict(knob)), acc
    assert best is not None
    best.val_scores = scores
    return best


__all__ = ["KINDS", "ClassicalFit", "fit_classical", "make_pipeline"]
