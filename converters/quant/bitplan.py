"""BitPlan: which bit width each quantizable layer gets, with the average bits it costs, as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from converters.quant.quantizers import check_bits
from edge_ser.errors import ConfigError
from edge_ser.fileio import atomic_write


def quantizable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Layers whose weights LAQ quantizes (Linear and Conv), by module name, in model order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))}


@dataclass(frozen=True)
class BitPlan:
    """Layer name -> weight bits (1..8, or 32 for float), plus each layer's weight count.

    average_bits = sum_l NP_l * b_l with NP_l = params_l / sum(params) over the planned layers' weights
    (biases stay float32 and are not counted, as in the paper).
    """

    bits: dict[str, int]
    params: dict[str, int]
    method: str = "manual"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.bits) != set(self.params):
            raise ConfigError(
                f"BitPlan: bits and params name different layers: {sorted(set(self.bits) ^ set(self.params))}"
            )
        for name, b in self.bits.items():
            try:
                check_bits(b)
            except ConfigError as e:
                raise ConfigError(f"BitPlan layer {name!r}: {e}") from e

    @classmethod
    def uniform(cls, model: nn.Module, bits: int, method: str | None = None) -> BitPlan:
        """Every quantizable layer at `bits`."""
        layers = quantizable_layers(model)
        return cls(
            {n: bits for n in layers},
            {n: m.weight.numel() for n, m in layers.items()},
            method or ("fp32" if bits == 32 else f"fixed-{bits}bit"),
        )

    @property
    def average_bits(self) -> float:
        total = sum(self.params.values())
        return sum(self.params[n] * b for n, b in self.bits.items()) / total

    @property
    def weight_bytes(self) -> float:
        """Packed weight payload in bytes, sum(params * bits) / 8 (scales and biases not included)."""
        return sum(self.params[n] * b for n, b in self.bits.items()) / 8

    def with_bits(self, name: str, bits: int) -> BitPlan:
        return BitPlan({**self.bits, name: bits}, self.params, self.method, self.info)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "bits": dict(self.bits),
            "params": dict(self.params),
            "average_bits": self.average_bits,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BitPlan:
        try:
            return cls(
                {k: int(v) for k, v in d["bits"].items()},
                {k: int(v) for k, v in d["params"].items()},
                d.get("method", "manual"),
                d.get("info", {}),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ConfigError(f"BitPlan JSON is malformed: {e!r}") from e

    def save(self, path: str | Path) -> Path:
        return atomic_write(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> BitPlan:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: cannot read BitPlan: {e}") from e

    def __str__(self) -> str:
        body = ", ".join(f"{n}:{b}" for n, b in self.bits.items())
        return f"BitPlan[{self.method}]({body}; avg {self.average_bits:.3f} bits)"
