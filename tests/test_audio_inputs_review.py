"""Audio inputs as a user review found them in real files: RF64 / BW64 WAVs, WAVs whose recorder never finished
the header (or cut mid-frame), audio-only containers (M4A, AAC, MKA, WebM audio) and anti-phase stereo."""

from __future__ import annotations

import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from converters.data.scan import audio_problem
from edge_ser.audio import load, write_wav
from edge_ser.audio.stream import file_windows, open_blocks
from edge_ser.errors import AudioFormatError, InputWarning
from tests.av_media import ffmpeg_or_skip

SR = 16000


def _tone(seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 530 * t)).astype(np.float32)


def _stereo_wav(path: Path) -> tuple[Path, np.ndarray]:
    y = np.stack([_tone(), 0.5 * _tone()], axis=1)
    write_wav(path, y, SR)
    return path, load(path, mono=False)[0]


def _streamed(path: Path) -> np.ndarray:
    with open_blocks(path, frames=1000) as s:
        return np.concatenate(list(s))


# ------------------------------------------------------------------------------------------- 1. RF64 / BW64
def _as_rf64(wav: bytes, form: bytes = b"RF64") -> bytes:
    """A PCM WAV's bytes rewritten as RF64 / BW64 by hand: 32-bit sizes 0xFFFFFFFF, the real ones in 'ds64'."""
    assert wav[:4] == b"RIFF"
    chunks, pos, data = [], 12, b""
    while pos + 8 <= len(wav):
        cid, n = wav[pos : pos + 4], struct.unpack("<I", wav[pos + 4 : pos + 8])[0]
        body = wav[pos + 8 : pos + 8 + n]
        if cid == b"data":
            data = body
        else:
            chunks.append(cid + struct.pack("<I", n) + body + b"\0" * (n & 1))
        pos += 8 + n + (n & 1)
    ds64 = b"ds64" + struct.pack("<I", 28) + struct.pack("<QQQI", 0, len(data), 0, 0)
    body = b"WAVE" + ds64 + b"".join(chunks) + b"data" + b"\xff\xff\xff\xff" + data
    return form + b"\xff\xff\xff\xff" + body


@pytest.mark.parametrize("form", [b"RF64", b"BW64"])
def test_rf64_and_bw64_are_read_by_every_path(tmp_path, form):
    """They were refused as 'not a WAV file (looks like an RF64 file, which is not supported)'; now the WAV reader
    takes the sizes from the 'ds64' chunk (libsndfile 1.2 reads RF64 but not BW64): load, the stream and the data
    set scan read the samples of the RIFF original."""
    src, ref = _stereo_wav(tmp_path / "ok.wav")
    path = tmp_path / "big.wav"
    path.write_bytes(_as_rf64(src.read_bytes(), form))
    y, sr = load(path, mono=False)
    assert sr == SR and np.array_equal(y, ref)
    np.testing.assert_array_equal(_streamed(path), load(path)[0])
    assert audio_problem(path) is None


def test_an_rf64_file_written_by_ffmpeg(tmp_path):
    ffmpeg = ffmpeg_or_skip()
    src, ref = _stereo_wav(tmp_path / "ok.wav")
    path = tmp_path / "r.wav"
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(src), "-rf64", "always", str(path)], check=True)
    assert path.read_bytes()[:4] == b"RF64"
    y, sr = load(path, mono=False)
    assert sr == SR and np.array_equal(y, ref)
    np.testing.assert_array_equal(_streamed(path), load(path)[0])
    assert audio_problem(path) is None


# ------------------------------------------------------------------------------- 2. WAVs cut short or unfinished
def _review_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, InputWarning)]


def _pcm_wav(channels: int, data: bytes, declared: int | None = None, riff_size: int | None = None) -> bytes:
    block = 2 * channels
    fmt = struct.pack("<HHIIHH", 1, channels, 44100, 44100 * block, block, 16)
    size = len(data) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


