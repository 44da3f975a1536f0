"""The LAQ paper's MLP: 180 -> 512 -> 128 -> 64 -> n_classes on the mean feature vector.

Input standardisation (per-feature mean and std of the training split) is part of the model, as buffers, so
the exported graph takes raw feature vectors and the device never needs separate normalisation code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LaqMLP(nn.Module):
    """Standardise, then Linear+ReLU+Dropout blocks, then a linear classifier (logits)."""

    def __init__(
        self,
        in_features: int = 180,
        num_classes: int = 7,
        hidden: Sequence[int] = (512, 128, 64),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-6) -> None:
        """Store the training split's per-feature statistics (std floored at eps and at a fraction of |mean|:
        `edge_ser.features.speaker_norm.floored_std`)."""
        from edge_ser.features.speaker_norm import floored_std

        mean = torch.as_tensor(mean, dtype=self.mean.dtype)
        self.mean.copy_(mean)
        std = floored_std(mean.detach().cpu().numpy(), torch.as_tensor(std).detach().cpu().numpy(), eps)
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype))

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample input shape by input name: the clip vector."""
        return {"features": (int(self.mean.numel()),)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.classifier(self.features(x))


def laq_mlp(in_features: int = 180, num_classes: int = 7, **kwargs) -> LaqMLP:
    """The paper's configuration (~169K parameters for 180 inputs and 7 classes)."""
    return LaqMLP(in_features, num_classes, **kwargs)
