"""The AV seed model: a small face CNN and a small MFCC 1D CNN, flattened, concatenated, dense 16, classifier.

Seed (issue text): per clip 6 face frames (Haar cascade, grey 64x64) through conv 3x3 with 16/32/64 filters,
max-pooling and dropout; audio as 6 non-overlapping segments of 40 MFCCs (mean over frames) through a 2-layer
1D CNN (kernel 5, 16/32 channels); both flattened, concatenated, dense 16, softmax. Reported: ~0.06 M
parameters, 0.014 GFLOPs, 0.93 MB, 188-200 ms CPU inference per clip.

Inputs (the clip pre-processing is `edge_ser.inputs.av.clip_inputs`, shared by training and device):

- `faces` [B, 6, 64, 64] float32 in [0, 1]: grey face crops, already scaled by 1/255 OUTSIDE the model (by
  `clip_inputs`), so the graph needs no constant scaling and training tensors are the device tensors.
- `audio` [B, 6, 40] float32: per segment, the 40 frame-averaged MFCCs. Standardisation (per-coefficient
  mean / std of the training split) is inside the model as buffers, like `LaqMLP`.

How the 6 frames are combined (`AVConfig.frame_fusion`), FLOPs by the AV convention (conv = 2*Yh*Yw*Ci*Co*Kh*Kw
+ Yh*Yw*Co; dense = 2*in*out + out), fused mode, 7 classes, exact (`converters.models.counts`: the exported graph counted by `edge_ser.flops`):

=====================================  ==========  ==========  ==========================================
design                                 params      GFLOPs      note
=====================================  ==========  ==========  ==========================================
seed (reported)                        ~0.06 M     0.014
"channels", valid 3x3 (DEFAULT)        69,895      0.0199      frames are the 6 input channels of conv1
"channels", same 3x3                   98,567      0.0261
"shared", valid 3x3                    253,495     0.0860      one per-frame CNN on [B*6,1,64,64], flat x6
"shared", same 3x3                     425,527     0.1219
=====================================  ==========  ==========  ==========================================

"channels" with valid (Keras' default) 3x3 padding is the closest to the seed in both counts and is the
default. The per-frame shared CNN costs 6x the conv FLOPs and its flattened output (6 x 2304) makes the
dense-16 layer alone 221 K parameters, so it cannot be what the seed measured. Remaining differences from the
seed: its 0.06 M / 0.014 GFLOPs cannot be reproduced exactly from the description (input size, padding and
pooling placement are not stated). Under the default the dense layer (2496*16+16 = 39,952 parameters) and conv3
(18,496) dominate the parameters. Counting MACs only (no factor 2, no bias adds) gives 0.0099 G for the
default and 0.013 G for "channels"/same (whose 98.6 K parameters are then further off), so the seed may have
counted MACs, or used a slightly different head. The 0.93 MB is probably a saved Keras file (with optimizer
state); float32 weights here are 4 * 69,895 = 0.28 MB. The MFCC standardisation (Sub, Div on 240
values) is not counted, as by the convention only conv and dense layers are.

Modes: "fused" (both branches + fusion head), "audio" / "video" (one branch + its own dense-16 head, for
ablations). Outputs are logits; softmax only at inference.

Export: `converters.export.onnx_export.export_model` (opset 17, inputs "faces" / "audio", output "logits",
dynamic batch). The
graph uses only Sub, Div, Transpose, Conv, Relu, MaxPool, Flatten, Concat, Gemm (plus Reshape with an
initializer as target shape for "shared"), all in `edge_ser.engines.numpy_engine.SUPPORTED_OPS`; no Shape / Gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MODES = ("fused", "audio", "video")
FRAME_FUSIONS = ("channels", "shared")


@dataclass(frozen=True)
class AVConfig:
    frames: int = 6
    face_size: int = 64
    segments: int = 6
    n_mfcc: int = 40
    video_channels: tuple[int, ...] = (16, 32, 64)
    audio_channels: tuple[int, ...] = (16, 32)
    audio_kernel: int = 5
    fused: int = 16
    dropout: float = 0.25
    num_classes: int = 7
    frame_fusion: str = "channels"
    """"channels": the frames are the input channels of one 2D CNN; "shared": one CNN per frame, weights shared."""
    video_padding: int = 0
    """Padding of the 3x3 video convs: 0 = valid (Keras default, closest to the seed), 1 = same."""

    def __post_init__(self) -> None:
        if self.frame_fusion not in FRAME_FUSIONS:
            raise ValueError(f"frame_fusion={self.frame_fusion!r}: must be one of {FRAME_FUSIONS}")
        if self.audio_kernel % 2 != 1:
            raise ValueError(f"audio_kernel={self.audio_kernel} must be odd ('same' padding)")
        if self.video_padding not in (0, 1):
            raise ValueError(f"video_padding={self.video_padding} must be 0 (valid) or 1 (same)")


def _video_branch(cfg: AVConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = cfg.frames if cfg.frame_fusion == "channels" else 1
    for c in cfg.video_channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=cfg.video_padding), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        c_in = c
    layers += [nn.Dropout(cfg.dropout), nn.Flatten(1)]
    return nn.Sequential(*layers)


def _audio_branch(cfg: AVConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = cfg.n_mfcc
    for c in cfg.audio_channels:
        k = cfg.audio_kernel
        layers += [nn.Conv1d(c_in, c, k, padding=k // 2), nn.ReLU(inplace=True)]
        c_in = c
    layers += [nn.Dropout(cfg.dropout), nn.Flatten(1)]
    return nn.Sequential(*layers)


class AVCNN(nn.Module):
    """Face CNN + MFCC 1D CNN -> concat -> Linear(fused) -> ReLU -> Dropout -> Linear(num_classes) (logits)."""

    def __init__(self, cfg: AVConfig | None = None, mode: str = "fused") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: must be one of {MODES}")
        self.cfg = cfg = cfg or AVConfig()
        self.mode = mode
        width = 0
        if mode in ("fused", "video"):
            self.video = _video_branch(cfg)
            self._video_width = self.branch_width("video")  # a Python int: no Shape op in the graph
            width += self._video_width
        if mode in ("fused", "audio"):
            self.register_buffer("mean", torch.zeros(cfg.n_mfcc))
            self.register_buffer("std", torch.ones(cfg.n_mfcc))
            self.audio = _audio_branch(cfg)
            width += self.branch_width("audio")
        self.head = nn.Sequential(
            nn.Linear(width, cfg.fused),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.fused, cfg.num_classes),
        )

    @property
    def input_names(self) -> tuple[str, ...]:
        return {"fused": ("faces", "audio"), "audio": ("audio",), "video": ("faces",)}[self.mode]

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample input shapes by input name."""
        c = self.cfg
        shapes = {"faces": (c.frames, c.face_size, c.face_size), "audio": (c.segments, c.n_mfcc)}
        return {k: shapes[k] for k in self.input_names}

    def branch_width(self, branch: str) -> int:
        """Length of a branch's flattened output per sample (run once on zeros at construction)."""
        c = self.cfg
        with torch.no_grad():
            if branch == "video":
                shared = c.frame_fusion == "shared"
                n = self.video(torch.zeros(1, 1 if shared else c.frames, c.face_size, c.face_size)).shape[1]
                return int(n) * (c.frames if shared else 1)
            return int(self.audio(torch.zeros(1, c.n_mfcc, c.segments)).shape[1])

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-6) -> None:
        """Store the training split's per-MFCC-coefficient statistics (std floored at eps)."""
        if self.mode == "video":
            raise ValueError("a video-only model has no audio input to standardise")
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype).clamp_min(eps))

    def _video(self, faces: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        if c.frame_fusion == "channels":
            return self.video(faces)
        # constant target shapes (-1 for the batch) export as Reshape with an initializer: no Shape/Gather
        y = self.video(faces.reshape(-1, 1, c.face_size, c.face_size))
        return y.reshape(-1, self._video_width)

    def _audio(self, audio: torch.Tensor) -> torch.Tensor:
        x = (audio - self.mean) / self.std  # [B, segments, n_mfcc]
        return self.audio(x.transpose(1, 2))  # Conv1d over segments, MFCCs as channels

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.input_names):
            raise TypeError(
                f"mode {self.mode!r} takes inputs {self.input_names}, got {len(inputs)} tensor(s)"
            )
        if self.mode == "fused":
            faces, audio = inputs
            z = torch.cat([self._video(faces), self._audio(audio)], dim=1)
        elif self.mode == "video":
            z = self._video(inputs[0])
        else:
            z = self._audio(inputs[0])
        return self.head(z)


def av_cnn(mode: str = "fused", **kwargs) -> AVCNN:
    """The seed configuration (frames as channels, valid 3x3 video convs); kwargs override AVConfig fields."""
    return AVCNN(AVConfig(**kwargs), mode=mode)