_SAMPLES = (np.sin(np.arange(44100 * 2) * 0.03) * 12000).astype(
    "<i2"
)  # 1 s of stereo (or 2 s of mono) 16-bit
CUT = {
    # arecord killed before it wrote the sizes: 88200 bytes of audio under a 0x7FFFFFFF / 0x80000000 placeholder
    "arecord 0x7FFFFFFF": (
        1,
        _SAMPLES[:44100].tobytes(),
        0x7FFFFFFF,
        0x7FFFFFFF + 36,
        "unfinished header",
        44100,
    ),
    "placeholder 0x80000000": (1, _SAMPLES[:44100].tobytes(), 0x80000000, None, "0x80000000", 44100),
    "cut by one byte mid-frame": (
        2,
        _SAMPLES.tobytes()[:-1],
        len(_SAMPLES) * 2,
        None,
        "partial trailing",
        44099,
    ),
    "odd trailing byte": (1, _SAMPLES[:30000].tobytes() + b"\x01", None, None, "1 of 2 bytes", 30000),
    "cut in half": (1, _SAMPLES[:22050].tobytes(), 88200, None, "declares 88200 bytes but only 44100", 22050),
}


@pytest.mark.parametrize("case", sorted(CUT))
def test_a_wav_cut_short_gives_its_complete_frames_with_one_warning(tmp_path, case):
    """Refused before ('truncated data ... declares 2147483647 bytes but only 88200 are present'); libsndfile reads
    the complete frames, and so does every path now: load, the block stream (long files, `run --audio-file`) and
    the data set scan, with one InputWarning naming the file and what was wrong."""
    channels, data, declared, riff_size, phrase, frames = CUT[case]
    path = tmp_path / "rec.wav"
    path.write_bytes(_pcm_wav(channels, data, declared, riff_size))
    whole = _SAMPLES[: frames * channels].reshape(frames, channels).astype(np.float32) / 32768
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y, sr = load(path, mono=False)
    said = _review_warnings(caught)
    assert len(said) == 1 and str(path) in said[0] and phrase in said[0], said
    assert f"read the {frames} complete frames" in said[0]
    assert sr == 44100 and np.array_equal(y, whole)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        streamed = _streamed(path)
        long = list(file_windows(path, 44100, window_seconds=0.1, long_seconds=0.2))  # the long-file reader
    assert len(_review_warnings(caught)) == 2  # one per opening
    np.testing.assert_array_equal(streamed, y.mean(axis=1, dtype=np.float32) if channels > 1 else y[:, 0])
    assert not long[0].whole and sum(w.samples.size for w in long) == frames
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)  # the scan opens the file quietly: decoding warns
        assert audio_problem(path) is None
    sf = pytest.importorskip("soundfile")
    np.testing.assert_array_equal(y, sf.read(str(path), dtype="float32", always_2d=True)[0])


def test_a_wav_with_no_complete_frame_is_still_refused(tmp_path):
    path = tmp_path / "stub.wav"
    path.write_bytes(_pcm_wav(2, b"\0\0\0", 0x7FFFFFFF))
    with pytest.raises(
        AudioFormatError, match=r"stub.wav: unfinished header.*partial trailing frame.*no complete"
    ):
        load(path)
    with pytest.raises(AudioFormatError, match="stub.wav: unfinished header"):
        open_blocks(path)
    assert "no complete frame" in audio_problem(path)


# ------------------------------------------------------------------------ 3. audio-only containers (M4A, AAC...)
CONTAINERS = {  # extension: ffmpeg output options
    ".m4a": [],  # AAC in MP4: the default of phone voice recorders
    ".aac": ["-f", "adts"],
    ".mka": [],
    ".weba": ["-c:a", "libopus", "-f", "webm"],  # a browser's MediaRecorder
}


