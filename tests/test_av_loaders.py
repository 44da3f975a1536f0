"""Audio-visual loaders (RAVDESS video, SAVEE clips, a folder of (video, label) pairs) and a video Record ->
model inputs (converters.data.av_clips), on real files written in tmp_path."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from av_media import (
    AAC_FRAME,
    AUDIO_SR,
    N_FRAMES,
    SIZE,
    ffmpeg_or_skip,
    mux,
    speech,
    write_speech,
    write_video,
)

from converters.data.av_clips import record_audio, record_clip, record_inputs
from converters.data.loaders import (
    LOADERS,
    load_dataset,
    load_ravdess,
    load_savee,
    load_video_folder,
)
from converters.data.records import Record
from converters.data.scan import DatasetWarning
from edge_ser.audio import load, resample
from edge_ser.errors import AudioFormatError, ConfigError, DatasetError
from edge_ser.inputs.av import AVInputSpec, clip_inputs
from edge_ser.vision.face import FaceCropper, FaceCropSpec
from edge_ser.vision.video import read_video, sample_frame_indices

SPEC = AVInputSpec()
SR = SPEC.feature_spec.sample_rate


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """One silent mp4 and avi of drawn faces and one speech WAV, copied into each layout under test."""
    d = tmp_path_factory.mktemp("media")
    return {
        "mp4": write_video(d / "faces.mp4"),
        "avi": write_video(d / "faces.avi", fourcc="MJPG"),
        "mov": write_video(d / "faces.mov"),
        "wav": write_speech(d / "speech.wav"),
    }


@pytest.fixture(scope="module")
def with_audio(media, tmp_path_factory):
    """The faces with the speech muxed in: mp4 (AAC) and avi (PCM)."""
    ffmpeg = ffmpeg_or_skip()
    d = tmp_path_factory.mktemp("muxed")
    return {
        "mp4": mux(ffmpeg, media["mp4"], media["wav"], d / "av.mp4", "aac"),
        "avi": mux(ffmpeg, media["avi"], media["wav"], d / "av.avi", "pcm_s16le"),
    }


def _place(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _load(loader, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = loader(*args, **kwargs)
    return records, [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]


# -------------------------------------------------------------------------------------------- RAVDESS
AUDIO_DIR = "Audio_Speech_Actors_01-24/Actor_01"
VIDEO_DIR = "Video_Speech_Actor_01/Actor_01"


def _ravdess_tree(root, media, av_mp4=None):
    """The real distribution's layout: the audio zip and the video zip unpacked side by side."""
    wav, mp4 = media["wav"], media["mp4"]
    _place(wav, root / AUDIO_DIR / "03-01-03-01-01-01-01.wav")
    _place(wav, root / AUDIO_DIR / "03-01-03-01-01-02-01.wav")  # repetition 02: pairs with nothing
    _place(wav, root / "Audio_Song_Actors_01-24/Actor_02/03-02-04-02-02-01-02.wav")
    _place(av_mp4 or mp4, root / VIDEO_DIR / "01-01-03-01-01-01-01.mp4")  # AV, has its WAV
    _place(mp4, root / VIDEO_DIR / "02-01-03-01-01-01-01.mp4")  # video-only, has its WAV
    _place(av_mp4 or mp4, root / VIDEO_DIR / "01-01-05-02-01-01-01.mp4")  # AV, no WAV: the mp4's track
    _place(mp4, root / VIDEO_DIR / "02-01-06-01-02-01-01.mp4")  # video-only, no WAV: no audio at all
    _place(mp4, root / "Video_Song_Actor_02/Actor_02/01-02-04-02-02-01-02.mp4")  # song, has its WAV
    _place(mp4, root / VIDEO_DIR / "01-01-05-01-01-01-02.mp4")  # actor 02 inside Actor_01: skipped
    return root


