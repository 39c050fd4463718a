"""Turn untrusted bytes or arrays into the RGB uint8 images the checks expect.

Only numpy, OpenCV and Pillow are imported here: web processes import this
module to validate uploads and must stay light.

The declared size of a JPEG or PNG is read from its header and refused before
anything is allocated, so a 100-byte file claiming 20000x20000 pixels costs
nothing. Other formats (WebP, BMP, GIF, TIFF) go through Pillow, which also
reads the size from the header before decoding.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings

import cv2
import numpy as np

from .types import InvalidImage

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 4096 * 4096

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carrying the image size (not DHT C4, JPG C8, DAC CC).
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Markers that stand alone, without a length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first start-of-frame segment; checks the file is complete."""
    pos = 2
    n = len(data)
    size: tuple[int, int] | None = None
    while pos < n:
        if data[pos] != 0xFF:
            raise InvalidImage("corrupt JPEG: bad segment marker")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker == 0xD9:
            raise InvalidImage("corrupt JPEG: no image data")
        if pos + 2 > n:
            break
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise InvalidImage("corrupt JPEG: bad segment length")
        if marker in _SOF_MARKERS:
            if pos + 7 > n:
                break
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            size = (width, height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            if size is None:
                raise InvalidImage("corrupt JPEG: no frame header before the image data")
            # Inside entropy-coded data 0xFF is always stuffed as FF00 or a restart
            # marker, so the first FFD9 after the scan header is the end of image.
            # Anything appended after it (motion-photo video, vendor trailers) is fine.
            if data.find(b"\xff\xd9", pos + length) < 0:
                raise InvalidImage("truncated JPEG: the file ends before the image does")
            return size
        pos += length
    raise InvalidImage("truncated JPEG: the file ends inside its header")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise InvalidImage("corrupt PNG: missing header")
    width, height = struct.unpack(">II", data[16:24])
    if data.rfind(b"IEND", 33) < 0:
        raise InvalidImage("truncated PNG: the file ends before the image does")
    return width, height


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImage(f"image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise InvalidImage(f"image is {width}x{height} pixels; at most {max_pixels} pixels are accepted")


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode JPEG, PNG, WebP, BMP, GIF or TIFF bytes to an RGB uint8 HxWx3 array.

    Grayscale is expanded, alpha is dropped, 16-bit samples are scaled to 8
    bits and EXIF orientation is applied. Raises ``InvalidImage`` with a
    message fit for a user for anything else, before decoding when the header
    already shows the problem.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImage(f"expected image bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise InvalidImage("empty upload: no image data")
    if data[:2] == b"\xff\xd8":
        width, height = _jpeg_size(data)
    elif data[:8] == _PNG_SIGNATURE:
        width, height = _png_size(data)
    else:
        return _decode_with_pillow(data, max_pixels)
    _check_size(width, height, max_pixels)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise InvalidImage("the image data is corrupt and could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _decode_with_pillow(data: bytes, max_pixels: int) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # lazy: reads the header only
            _check_size(img.width, img.height, max_pixels)
            img.load()
            img = ImageOps.exif_transpose(img)
            return prepare_image(np.asarray(img))
    except InvalidImage:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImage("not an image, or a format that is not supported (use JPEG or PNG)") from exc
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"the image data is corrupt or truncated: {exc}") from exc


def prepare_image(image: np.ndarray, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Normalise any array into a C-contiguous RGB uint8 HxWx3 image.

    Accepts HxW (gray), HxWx1, HxWx3 (taken as RGB) and HxWx4 (alpha dropped).
    bool becomes 0/255; uint16 is scaled by 1/257; other integers are clipped
    to 0..255; floats have NaN/inf set to 0 and are taken as 0..1 when their
    maximum is at most 1, else clipped to 0..255. Raises ``InvalidImage``
    otherwise.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImage(f"expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        channels = 1
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        channels = image.shape[2]
    else:
        raise InvalidImage(f"unsupported image shape {image.shape}; expected HxW, HxWx3 or HxWx4")
    height, width = image.shape[:2]
    _check_size(width, height, max_pixels)
    if channels == 4:
        image = image[:, :, :3]
    image = _to_uint8(image)
    if channels == 1:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    dtype = image.dtype
    if dtype == np.uint8:
        return image
    if dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if dtype == np.uint16:
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(dtype, np.integer):
        return np.clip(image, 0, 255).astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        values = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(values.max()) if values.size else 0.0
        values = np.clip(values, 0.0, 1.0 if peak <= 1.0 else 255.0).astype(np.float32)
        if peak <= 1.0:
            values *= 255.0
        return np.rint(values).astype(np.uint8)
    raise InvalidImage(f"unsupported pixel type {dtype}")


def crop_to(image: np.ndarray, size: tuple[int, int], centre_y: float = 0.5) -> np.ndarray:
    """``image`` cropped to the aspect of ``size`` (w, h) and scaled to it: a photo
    framed like a webcam picture. A portrait keeps the band around ``centre_y``
    (the face's height as a fraction of the image); a landscape keeps its middle."""
    height, width = image.shape[:2]
    target = size[0] / size[1]
    if width / height > target:
        new_w = round(height * target)
        x0 = (width - new_w) // 2
        image = image[:, x0 : x0 + new_w]
    else:
        new_h = round(width / target)
        y0 = min(max(0, round(centre_y * height - new_h / 2)), height - new_h)
        image = image[y0 : y0 + new_h]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode_jpeg(image: np.ndarray, *, size: tuple[int, int] | None = None, quality: int = 70) -> bytes:
    """``image`` (RGB uint8) as JPEG bytes, first shrunk to ``size`` (width, height) if given."""
    if size is not None:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise InvalidImage("the image could not be encoded as JPEG")
    return data.tobytes()


def dim_to(image: np.ndarray, mean: float) -> np.ndarray:
    """``image`` (RGB uint8) scaled so the mean of its grey is about ``mean``: the same
    scene in a dimmer room, as ``python -m detection analyse --dim`` measures it."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    gain = mean / max(float(gray.mean()), 1e-6)
    return np.clip(image.astype(np.float32) * gain, 0, 255).round().astype(np.uint8)


def letterbox(image: np.ndarray, *, scale: float = 0.56) -> np.ndarray:
    """``image`` shrunk by ``scale`` and centred on a black canvas of its own size:
    black bars round the picture, as a letterboxed or badly cropped webcam gives."""
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = np.zeros_like(image)
    x0, y0 = (width - size[0]) // 2, (height - size[1]) // 2
    canvas[y0 : y0 + size[1], x0 : x0 + size[0]] = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return canvas
