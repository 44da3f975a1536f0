"""Model definitions (torch). Each model file holds one architecture and its constructor."""

from converters.models.av_cnn import AVCNN, AVConfig, av_cnn
from converters.models.laq_mlp import LaqMLP, laq_mlp

__all__ = ["AVCNN", "AVConfig", "LaqMLP", "av_cnn", "laq_mlp"]