def test_ravdess_pairs_videos_with_their_speech_wav(tmp_path, media):
    root = _ravdess_tree(tmp_path / "RAVDESS", media)
    records, warned = _load(load_ravdess, root)
    assert len(records) == 8 and len(warned) == 1 and "actor 02 inside Actor_01" in warned[0]
    by_video = {r.video.name: r for r in records if r.video is not None}
    wav = root / AUDIO_DIR / "03-01-03-01-01-01-01.wav"
    for name in ("01-01-03-01-01-01-01.mp4", "02-01-03-01-01-01-01.mp4"):
        r = by_video[name]
        assert r.source == wav and r.get("audio") == "wav" and r.label == "happy" and r.speaker == "01"
    assert by_video["01-01-03-01-01-01-01.mp4"].get("modality") == "audio-video"
    assert by_video["02-01-03-01-01-01-01.mp4"].get("modality") == "video"
    container = by_video["01-01-05-02-01-01-01.mp4"]
    assert container.source == container.video and container.get("audio") == "container"
    assert container.label == "angry" and container.get("intensity") == "strong"
    silent = by_video["02-01-06-01-02-01-01.mp4"]
    assert silent.source == silent.video and silent.get("audio") == "none"
    assert silent.get("expected_audio") == "03-01-06-01-02-01-01.wav"
    song = by_video["01-02-04-02-02-01-02.mp4"]
    assert song.source.name == "03-02-04-02-02-01-02.wav" and song.get("vocal_channel") == "song"
    assert song.speaker == "02" and song.label == "sad"
    assert sum(r.video is None for r in records) == 3  # the WAVs themselves


def test_ravdess_require_audio_and_modalities(tmp_path, media):
    root = _ravdess_tree(tmp_path / "RAVDESS", media)
    records, warned = _load(load_ravdess, root, require_audio=True)
    assert len(records) == 7 and "02-01-06-01-02-01-01.mp4" not in {r.source.name for r in records}
    assert "skipped 2 file" in warned[0]
    assert "video-only clip without its audio 03-01-06-01-02-01-01.wav" in warned[0]
    videos, _ = _load(load_ravdess, root, modalities=["audio-video", "video"])
    assert len(videos) == 5 and all(r.video is not None for r in videos)
    audio, _ = _load(load_ravdess, root, modalities=["audio"])
    assert len(audio) == 3 and all(r.video is None and r.source.suffix == ".wav" for r in audio)
    with pytest.raises(ConfigError, match="modalities"):
        load_ravdess(root, modalities=["audio", "smell"])


def test_ravdess_clips_through_each_audio_path(tmp_path, media, with_audio):
    root = _ravdess_tree(tmp_path / "RAVDESS", media, av_mp4=with_audio["mp4"])
    records, _ = _load(load_ravdess, root)
    by_video = {r.video.name: r for r in records if r.video is not None}
    full = read_video(with_audio["mp4"]).frames
    want = sample_frame_indices(N_FRAMES, SPEC.frames)
    # AV clip with its WAV: audio from the WAV, frames from the mp4
    frames, y, sr = record_clip(by_video["01-01-03-01-01-01-01.mp4"], SPEC)
    assert sr == SR and frames.shape == (SPEC.frames, SIZE[1], SIZE[0], 3)
    assert np.array_equal(frames, full[want])
    assert np.array_equal(y, load(media["wav"], sr=SR)[0])
    # AV clip without a WAV: the mp4's AAC track through ffmpeg, resampled by edge_ser
    _, y, _ = record_clip(by_video["01-01-05-02-01-01-01.mp4"], SPEC)
    ref = resample(speech(), AUDIO_SR, SR)
    # AAC codes whole frames of 1024 samples: Debian's ffmpeg 5.1 keeps the last frame's padding (silence at
    # the end; 19,456 samples for 19,200), newer builds trim it by the mp4's edit list
    assert -0.005 * SR <= len(y) - len(ref) <= AAC_FRAME * SR / AUDIO_SR + 0.005 * SR
    n = min(len(y), len(ref))
    assert np.corrcoef(y[:n], ref[:n])[0, 1] > 0.995
    # video-only without a WAV: a clear error naming the file and the WAV it lacks
    silent = by_video["02-01-06-01-02-01-01.mp4"]
    with pytest.raises(AudioFormatError, match="03-01-06-01-02-01-01.wav") as err:
        record_clip(silent, SPEC)
    assert str(silent.video) in str(err.value)


