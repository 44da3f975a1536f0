"""The classical baselines' input standardisation: scikit-learn's StandardScaler with the nets' floor."""

from __future__ import annotations

from sklearn.preprocessing import StandardScaler

from edge_ser.features.speaker_norm import floored_std


class FlooredScaler(StandardScaler):
    """StandardScaler whose scale is at least RESOLUTION x |mean| (`edge_ser.features.speaker_norm.floored_std`),
    as the nets' in-graph standardisation: a feature constant by construction stays near 0 instead of having its
    float rounding scaled to unit variance (docs/protocol.md, "Audit", defect 2)."""

    def fit(self, X, y=None, sample_weight=None):
        super().fit(X, y, sample_weight)
        self.scale_ = floored_std(self.mean_, self.scale_, 0.0)
        return self
