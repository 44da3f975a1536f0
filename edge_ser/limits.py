"""Every size limit a bundle is held to, in one place (documented, value by value, in docs/bundle.md).

They are chosen so that the largest bundle that loads still runs on a Raspberry Pi 4 with 1 GB of RAM: the
bundle is held in memory once (at most `MAX_TOTAL_BYTES`), its weights once more as float32 (at most
`MAX_WEIGHT_VALUES` values), and the front end's largest array (one window's spectrogram) stays in the tens
of MB. A manifest value beyond a limit is a `BundleError` naming the field, raised at load time, before any
file but the manifest is read, so `edge-ser info` refuses what `predict` could not run.
"""

from __future__ import annotations

# -- the files --------------------------------------------------------------------------------------------------
MAX_MANIFEST_BYTES = 4 << 20
"""manifest.json (the shipped ones are 7-47 KB; a 2,000-value normalization adds ~50 KB)."""
MAX_FILE_BYTES = 64 << 20
"""Any other file of a bundle."""
MAX_TOTAL_BYTES = 128 << 20
"""All files of a bundle together (they are held in memory)."""
MAX_FILES = 32
"""Entries of the manifest's `files` (a bundle has 2 to 5)."""
MAX_TAR_MEMBERS = MAX_FILES + 4
"""Members of a `.tar` bundle: the listed files, the manifest, its checksum, SHA256SUMS and the "." entry."""
MAX_WEIGHT_VALUES = 32 << 20
"""Weights of one bundle (128 MiB as float32: a 1-bit weights file of 4 MiB already holds 32 M values)."""

# -- the manifest ----------------------------------------------------------------------------------------------
MAX_LABELS = 1000
MAX_LABEL_CHARS = 100
MAX_NAME_CHARS = 200
"""Model and tensor names."""
MAX_LAYERS = 4096
"""Entries of `layers` and of `bitplan.bits`."""
MAX_MODEL_IO = 64
"""Entries of `model.inputs` and of `model.outputs` (a model may expose intermediate tensors as outputs)."""
MAX_INPUT_VALUES = 1 << 22
"""Values of one row of one model input (16 MiB as float32)."""
MAX_NORMALIZATION_VALUES = 1 << 20

# -- the audio front ends (FeatureSpec, LMSSpec) ---------------------------------------------------------------
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 192_000
MAX_N_FFT = 16384
"""FFT size and window length in samples (0.34 s at 48 kHz)."""
MAX_HOP = 16384
MAX_N_MELS = 512
MAX_CHROMA = 96
MAX_SPECTRUM_RATE = 2_000_000
"""STFT values per second of audio, (sample_rate / hop_length) * (n_fft // 2 + 1): 16 MB of complex64 per
second. The shipped specs need 44 k (180-d vector) to 64 k (log-Mel patches); hop_length 1 with n_fft 16384
would need 361 M (5.4 GiB for one 1-s window)."""
MAX_TOP_DB = 300.0
MAX_LIFTER = 1000.0

# -- input kinds -----------------------------------------------------------------------------------------------
MAX_SEGMENT_FRAMES = 4096
"""Frames per log-Mel patch (and between patch starts)."""
MAX_PATCH_VALUES = 1 << 20
MAX_FACE_FRAMES = 64
MAX_AUDIO_SEGMENTS = 64
MIN_FACE_SIZE, MAX_FACE_SIZE = 8, 256


def spectrum_rate(sample_rate: float, hop_length: int, n_fft: int) -> float:
    """STFT values per second of audio for a front end (compared with MAX_SPECTRUM_RATE)."""
    return sample_rate / hop_length * (n_fft // 2 + 1)


# -- images and video frames ------------------------------------------------------------------------------------
MAX_IMAGE_PIXELS = 50_000_000
"""Pixels (width x height) of an image file or a video frame that a face bundle decodes: 50 MP, an 8160x6120
full-resolution phone photo, 6x a 4K frame. The size is read from the file's header before decoding
(`edge_ser.vision.image.image_size`), because a decoded image takes 3 bytes a pixel and the decoder's buffers
more: a 394 KB PNG of 20000x20000 (400 MP) took 2.4 GB and a 10000x10000 JPEG 680 MB, past a 1-2 GB Pi, or
crashed with OpenCV's "Insufficient memory". At this limit a BGR image is 150 MB."""