def test_record_inputs_equal_the_full_decode_path(tmp_path, media, with_audio):
    root = _ravdess_tree(tmp_path / "RAVDESS", media, av_mp4=with_audio["mp4"])
    records, _ = _load(load_ravdess, root, modalities=["audio-video"])
    record = next(r for r in records if r.get("audio") == "container")
    cropper = FaceCropper(FaceCropSpec(size=SPEC.face_size))
    found = []

    def crop(frame):
        out = cropper.crop_or_center(frame)
        found.append(out.found)
        return out

    faces, audio = record_inputs(record, SPEC, crop)
    assert faces.shape == (6, 64, 64) and faces.dtype == np.float32 and 0 <= faces.min() <= faces.max() <= 1
    assert audio.shape == (6, 40) and np.isfinite(audio).all()
    assert sum(found) >= 5  # the Haar cascade finds the drawn faces in the decoded video
    # same as decoding every frame and every sample, then handing them to clip_inputs
    y = record_audio(record, SR)
    ref_faces, ref_audio = clip_inputs(list(read_video(record.video).frames), y, SR, SPEC)
    assert np.array_equal(faces, ref_faces) and np.array_equal(audio, ref_audio)
    # default crop = the shared Haar crop: same result
    faces2, _ = record_inputs(record, SPEC)
    assert np.array_equal(faces2, faces)
    with pytest.raises(ConfigError, match="has no video"):
        record_clip(Record(media["wav"], "happy", "01", "x", "h"), SPEC)


# ---------------------------------------------------------------------------------------------- SAVEE
def test_savee_clips_pair_with_audio_data(tmp_path, media):
    root = tmp_path / "SAVEE"
    wav, avi = media["wav"], media["avi"]
    for rel in ("AudioData/DC/a01.wav", "AudioData/DC/h02.wav", "AudioData/JE/sa03.wav"):
        _place(wav, root / rel)
    good = {
        "AudioVisualClips/DC/a1.avi": ("DC", "angry", "01", "AudioData/DC/a01.wav"),  # unpadded number
        "AudioVisualClips/DC/h02.avi": ("DC", "happy", "02", "AudioData/DC/h02.wav"),
        "AudioVisualClips/JE/su04.avi": ("JE", "surprise", "04", None),  # no WAV: the avi's own track
        "AudioVisualClips/KL_n10.avi": ("KL", "neutral", "10", None),  # flat name
    }
    for rel in good:
        _place(avi, root / rel)
    for bad in ("AudioVisualClips/XX/a01.avi", "AudioVisualClips/DC/z01.avi", "AudioVisualClips/DC/a123.avi"):
        _place(avi, root / bad)
    records, warned = _load(load_savee, root)
    assert len(records) == 3 + 4 and len(warned) == 1 and "skipped 3 file" in warned[0]
    clips = {r.video.relative_to(root).as_posix(): r for r in records if r.video is not None}
    assert set(clips) == set(good)
    for rel, (speaker, label, number, audio) in good.items():
        r = clips[rel]
        assert (r.speaker, r.label, r.get("number"), r.get("modality")) == (
            speaker,
            label,
            number,
            "audio-video",
        )
        assert r.source == (root / audio if audio else r.video)
        assert r.get("audio") == ("wav" if audio else "container")
    only_audio, _ = _load(load_savee, root, modalities=["audio"])
    assert len(only_audio) == 3 and all(r.video is None for r in only_audio)
    only_clips, _ = _load(load_savee, root, modalities=["audio-video"])
    assert len(only_clips) == 4
    with pytest.raises(ConfigError, match="modalities"):
        load_savee(root, modalities=["video"])


def test_savee_clip_audio_from_the_avi(tmp_path, with_audio):
    clip = _place(with_audio["avi"], tmp_path / "SAVEE/AudioVisualClips/JE/su04.avi")
    (record,) = load_savee(tmp_path / "SAVEE")
    assert record.source == clip and record.get("audio") == "container"
    frames, y, _ = record_clip(record, SPEC)
    ref = resample(speech(), AUDIO_SR, SR)
    assert frames.shape[0] == SPEC.frames and abs(len(y) - len(ref)) <= 0.005 * SR
    n = min(len(y), len(ref))
    assert np.abs(y[:n] - ref[:n]).max() < 1e-3  # PCM in the avi: lossless but for 16-bit rounding


