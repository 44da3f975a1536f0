"""What every log-Mel patch model shares: the one input "lms" [B, 1, M, T] and its in-graph standardisation.

squeezenet_lms, small_cnn and tiny_transformer subclass `LMSPatchModel`, so bundling (`build_bundle` with an
LMSSpec), LMS training (`converters.lms_train`) and the zoo treat them alike: `input_shapes()` names the input,
`set_normalization(mean, std)` stores the training patches' scalar mean and std (dB) as buffers that the
exported graph applies first (Sub, Div), like `LaqMLP` does for its feature vector.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchConfig:
    """Mixin for the patch models' config dataclasses (fields `width`, `min_channels`, `num_classes`):
    the channel scaling and the checks they all make."""

    def check_common(self) -> None:
        if not (0 < self.width <= 4):
            raise ValueError(f"width={self.width}: must be in (0, 4]")
        if self.num_classes < 2:
            raise ValueError(f"num_classes={self.num_classes} must be >= 2")

    def ch(self, c: int) -> int:
        """A width-1 channel count scaled by `width`, rounded, at least `min_channels`."""
        return max(self.min_channels, round(c * self.width))


class LMSPatchModel(nn.Module):
    """Base class: scalar `mean` / `std` buffers, `input_shapes()`, `set_normalization()`, `standardize()`."""

    def __init__(self, n_mels: int, segment_frames: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))
        self.patch_shape = (1, int(n_mels), int(segment_frames))

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample input shape by input name."""
        return {"lms": self.patch_shape}

    def set_normalization(self, mean: float, std: float, eps: float = 1e-6) -> None:
        """Store the training patches' scalar mean and std (dB; std floored at eps)."""
        self.mean.copy_(torch.as_tensor(float(mean)))
        self.std.copy_(torch.as_tensor(max(float(std), eps)))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
