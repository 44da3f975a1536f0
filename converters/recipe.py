"""The host's default analysis recipe: the feature settings `edge-ser train/laq/features`, `prepare` and the
benchmark tables use when no `--spec` is given.

16 kHz with the mel bank up to 7.2 kHz (`DEFAULT_FMAX`), because that is the band our corpora fill (EMODB is recorded at 16 kHz,
the RAVDESS copy in ../shared too): at 22.05 kHz the bands above 8 kHz are empty in training, their
standardisation divides by ~1e-5 and a full-band microphone then produces inputs in the thousands (issue 17).
The clip's DC is removed and its level set to -26 dBFS (`edge_ser.features.condition`), so a clip recorded
20 dB quieter or with an offset gives the same features. The device reads all of this from the bundle, so
old bundles (22.05 kHz, unconditioned) keep working unchanged: `FeatureSpec()`'s own defaults are those of
the bundles made before this recipe and must not change.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge_ser.audio.polyphase import QUALITIES
from edge_ser.features import FeatureSpec

DEFAULT_RATE = 16000
"""Analysis rate (Hz) of the default recipe."""
DEFAULT_FMAX = QUALITIES["hq"].passband * DEFAULT_RATE / 2
"""Upper mel edge (7.2 kHz): the device's resampler is flat to 90 % of the output Nyquist, so a recording at
any rate >= 16 kHz reaches the mel bank with the same spectrum below this edge as a native 16 kHz one; above
it a resampled recording is attenuated and a native one is not."""
DEFAULT_LEVEL_DBFS = -26.0
"""RMS level every clip is scaled to before analysis (ITU-T P.56's nominal speech level)."""

DEFAULT_SPEC = FeatureSpec(
    sample_rate=DEFAULT_RATE, fmax=DEFAULT_FMAX, remove_dc=True, level_dbfs=DEFAULT_LEVEL_DBFS
)
"""The clip-vector recipe (180-d: MFCC 40, chroma 12, mel 128) at 16 kHz, mel 0-7.2 kHz, DC removed, level
-26 dBFS."""

DEFAULT_CONDITIONING = {"remove_dc": True, "level_dbfs": DEFAULT_LEVEL_DBFS}
"""The conditioning part of the recipe, for specs that are not a FeatureSpec (log-Mel patches, AV segments)."""


def default_av_spec():
    """The AV input spec of the default recipe: the AV model's MFCC segments with the recipe's band edge and
    conditioning."""
    import dataclasses

    from edge_ser.inputs.av import AVInputSpec, av_feature_spec

    return AVInputSpec(
        feature_spec=dataclasses.replace(av_feature_spec(), fmax=DEFAULT_FMAX, **DEFAULT_CONDITIONING)
    )


def load_spec(path: str | os.PathLike | None) -> FeatureSpec:
    """The FeatureSpec in a JSON file (`--spec`), or the default recipe when no file is named."""
    from edge_ser.errors import ConfigError

    if path is None:
        return DEFAULT_SPEC
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read FeatureSpec file: {getattr(e, 'strerror', None) or e}") from e
    try:
        return FeatureSpec.from_json(text)
    except ConfigError as e:  # the message names the file: "FeatureSpec JSON is not valid" said which not
        raise ConfigError(f"{path}: {e}") from None
