"""The shared face crop (edge_ser.vision.face): a real photograph, no-face frames, input forms, bad inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edge_ser.errors import ConfigError, MissingDependencyError
from edge_ser.vision import FaceCropper, FaceCropSpec, center_box, to_grey
from edge_ser.vision.face import grow_box

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is the device extra; face crop needs it")

HAVE_CASCADE = hasattr(cv2, "CascadeClassifier") or hasattr(
    getattr(cv2, "xobjdetect", None), "CascadeClassifier"
)


@pytest.fixture(scope="module")
def cropper() -> FaceCropper:
    try:
        return FaceCropper()
    except (MissingDependencyError, ConfigError) as exc:  # OpenCV 5 wheels ship no Haar cascade
        pytest.skip(f"Haar face detection unavailable in this OpenCV {cv2.__version__}: {exc}")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    data = pytest.importorskip(
        "skimage.data", reason="scikit-image provides the bundled astronaut photograph"
    )
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # RGB -> BGR, 512x512


def _no_face_frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy = np.linspace(0, 1, 480)[:, None, None]
    sky, grass = np.array([230, 190, 120]), np.array([40, 140, 60])  # BGR
    land = np.where(yy < 0.55, sky * (1 - 0.4 * yy), grass * (1.3 - 0.5 * yy)) * np.ones((1, 640, 1))
    land = land + rng.normal(0, 3, land.shape)
    return {
        "noise": rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
        "flat": np.full((120, 160), 128, np.uint8),
        "landscape": np.clip(land, 0, 255).astype(np.uint8),
    }


def test_spec_round_trip_and_validation() -> None:
    spec = FaceCropSpec(size=48, detect_width=0, margin=0.2)
    assert FaceCropSpec.from_dict(spec.to_dict()) == spec
    assert FaceCropSpec().to_dict() == {
        "size": 64,
        "detect_width": 320,
        "scale_factor": 1.1,
        "min_neighbors": 5,
        "min_face": 0.15,
        "margin": 0.15,
        "equalize": True,
        "second_cascade": "",
    }
    for bad in (
        {"size": 4},
        {"detect_width": 20},
        {"scale_factor": 1.0},
        {"min_neighbors": -1},
        {"min_face": 1.0},
        {"margin": -0.1},
        {"equalize": 1},
        {"second_cascade": "../x.xml"},
        {"second_cascade": "alt2"},
        {"second_cascade": None},
    ):
        with pytest.raises(ConfigError):
            FaceCropSpec(**bad)
    with pytest.raises(ConfigError, match="unknown"):
        FaceCropSpec.from_dict({"size": 64, "colour": True})


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((10, 10), np.int16),
        np.zeros(100, np.uint8),
        np.zeros((2, 10, 10, 3), np.uint8),
        np.zeros((0, 10, 3), np.uint8),
        np.zeros((10, 10, 2), np.uint8),
        np.full((10, 10), 1.5, np.float32),
        np.full((10, 10), np.nan),
        [[0, 1], [2, 3]],
    ],
    ids=["int16", "1d", "4d", "empty", "2-channel", "float>1", "nan", "list"],
)
def test_bad_inputs_raise_config_error(frame) -> None:
    with pytest.raises(ConfigError) as info:
        to_grey(frame)
    if isinstance(frame, np.ndarray):
        assert str(frame.shape) in str(info.value)


def test_bad_inputs_through_the_cropper(cropper: FaceCropper) -> None:
    with pytest.raises(ConfigError, match=r"\(0, 10, 3\)"):
        cropper.crop(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ConfigError, match="int32"):
        cropper.crop_or_center(np.zeros((20, 20), np.int32))


def test_missing_or_empty_cascade_file(tmp_path) -> None:
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    malformed = tmp_path / "malformed.xml"
    malformed.write_text('<?xml version="1.0"?><opencv_storage><x/></opencv_storage>')
    for path in (tmp_path / "missing.xml", empty, malformed):
        if HAVE_CASCADE:
            with pytest.raises(ConfigError, match=str(path)):
                FaceCropper(cascade_path=path)
        else:
            with pytest.raises(MissingDependencyError, match="CascadeClassifier"):
                FaceCropper(cascade_path=path)


def test_grow_box_stays_square_inside_the_frame() -> None:
    assert grow_box((100, 100, 40, 40), 0.25, 480, 640) == (90, 90, 60, 60)
    assert grow_box((0, 2, 40, 40), 0.25, 480, 640) == (0, 0, 60, 60)  # shifted, not padded
    assert grow_box((600, 440, 40, 40), 0.25, 480, 640) == (580, 420, 60, 60)
    assert grow_box((10, 10, 100, 100), 0.5, 120, 160) == (0, 0, 120, 120)  # larger than the frame: clipped
    assert center_box(480, 640) == (80, 0, 480, 480)
    assert center_box(300, 200) == (0, 50, 200, 200)


def test_astronaut_face(cropper: FaceCropper, astronaut: np.ndarray) -> None:
    faces = cropper.detect(astronaut)
    assert len(faces) == 1
    crop = cropper.crop(astronaut)
    assert crop is not None and crop.found and crop.neighbors >= 10
    x, y, w, h = crop.box  # measured: (174, 64, 100, 99), centre (224, 114)
    assert 190 <= x + w / 2 <= 260 and 80 <= y + h / 2 <= 150 and 70 <= w <= 140
    cx, cy, cw, ch = crop.crop_box
    assert cw == ch and cx <= x and cy <= y and cx + cw >= x + w and cy + ch >= y + h
    assert cx >= 0 and cy >= 0 and cx + cw <= 512 and cy + ch <= 512
    assert crop.image.shape == (64, 64) and crop.image.dtype == np.uint8
    assert crop.image.min() <= 10 and crop.image.max() >= 245  # equalised: full range, flat histogram
    assert 100 <= crop.image.mean() <= 155
    assert np.array_equal(cropper.crop_or_center(astronaut).image, crop.image)


def test_second_cascade_runs_only_when_the_first_finds_nothing(
    cropper: FaceCropper, astronaut: np.ndarray, tmp_path
) -> None:
    import shutil

    from edge_ser.vision.face import CASCADE_FILE

    folder = os.path.dirname(cropper.cascade_path)
    for name in ("haarcascade_frontalcatface.xml", CASCADE_FILE):
        shutil.copy(os.path.join(folder, name), tmp_path / name)
    cat = tmp_path / "haarcascade_frontalcatface.xml"  # a first cascade that finds no human face here
    assert FaceCropper(cascade_path=cat).crop(astronaut) is None
    both = FaceCropper(FaceCropSpec(second_cascade=CASCADE_FILE), cascade_path=cat)
    crop = both.crop(astronaut)
    assert crop is not None and np.array_equal(crop.image, cropper.crop(astronaut).image)
    with pytest.raises(ConfigError, match="haarcascade_frontalface_alt2.xml"):
        FaceCropper(FaceCropSpec(second_cascade="haarcascade_frontalface_alt2.xml"), cascade_path=cat)


def test_input_forms_give_the_same_crop(cropper: FaceCropper, astronaut: np.ndarray) -> None:
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    ref = cropper.crop(astronaut)
    forms = [
        grey,
        grey[:, :, None],
        astronaut.astype(np.float32) / 255,
        grey.astype(np.float64) / 255,
        cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA),
    ]
    for frame in forms:
        out = cropper.crop(frame)
        assert out is not None and out.box == ref.box and np.array_equal(out.image, ref.image)


def test_face_at_the_border_is_shifted_not_padded(cropper: FaceCropper, astronaut: np.ndarray) -> None:
    frame = np.ascontiguousarray(astronaut[66:, 176:])  # face box starts ~2 px from the top-left corner
    crop = cropper.crop(frame)
    assert crop is not None
    x, y, w, h = crop.crop_box
    assert x == 0 and y == 0 and w == h and w > crop.box[2]


def test_detect_width_downscale_finds_the_same_face(astronaut: np.ndarray) -> None:
    try:
        fast, full = FaceCropper(FaceCropSpec(detect_width=256)), FaceCropper(FaceCropSpec(detect_width=0))
    except (MissingDependencyError, ConfigError) as exc:
        pytest.skip(f"Haar face detection unavailable: {exc}")
    a, b = fast.crop(astronaut).box, full.crop(astronaut).box
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    assert ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy) > 0.7


@pytest.mark.parametrize("name", ["noise", "flat", "landscape"])
def test_no_face_gives_none_and_the_centre_fallback(cropper: FaceCropper, name: str) -> None:
    frame = _no_face_frames()[name]
    assert cropper.crop(frame) is None
    out = cropper.crop_or_center(frame)
    assert not out.found and out.box is None and out.neighbors is None
    h, w = frame.shape[:2]
    assert out.crop_box == center_box(h, w)
    x, y, s, _ = out.crop_box
    grey = to_grey(frame)[y : y + s, x : x + s]
    expected = cv2.equalizeHist(
        cv2.resize(np.ascontiguousarray(grey), (64, 64), interpolation=cv2.INTER_AREA)
    )
    assert out.image.shape == (64, 64) and np.array_equal(out.image, expected)
