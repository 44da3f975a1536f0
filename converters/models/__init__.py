"""Model definitions (torch). Each model file holds one architecture and its constructor."""

from converters.models.laq_mlp import LaqMLP, laq_mlp

__all__ = ["LaqMLP", "laq_mlp"]