def _encode(ffmpeg: str, src: Path, out: Path, options: list[str]) -> Path:
    r = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(src), *options, str(out)], capture_output=True, check=False
    )
    if r.returncode != 0:
        pytest.skip(f"this ffmpeg cannot write {out.suffix}: {r.stderr.decode()[-300:]}")
    return out


@pytest.mark.parametrize("ext", sorted(CONTAINERS))
def test_audio_only_containers_are_read_through_ffmpeg(tmp_path, ext):
    """'Format not recognised' from soundfile before, though the same bytes named .mp4 were read: load, the block
    stream and the data set scan read them through ffmpeg, and a folder or data set lists them."""
    from edge_ser.cli.common import media_files
    from edge_ser.inputs.base import AUDIO_EXTENSIONS

    ffmpeg = ffmpeg_or_skip()
    src, _ = _stereo_wav(tmp_path / "ok.wav")
    path = _encode(ffmpeg, src, tmp_path / f"voice{ext}", CONTAINERS[ext])
    assert ext in AUDIO_EXTENSIONS and media_files([tmp_path]) == sorted([src, path])
    ref, _ = load(src, sr=16000)
    y, sr = load(path, sr=16000)
    assert sr == 16000 and abs(y.size - ref.size) < 2500  # the codec pads its frames
    assert 0.05 < float(np.sqrt(np.mean(y**2))) < 0.5  # the tone, not silence
    assert load(path, mono=False)[0].ndim == 2
    with open_blocks(path) as s:
        assert sum(b.size for b in s) == load(path)[0].size
    assert audio_problem(path) is None


