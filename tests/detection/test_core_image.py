"""decode_image / prepare_image on real and hostile input."""

from __future__ import annotations

import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from detection_photos import PHOTOS, jpeg, photo

from detection.core import InvalidImage, decode_image, prepare_image


def _png(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array)
    assert ok
    return data.tobytes()


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header is rewritten to claim another size."""
    data = bytearray(jpeg(np.full((8, 8, 3), 128, np.uint8)))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_it_decodes_a_jpeg_photo_to_rgb():
    data = (PHOTOS / "obama.jpg").read_bytes()
    image = decode_image(data)
    assert image.dtype == np.uint8 and image.shape == (1137, 910, 3)
    expected = photo("obama.jpg")
    assert np.array_equal(image, expected)  # RGB order, same as cv2 + BGR2RGB


def test_it_decodes_a_png_photo():
    image = decode_image((PHOTOS / "astronaut.png").read_bytes())
    assert image.shape == (512, 512, 3)


def test_it_returns_rgb_not_bgr():
    red = np.zeros((10, 10, 3), np.uint8)
    red[:, :, 0] = 255  # RGB red
    decoded = decode_image(_png(cv2.cvtColor(red, cv2.COLOR_RGB2BGR)))
    assert decoded[5, 5].tolist() == [255, 0, 0]


def test_it_expands_grayscale():
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (20, 1))
    image = decode_image(_png(gray))
    assert image.shape == (20, 25, 3)
    assert np.array_equal(image[:, :, 0], gray) and np.array_equal(image[:, :, 2], gray)


def test_it_drops_alpha():
    bgra = np.zeros((12, 14, 4), np.uint8)
    bgra[..., 1] = 200
    bgra[..., 3] = 10
    image = decode_image(_png(bgra))
    assert image.shape == (12, 14, 3) and image[0, 0].tolist() == [0, 200, 0]


def test_it_scales_16_bit_to_8_bit():
    deep = np.full((9, 9, 3), 40000, np.uint16)
    image = decode_image(_png(deep))
    assert image.dtype == np.uint8 and abs(int(image[0, 0, 0]) - 40000 // 257) <= 1


def test_it_refuses_a_huge_declared_jpeg_before_decoding():
    data = _jpeg_with_size(20000, 20000)
    assert len(data) < 2000
    start = time.perf_counter()
    with pytest.raises(InvalidImage, match="20000x20000"):
        decode_image(data)
    assert time.perf_counter() - start < 5  # sanity bound only: a decode would allocate 1.2 GB


def test_it_refuses_a_huge_declared_png_before_decoding():
    with pytest.raises(InvalidImage, match="20000x20000"):
        decode_image(_png_header_only(20000, 20000))


def test_it_respects_a_smaller_max_pixels():
    data = jpeg(np.zeros((100, 100, 3), np.uint8))
    assert decode_image(data, max_pixels=100 * 100).shape == (100, 100, 3)
    with pytest.raises(InvalidImage, match="at most 9999 pixels"):
        decode_image(data, max_pixels=9999)


@pytest.mark.parametrize(
    "data", [b"", b"hello, world", b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"%PDF-1.4\n" * 10]
)
def test_it_refuses_empty_and_non_images(data):
    with pytest.raises(InvalidImage):
        decode_image(data)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_it_refuses_a_truncated_jpeg(fraction):
    data = (PHOTOS / "obama2.jpg").read_bytes()
    with pytest.raises(InvalidImage, match="truncated|corrupt"):
        decode_image(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.99])
def test_it_refuses_a_truncated_png(fraction):
    data = (PHOTOS / "astronaut.png").read_bytes()
    with pytest.raises(InvalidImage):
        decode_image(data[: int(len(data) * fraction)])


def test_it_accepts_trailing_bytes_after_the_jpeg():
    # Motion photos and some cameras append data after the end-of-image marker.
    data = jpeg(photo("obama2.jpg")) + b"\x00\x00ftypmp42" + bytes(500)
    assert decode_image(data).shape == (1200, 626, 3)


def test_it_refuses_a_jpeg_with_declared_zero_size():
    with pytest.raises(InvalidImage, match="empty size"):
        decode_image(_jpeg_with_size(0, 480))


def test_it_decodes_webp_through_pillow():
    ok, data = cv2.imencode(".webp", cv2.cvtColor(photo("obama2.jpg"), cv2.COLOR_RGB2BGR))
    assert ok
    assert decode_image(data.tobytes()).shape == (1200, 626, 3)


def test_it_refuses_non_bytes():
    with pytest.raises(InvalidImage, match="expected image bytes"):
        decode_image("obama.jpg")  # type: ignore[arg-type]


def test_prepare_normalises_arrays():
    assert prepare_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert prepare_image(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    assert prepare_image(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    assert prepare_image(np.full((2, 2), 65535, np.uint16))[0, 0, 0] == 255
    assert prepare_image(np.ones((2, 2), bool))[0, 0, 0] == 255
    floats = np.array([[0.0, 0.5], [1.0, np.nan]])
    assert prepare_image(floats)[:, :, 0].tolist() == [[0, 128], [255, 0]]
    assert prepare_image(np.array([[-5, 300]], np.int32))[0, :, 0].tolist() == [0, 255]
    assert prepare_image(np.full((2, 2, 3), np.inf))[0, 0, 0] == 0


def test_prepare_returns_contiguous_uint8():
    view = photo("obama.jpg")[:, ::2]
    out = prepare_image(view)
    assert out.flags.c_contiguous and out.dtype == np.uint8


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((5, 0), np.uint8),
        np.zeros((3, 3, 2), np.uint8),
        np.zeros(10, np.uint8),
        np.zeros((2, 2, 2, 3), np.uint8),
        np.array([["a"]]),
        np.zeros((2, 2), complex),
    ],
)
def test_prepare_refuses_what_is_not_an_image(array):
    with pytest.raises(InvalidImage):
        prepare_image(array)


def test_prepare_refuses_non_arrays():
    with pytest.raises(InvalidImage):
        prepare_image([[1, 2], [3, 4]])  # type: ignore[arg-type]