# ------------------------------------------------------------------------------- folder of (video, label)
def test_video_folder_class_layout(tmp_path, media):
    root = tmp_path / "clips"
    _place(media["mp4"], root / "happy/s1_take.mp4")
    _place(media["wav"], root / "happy/s1_take.wav")  # the audio next to its video
    _place(media["avi"], root / "Anger/deep/s2-x.avi")
    _place(media["mov"], root / "whisper/a_1.mov")
    (root / "whisper/notes.txt").write_text("not a video")
    _place(media["mp4"], root / "stray.mp4")
    records, warned = _load(load_video_folder, root)
    got = [
        (r.video.relative_to(root).as_posix(), r.label, r.speaker, r.native_label, r.get("audio"))
        for r in records
    ]
    assert got == [
        ("Anger/deep/s2-x.avi", "angry", "s2", "Anger", "container"),
        ("happy/s1_take.mp4", "happy", "s1", "happy", "file"),
        ("whisper/a_1.mov", "whisper", "a", "whisper", "container"),
    ]
    assert records[1].source == root / "happy/s1_take.wav" and records[0].source == records[0].video
    assert all(r.dataset == "video_folder" for r in records)
    assert len(warned) == 2 and "stray.mp4" in warned[1]
    assert "every speaker id holds one class only" in warned[0]  # s1 happy, s2 angry, a whisper
    with pytest.warns(DatasetWarning, match="stray.mp4"):
        assert "video_folder" in LOADERS and load_dataset("video_folder", root) == records


def test_video_folder_csv(tmp_path, media):
    root = tmp_path / "csv"
    _place(media["mp4"], root / "v/a.mp4")
    _place(media["avi"], root / "v/spk9-b.avi")
    _place(media["mp4"], root / "v/c.mp4")
    _place(media["wav"], root / "w/c.wav")
    _place(media["mp4"], root / "sad/ignored.mp4")  # with a labels.csv, class folders are not scanned
    (root / "labels.csv").write_text(
        "\ufeffVideo,Label,Speaker,audio,notes\n"
        "v/a.mp4,Anger,spk1,,x\n"
        "v/spk9-b.avi,happy,,,\n"
        "\n"
        "v/c.mp4,sad,spk3,w/c.wav,\n"
    )
    records = load_video_folder(root)
    got = [(r.video.name, r.label, r.native_label, r.speaker, r.source.name) for r in records]
    assert got == [
        ("a.mp4", "angry", "Anger", "spk1", "a.mp4"),
        ("c.mp4", "sad", "sad", "spk3", "c.wav"),
        ("spk9-b.avi", "happy", "happy", "spk9", "spk9-b.avi"),
    ]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("video,label\nv/a.mp4,hapy\n", "line 2: label 'hapy' is not one of"),
        ("video,label\nv/a.mp4,happy\nv/missing.mp4,sad\n", "line 3: video 'v/missing.mp4' not found"),
        ("video,label\nw/a.wav,happy\n", "line 2: 'w/a.wav' is not a video"),
        ("video,label,audio\nv/a.mp4,happy,w/none.wav\n", "line 2: audio 'w/none.wav' not found"),
        ("video,label\nv/a.mp4,happy\nv/a.mp4,sad\n", "line 3: video 'v/a.mp4' already listed on line 2"),
        ("file,emotion\nv/a.mp4,happy\n", "needs a header row with columns video,label"),
        ("", "needs a header row"),
        ("video,label\n", "lists no videos"),
    ],
)
def test_video_folder_csv_errors(tmp_path, media, rows, message):
    _place(media["mp4"], tmp_path / "v/a.mp4")
    _place(media["wav"], tmp_path / "w/a.wav")
    (tmp_path / "labels.csv").write_text(rows)
    with pytest.raises(DatasetError, match=message) as err:
        load_video_folder(tmp_path)
    assert str(tmp_path / "labels.csv") in str(err.value)


def test_video_folder_missing_or_empty(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_video_folder(tmp_path / "nowhere")
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "a.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match="no valid files"):
        load_video_folder(tmp_path)
