"""Decode one image file into a ``(C, H, W)`` array: TIFF, PNG, BMP, JPEG and NumPy ``.npy``.

Readers are looked up by file suffix in :data:`READERS`. Every reader returns the array in its
native dtype normalised to one of ``uint8``, ``uint16`` or ``float32`` (:func:`normalise_dtype`),
with the channel axis first. Colour images are handled deliberately: alpha is dropped and an RGB
image whose three channels are identical becomes one grey channel.

Example:
    >>> img = read_image("cell.npy")          # doctest: +SKIP
    >>> img.shape, img.dtype                   # doctest: +SKIP
    ((3, 68, 68), dtype('uint16'))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from biorep.errors import DataError

log = logging.getLogger("biorep.data")

#: Largest axis length that may be taken for a channel axis when the layout must be inferred.
MAX_CHANNELS = 8

Reader = Callable[[Path], np.ndarray]
READERS: dict[str, Reader] = {}

#: Compression schemes tifffile could not decode in this process (no ``imagecodecs``): go to PIL.
_TIFF_CODECS_MISSING: set[int] = set()


def reader(*suffixes: str) -> Callable[[Reader], Reader]:
    """Register a reader for the given lower-case suffixes (``".png"``)."""

    def deco(fn: Reader) -> Reader:
        for s in suffixes:
            READERS[s] = fn
        return fn

    return deco


def image_suffixes() -> list[str]:
    """Suffixes that :func:`read_image` understands."""
    return sorted(READERS)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` has a suffix one of the readers handles."""
    return Path(path).suffix.lower() in READERS


def normalise_dtype(arr: np.ndarray, path: Path) -> np.ndarray:
    """Map any numeric dtype to ``uint8``, ``uint16`` or ``float32`` without changing values.

    ``bool`` becomes 0/255 ``uint8``; other integer types stay integers when their values fit in
    ``uint16`` and become ``float32`` otherwise; floats must be finite.
    """
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            return arr.astype(np.float32)
        if arr.size and arr.max() <= 255 and arr.dtype.itemsize == 1:
            return arr.astype(np.uint8)
        return arr.astype(np.uint16)
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise DataError(f"{path}: image holds NaN or infinite pixel values")
        return out
    raise DataError(f"{path}: unsupported pixel type {arr.dtype}")


def _channels_first(arr: np.ndarray, path: Path, *, last_is_channel: bool | None = None) -> np.ndarray:
    """Return ``arr`` as ``(C, H, W)``; infer the channel axis as the small one (≤ MAX_CHANNELS)."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim > 3:
        squeezed = np.squeeze(arr)
        if squeezed.ndim in (2, 3) and squeezed.ndim < arr.ndim:
            return _channels_first(squeezed, path)
        raise DataError(f"{path}: expected a 2-D or 3-D image, got shape {tuple(arr.shape)}")
    if arr.ndim != 3:
        raise DataError(f"{path}: expected a 2-D or 3-D image, got shape {tuple(arr.shape)}")
    if last_is_channel is True:
        return np.moveaxis(arr, -1, 0)
    if last_is_channel is False:
        return arr
    first, last = arr.shape[0], arr.shape[-1]
    if last <= MAX_CHANNELS and (first > MAX_CHANNELS or last < first):
        return np.moveaxis(arr, -1, 0)
    if first <= MAX_CHANNELS:
        return arr
    raise DataError(
        f"{path}: cannot tell the channel axis of shape {tuple(arr.shape)} "
        f"(expected H×W, H×W×C or C×H×W with C ≤ {MAX_CHANNELS})"
    )


def _colour_to_channels(arr: np.ndarray, *, alpha: bool) -> np.ndarray:
    """Drop alpha from a ``(C, H, W)`` colour image and turn RGB-of-grey into one grey channel."""
    if alpha:
        arr = arr[:-1]
    if arr.shape[0] == 3 and np.array_equal(arr[0], arr[1]) and np.array_equal(arr[1], arr[2]):
        arr = arr[:1]
    return arr


#: warnings given once per process (decoding runs in worker processes, file by file)
_WARNED: set[str] = set()


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1 and "frames" not in _WARNED:  # an animated GIF/PNG/WebP
                _WARNED.add("frames")
                log.warning("%s (and files like it): has %d frames; only the first is used", path, im.n_frames)
            mode = im.mode
            if mode in ("P", "PA"):
                im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
                mode = im.mode
            elif mode == "1":
                im = im.convert("L")
                mode = "L"
            elif mode == "CMYK" or mode == "YCbCr" or mode == "LAB" or mode == "HSV":
                im = im.convert("RGB")
                mode = "RGB"
            arr = np.array(im)
    except Image.DecompressionBombError as exc:  # a header claiming billions of pixels
        raise DataError(f"{path}: refused as too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from None
    if mode.startswith("I;16"):
        arr = arr.astype(np.uint16)
    if arr.ndim == 2:
        return arr[None]
    chw = np.moveaxis(arr, -1, 0)
    return _colour_to_channels(chw, alpha=mode in ("RGBA", "LA", "RGBa", "La"))


def _png_16bit_colour(path: Path) -> bool:
    """A PNG with 16 bits per sample and colour or alpha (IHDR bit depth 16, colour type 2, 4 or 6):
    Pillow reads those as 8-bit, dropping the low byte of every sample."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return False
    return len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 4, 6)


