"""Finding and reading participant photos (real files written with Pillow, no mocks)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bids_app.photos import (
    PHOTO_EXTENSIONS,
    PhotoError,
    default_photos_dir,
    find_photos,
    read_photo,
)


def _assert_rgb8(array: np.ndarray, shape: tuple[int, int]) -> None:
    assert isinstance(array, np.ndarray)
    assert array.dtype == np.uint8
    assert array.shape == (*shape, 3)
    assert array.flags["C_CONTIGUOUS"]


# --------------------------------------------------------------------------- find_photos


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def photo_tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for rel in (
        "sub-01/front.jpg",
        "sub-01/side.JPEG",
        "sub-01/notes.txt",
        "sub-01/.hidden.jpg",
        "sub-01/ses-1/a.png",
        "sub-01/ses-1/b.Jpg",
        "sub-01/ses-2/c.jpeg",
        "sub-01/other/d.jpg",  # not a session folder
        "sub-02/e.png",
        "sub-010/f.jpg",
    ):
        _touch(root / rel)
    (root / "sub-01" / "folder.jpg").mkdir()  # a folder, not a photo
    return root


def test_extensions() -> None:
    assert PHOTO_EXTENSIONS == (".jpg", ".jpeg", ".png")


def test_find_photos_all_sessions(photo_tree: Path) -> None:
    found = find_photos(photo_tree, "01")
    rel = [p.relative_to(photo_tree).as_posix() for p in found]
    assert rel == [
        "sub-01/front.jpg",
        "sub-01/ses-1/a.png",
        "sub-01/ses-1/b.Jpg",
        "sub-01/ses-2/c.jpeg",
        "sub-01/side.JPEG",
    ]
    assert found == sorted(found)
    assert find_photos(photo_tree, "sub-01") == found  # prefix accepted


def test_find_photos_one_session(photo_tree: Path) -> None:
    rel = [p.relative_to(photo_tree).as_posix() for p in find_photos(photo_tree, "01", "1")]
    assert rel == ["sub-01/ses-1/a.png", "sub-01/ses-1/b.Jpg"]
    assert find_photos(photo_tree, "01", "ses-2") == [photo_tree / "sub-01/ses-2/c.jpeg"]
    assert find_photos(photo_tree, "01", "3") == []


def test_find_photos_missing(photo_tree: Path, tmp_path: Path) -> None:
    assert find_photos(photo_tree, "99") == []
    assert find_photos(tmp_path / "nowhere", "01") == []
    assert find_photos(photo_tree, "02") == [photo_tree / "sub-02/e.png"]


def test_default_photos_dir(tmp_path: Path) -> None:
    bids = tmp_path / "bids"
    bids.mkdir()
    assert default_photos_dir(bids) is None
    (bids / "sourcedata" / "photos").mkdir(parents=True)
    assert default_photos_dir(bids) == bids / "sourcedata" / "photos"
    (bids / "derivatives" / "photos").mkdir(parents=True)
    assert default_photos_dir(bids) == bids / "derivatives" / "photos"


# --------------------------------------------------------------------------- read_photo


def test_plain_jpeg_and_png(tmp_path: Path, astronaut: np.ndarray) -> None:
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_photo(tmp_path / "a.png"), astronaut)
    Image.fromarray(astronaut).save(tmp_path / "a.jpg", quality=95)
    out = read_photo(str(tmp_path / "a.jpg"))
    _assert_rgb8(out, (512, 512))
    assert np.abs(out.astype(int) - astronaut).mean() < 5


def test_exif_orientation(tmp_path: Path, astronaut: np.ndarray) -> None:
    """Orientation 6: the camera stored the picture turned; viewers rotate it 90° clockwise."""
    from bids_app.face import load_face_model

    tall = astronaut[:, 64:448]  # 512 x 384, so that a wrong rotation shows in the shape
    stored = Image.fromarray(tall).transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    assert Image.open(path).size == (512, 384)  # stored sideways

    out = read_photo(path)
    _assert_rgb8(out, (512, 384))
    assert np.abs(out.astype(int) - tall).mean() < 5
    model = load_face_model("sface")
    dets = model.detect(out)
    assert len(dets) == 1 and dets[0].score > 0.8
    lmk = dets[0].landmarks
    assert lmk[:2, 1].max() < lmk[3:, 1].min()  # eyes above mouth: upright


def test_rgba_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:, :10, 3] = 0  # left half transparent
    rgba[:, 10:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_photo(tmp_path / "a.png")
    _assert_rgb8(out, (10, 20))
    assert (out[:, :10] == 255).all()  # white
    assert (out[:, 10:] == [255, 0, 0]).all()


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (8, 8), 0)
    im.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    im.info["transparency"] = 0
    im.paste(1, (4, 0, 8, 8))
    im.save(tmp_path / "p.png", transparency=0)
    out = read_photo(tmp_path / "p.png")
    _assert_rgb8(out, (8, 8))
    assert (out[:, :4] == 255).all() and (out[:, 4:] == [0, 255, 0]).all()


def test_greyscale(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (5, 1))
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    out = read_photo(tmp_path / "g.png")
    _assert_rgb8(out, grey.shape)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_16bit_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64).astype(np.uint16).reshape(4, 16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = read_photo(tmp_path / "g16.png")
    _assert_rgb8(out, (4, 16))
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    assert out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) > 50  # a ramp, not clipped to 255


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (12, 6), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # red ink
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = read_photo(tmp_path / "c.jpg")
    _assert_rgb8(out, (6, 12))
    r, g, b = out.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_downscale(tmp_path: Path, astronaut: np.ndarray) -> None:
    Image.fromarray(astronaut).resize((1200, 600)).save(tmp_path / "wide.jpg")
    out = read_photo(tmp_path / "wide.jpg", max_side=300)
    _assert_rgb8(out, (150, 300))
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    _assert_rgb8(read_photo(tmp_path / "a.png", max_side=100), (100, 100))


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "sub-01_notes.jpg"
    path.write_text("this is not a photo\nsecond line\n")
    with pytest.raises(PhotoError) as info:
        read_photo(path)
    message = str(info.value)
    assert "sub-01_notes.jpg" in message and "\n" not in message
    assert isinstance(info.value, ValueError)
    assert info.value.path == path


def test_missing_and_truncated(tmp_path: Path, astronaut: np.ndarray) -> None:
    with pytest.raises(PhotoError, match="missing.jpg"):
        read_photo(tmp_path / "missing.jpg")
    Image.fromarray(astronaut).save(tmp_path / "full.png")
    blob = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(PhotoError, match="cut.png"):
        read_photo(tmp_path / "cut.png")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims *width* x *height* but holds almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(
        b"IEND", b""
    )


def test_decompression_bomb(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(100_000, 100_000))
    with pytest.raises(PhotoError, match="bomb.png") as info:
        read_photo(bomb)
    assert "pixels" in str(info.value) or "large" in str(info.value)
    # our own limit, below Pillow's
    Image.new("RGB", (300, 200), "white").save(tmp_path / "blank.png")
    with pytest.raises(PhotoError, match="60000 pixels"):
        read_photo(tmp_path / "blank.png", max_pixels=50_000)
    _assert_rgb8(read_photo(tmp_path / "blank.png", max_pixels=60_000), (200, 300))
