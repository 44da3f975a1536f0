"""Model definitions (torch). Each model file holds one architecture and its constructor."""

from converters.models.av_cnn import AVCNN, AVConfig, av_cnn
from converters.models.laq_mlp import LaqMLP, laq_mlp
from converters.models.small_cnn import SmallCNN, SmallCNNConfig, small_cnn
from converters.models.squeezenet_lms import SqueezeNetConfig, SqueezeNetLMS, squeezenet_lms
from converters.models.tiny_transformer import TinyTransformer, TinyTransformerConfig, tiny_transformer

__all__ = [
    "AVCNN",
    "AVConfig",
    "LaqMLP",
    "SmallCNN",
    "SmallCNNConfig",
    "SqueezeNetConfig",
    "SqueezeNetLMS",
    "TinyTransformer",
    "TinyTransformerConfig",
    "av_cnn",
    "laq_mlp",
    "small_cnn",
    "squeezenet_lms",
    "tiny_transformer",
]