def _read_png_16(path: Path) -> np.ndarray:
    """A 16-bit colour PNG at full depth, through imagecodecs (libpng)."""
    import imagecodecs

    try:
        arr = imagecodecs.png_decode(path.read_bytes())
    except Exception as exc:  # imagecodecs raises its own error types
        raise DataError(f"{path}: cannot decode 16-bit PNG ({type(exc).__name__}: {exc})") from None
    if arr.ndim == 2:
        return arr[None]
    chw = np.moveaxis(arr, -1, 0)
    return _colour_to_channels(chw, alpha=chw.shape[0] in (2, 4))


@reader(".png", ".bmp", ".jpg", ".jpeg", ".gif", ".webp")
def read_pil(path: Path) -> np.ndarray:
    """PNG/BMP/JPEG through Pillow (16-bit colour PNGs through imagecodecs, at full depth)."""
    if path.suffix.lower() == ".png" and _png_16bit_colour(path):
        return _read_png_16(path)
    return _read_pil(path)


def _tiff_alpha(chw: np.ndarray, extrasamples: tuple[int, ...], *, planar: bool, path: Path) -> bool:
    """Whether an RGB TIFF's 4th sample is transparency (dropped) rather than a 4th channel (kept).

    An extra sample tagged "unspecified" is a channel. tifffile tags any ``(4, H, W)`` array as planar
    RGB + alpha, so a planar 4th sample that is not an opacity mask (more than two values) is a
    fluorescence channel too; a contiguous (RGBA-as-painted) one is alpha, however soft.
    """
    if chw.shape[0] != 4 and not extrasamples:
        return False
    if extrasamples and all(int(e) == 0 for e in extrasamples):
        return False
    if planar and np.unique(chw[-1]).size > 2:
        if "planar-alpha" not in _WARNED:  # once per process: a stack of such files would flood the log
            _WARNED.add("planar-alpha")
            log.warning("%s (and files like it): tagged RGB + alpha, but the 4th plane is not an opacity mask: "
                        "read as a 4-channel image", path)
        return False
    return True


@reader(".tif", ".tiff")
def read_tiff(path: Path) -> np.ndarray:
    """TIFF through tifffile (8/16-bit, multi-channel, multi-page); Pillow when a codec is missing."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages.first
            if int(page.compression) in _TIFF_CODECS_MISSING:
                return _read_pil(path)
            series = tf.series[0]
            axes = series.axes
            try:
                arr = series.asarray()
            except ValueError as exc:
                if "imagecodecs" in str(exc):
                    _TIFF_CODECS_MISSING.add(int(page.compression))
                    return _read_pil(path)
                raise
            photometric = int(page.photometric)
            extrasamples = tuple(page.extrasamples)
    except DataError:
        raise
    except Exception as exc:  # tifffile raises many types for broken files
        raise DataError(f"{path}: cannot decode TIFF ({type(exc).__name__}: {exc})") from None
    arr = np.asarray(arr)
    rgb = photometric == 2  # PHOTOMETRIC.RGB
    if rgb and arr.ndim == 3 and (axes.endswith("S") or axes.startswith("S")):
        chw = np.moveaxis(arr, -1, 0) if axes.endswith("S") else arr
        return _colour_to_channels(chw, alpha=_tiff_alpha(chw, extrasamples, planar=axes.startswith("S"), path=path))
    if arr.ndim == 3 and axes[-2:] == "YX":
        return arr
    if arr.ndim == 3 and axes.endswith("S"):
        return np.moveaxis(arr, -1, 0)
    return _channels_first(arr, path)


@reader(".npy")
def read_npy(path: Path) -> np.ndarray:
    """NumPy arrays: H×W, H×W×C or C×H×W (channel axis = the small one, ≤ 8)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read .npy file ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: .npy file does not hold an array")
    return _channels_first(arr, path)


#: Formats whose decoder turns an RGB-of-grey file into one channel (see :func:`_colour_to_channels`).
COLOUR_PICTURE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".gif", ".webp")


def as_colour(arr: np.ndarray, path: str | os.PathLike[str], want: int) -> np.ndarray:
    """A grey picture (PNG, JPEG, ...) where colour (3 channels) is wanted: the grey value in each
    channel, as Pillow's ``convert("RGB")`` gives. Anything else is returned as it is: a channel of
    a fluorescence stack (TIFF, .npy) is not a colour and is left for the caller to refuse."""
    if want == 3 and arr.shape[0] == 1 and Path(path).suffix.lower() in COLOUR_PICTURE_SUFFIXES:
        return np.repeat(arr, 3, axis=0)
    return arr


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode ``path`` into a validated ``(C, H, W)`` array (uint8, uint16 or float32).

    Raises:
        DataError: unknown suffix, undecodable file, one too large to decode (a decompression bomb, a
            header claiming more memory than there is), empty (zero-sized) image or NaN/inf pixels.
    """
    path = Path(path)
    fn = READERS.get(path.suffix.lower())
    if fn is None:
        raise DataError(f"{path}: unsupported image type {path.suffix!r} (known: {', '.join(image_suffixes())})")
    try:
        arr = fn(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist") from None
    except MemoryError as exc:  # e.g. a .npy header claiming (100000, 100000)
        raise DataError(f"{path}: too large to decode in memory ({exc})") from None
    if arr.ndim != 3:
        raise DataError(f"{path}: expected a 2-D or 3-D image, got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise DataError(f"{path}: zero-sized image (shape {tuple(arr.shape)})")
    return np.ascontiguousarray(normalise_dtype(arr, path))
