"""Audio features in numpy only: librosa-compatible STFT, mel, log-mel, MFCC and chroma, the LAQ paper's
180-d clip vector, and a streaming extractor that yields the same frames as the batch functions.

Names and keyword arguments follow librosa 0.11 (`mfcc(y=..., sr=..., n_mfcc=...)`), so one can be swapped
for the other; tests check the values against librosa (see tests/test_features_parity.py for tolerances).
"""

from edge_ser.features.files import file_vector
from edge_ser.features.filters import (
    chroma as chroma_filter,
)
from edge_ser.features.filters import (
    dct_matrix,
    fft_frequencies,
    hz_to_mel,
    mel_frequencies,
    mel_to_hz,
)
from edge_ser.features.filters import (
    mel as mel_filter,
)
from edge_ser.features.speaker_norm import SpeakerNorm
from edge_ser.features.spec import FeatureSpec
from edge_ser.features.spectral import (
    amplitude_to_db,
    check_audio,
    chroma_stft,
    frame,
    log_mel,
    melspectrogram,
    mfcc,
    power_to_db,
    stft,
)
from edge_ser.features.streaming import StreamingFeatures
from edge_ser.features.vector import (
    feature_frames,
    feature_vector,
    frame_features,
    vector_from_frames,
)

__all__ = [
    "FeatureSpec",
    "SpeakerNorm",
    "StreamingFeatures",
    "amplitude_to_db",
    "check_audio",
    "chroma_filter",
    "chroma_stft",
    "dct_matrix",
    "feature_frames",
    "feature_vector",
    "fft_frequencies",
    "file_vector",
    "frame",
    "frame_features",
    "hz_to_mel",
    "log_mel",
    "mel_filter",
    "mel_frequencies",
    "mel_to_hz",
    "melspectrogram",
    "mfcc",
    "power_to_db",
    "stft",
    "vector_from_frames",
]