def test_an_m4a_without_ffmpeg_says_to_install_it(tmp_path, monkeypatch):
    from edge_ser.audio import container

    path = tmp_path / "memo.m4a"
    path.write_bytes(b"\0\0\0\x20ftypM4A " + bytes(64))
    monkeypatch.delenv(container.FFMPEG_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    for read in (load, open_blocks):
        with pytest.raises(container.FFmpegNotFoundError, match=r"memo.m4a: .*apt-get install ffmpeg"):
            read(path)


def test_ogg_opus_voice_notes_are_listed_and_read(tmp_path):
    """WhatsApp / Telegram voice notes (.opus, .oga: Opus in Ogg) are read by soundfile, and listed now."""
    from edge_ser.inputs.base import AUDIO_EXTENSIONS

    sf = pytest.importorskip("soundfile")
    path = tmp_path / "note.opus"
    try:
        sf.write(str(path), _tone(), SR, format="OGG", subtype="OPUS")
    except (RuntimeError, ValueError, TypeError) as e:  # a libsndfile without Opus
        pytest.skip(f"this libsndfile cannot write Opus: {e}")
    assert {".opus", ".oga"} <= set(AUDIO_EXTENSIONS)
    y, sr = load(path)
    assert y.size > 0 and audio_problem(path) is None


# ----------------------------------------------------------------------------------------- 4. anti-phase stereo
def _anti_phase(seconds: float = 2.0) -> np.ndarray:
    y = np.tile(_tone(0.5), int(seconds * 2))
    return np.stack([y, -y], axis=1)


def test_anti_phase_stereo_takes_the_loudest_channel_with_one_warning(tmp_path):
    """Averaged to zeros before ('every hop was digital silence: the input is muted'): load and the block stream
    take the loudest channel and warn once, naming the file; channels that do not cancel are still averaged."""
    st = _anti_phase()
    path = write_wav(tmp_path / "wired.wav", st, SR, "FLOAT")
    flac = tmp_path / "wired.flac"
    sf = pytest.importorskip("soundfile")
    sf.write(str(flac), st, SR, subtype="PCM_24")
    for p in (path, flac):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y, _ = load(p)
            with open_blocks(p, frames=1000) as s:  # 32 blocks, one warning
                blocks = np.concatenate(list(s))
        said = _review_warnings(caught)
        assert len(said) == 2 and all(str(p) in m and "channels cancel" in m for m in said), said
        assert "wiring or phase fault" in said[0]
        assert np.sqrt(np.mean(y**2)) > 0.1 and np.array_equal(blocks, y)
        np.testing.assert_allclose(y, load(p, mono=False)[0][:, 0], atol=1e-6)
    # a quieter right channel, or a one-sided recording: the mean as before, no warning
    normal = write_wav(tmp_path / "normal.wav", np.stack([st[:, 0], 0.5 * st[:, 0]], axis=1), SR, "FLOAT")
    one_sided = write_wav(tmp_path / "left.wav", np.stack([st[:, 0], 0 * st[:, 0]], axis=1), SR, "FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        for p in (normal, one_sided):
            both = load(p, mono=False)[0]
            assert np.array_equal(load(p)[0], both.mean(axis=1, dtype=np.float32))
            assert np.array_equal(_streamed(p), load(p)[0])


def test_anti_phase_stereo_in_a_container_takes_the_same_down_mix(tmp_path):
    """ffmpeg down-mixed a container's channels itself (`-ac 1`), to zeros for anti-phase stereo: it now hands
    every channel over, and load and the stream use the one down-mix; ordinary stereo still gives the mean."""
    ffmpeg = ffmpeg_or_skip()
    src = write_wav(tmp_path / "wired.wav", _anti_phase(), SR)
    path = _encode(ffmpeg, src, tmp_path / "wired.mka", ["-c:a", "flac"])  # lossless: the samples themselves
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y, sr = load(path)
        streamed = _streamed(path)
    said = _review_warnings(caught)
    assert len(said) == 2 and all(str(path) in m and "channels cancel" in m for m in said), said
    assert sr == SR and np.array_equal(y, load(src, mono=False)[0][:, 0]) and np.array_equal(streamed, y)
    normal, ref = _stereo_wav(tmp_path / "normal.wav")
    mka = _encode(ffmpeg, normal, tmp_path / "normal.mka", ["-c:a", "flac"])
    assert load(mka, mono=False)[0].shape == ref.shape
    np.testing.assert_array_equal(load(mka)[0], ref.mean(axis=1, dtype=np.float32))


def test_a_session_pushed_anti_phase_chunks_hears_the_voice():
    """The session's pushed [n, 2] chunks go through the same down-mix: one warning for the session (not one a
    chunk) naming the input, and the voice is heard rather than digital silence."""
    import edge_ser
    from edge_ser.live.session import mono_float

    voice = 0.3 * _anti_phase(3.0)
    with pytest.warns(InputWarning, match="predict: the 2 channels cancel"):
        assert np.array_equal(mono_float(voice, "predict"), voice[:, 0])
    rec = edge_ser.Recognizer(
        Path(__file__).resolve().parents[1] / "bundles" / "ser_emodb", "numpy", adapt=False
    )
    session = rec.session(sr=SR)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [r for i in range(0, len(voice), 1600) for r in session.push(voice[i : i + 1600])]
    said = _review_warnings(caught)
    assert len(said) == 1 and "the input" in said[0] and "channels cancel" in said[0], said
    assert results and all(r.level_db > -40 for r in results)


def test_a_text_file_named_mp3_is_said_to_hold_no_mp3_audio(tmp_path):
    """libsndfile says "File does not exist or is not a regular file (possibly a pipe?)" of any MP3 it cannot
    parse; a text file named .mp3 in a folder of recordings was reported that way by `edge-ser data`, `predict`
    and the block stream, though the file is there."""
    pytest.importorskip("soundfile")
    path = tmp_path / "spk08_take1.mp3"
    path.write_text("not a recording\n" * 50)
    problem = audio_problem(path)
    assert problem is not None and "does not exist" not in problem and "not MP3 audio" in problem
    for read in (load, open_blocks):
        with pytest.raises(
            AudioFormatError, match=r"spk08_take1.mp3: cannot decode audio: .*not MP3 audio"
        ) as e:
            read(path)
        assert "does not exist" not in str(e.value)
