# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Per-frame files of a dataset: the camera image, its depth and its depth confidence, each written atomically.

Depth and confidence are written at the CAMERA image's resolution, resampled from the model's with nearest
neighbour (`vggt_ros.dataset.frames.resample_to_image`): nerfstudio, COLMAP's MVS tools and anyone else index
depth with the image's own pixels, and nearest neighbour keeps each value a real prediction (no depth invented
across an edge) and the confidence aligned pixel for pixel. Camera pixels the centre crop cut away have no
prediction: 0 in every file (nerfstudio masks depth with depth > 0; NaN would poison its losses).

* metric runs: ``depth/<stem>.png``, 16-bit greyscale PNG in millimetres (what nerfstudio's dataparser reads with
  its default ``depth_unit_scale_factor`` 0.001); 0 = no depth; depths beyond 65.535 m are clamped to 65535 and
  counted, since a 16-bit PNG cannot hold them;
* other runs: ``depth/<stem>.npy``, float32 in VGGT world units (scale unknown), 0 = no depth;
* always ``confidence/<stem>.npy``, float32 VGGT confidence (> 1, larger is surer), 0 where there is no
  prediction.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vggt_ros.dataset.frames import ExportFrame, resample_to_image
from vggt_ros.files import replace_atomically
from vggt_ros.numeric import usable_pixels

MAX_DEPTH_MM = np.iinfo(np.uint16).max
# Pillow modes whose pixels readers take as they are: numpy makes them (H, W) grey or (H, W, 3 | 4) RGB(A) uint8,
# the arrays nerfstudio's InputDataset accepts. Other 8-bit modes read wrong there: a palette as its indices, CMYK
# (and RGBX) as RGBA, grey with alpha as 2 channels (refused), 1-bit as 0 / 1.
READABLE_MODES = ("RGB", "RGBA", "L")


@dataclass(frozen=True)
class FrameFiles:
    """Paths of one frame's files, relative to the dataset folder (POSIX separators, as the JSON holds them)."""

    image: str
    depth: str
    confidence: str


def frame_files(frame: ExportFrame, metric: bool) -> FrameFiles:
    """Where ``frame``'s files go: images/<name>, depth/<stem>.png (metric) or .npy, confidence/<stem>.npy."""
    suffix = ".png" if metric else ".npy"
    return FrameFiles(f"images/{frame.name}", f"depth/{frame.stem}{suffix}", f"confidence/{frame.stem}.npy")


def image_format(name: str) -> str:
    """Pillow's format name for an image file name's suffix; ValueError when Pillow cannot write it."""
    suffix = Path(name).suffix.lower()
    image_format_name = Image.registered_extensions().get(suffix)
    if image_format_name is None or image_format_name not in Image.SAVE:
        raise ValueError(
            f"cannot write image {name!r}: Pillow writes no format for the suffix {suffix!r}; name the frame "
            f"'.jpg' or '.png'"
        )
    return image_format_name


# EXIF's Orientation tag, and its value for pixels stored as they are shown.
EXIF_ORIENTATION = 0x0112
UPRIGHT = 1


def why_not_copied(path: Path) -> str | None:
    """Why an input image file cannot be copied into the dataset as it is (None: it can): its Pillow mode is not one
    of `READABLE_MODES`, it is RGBA with transparent pixels, or it has an EXIF orientation to apply. The dataset
    then gets the RGB pixels the model saw (`write_frame_files`' ``image``).

    * The model, as the official loader, sees an RGBA image composited onto white; COLMAP, OpenCV and nerfstudio
      (without an alpha colour) read the colour stored under a transparent pixel, often black, so the copy would
      show them another image than the map's colours and the depth describe.
    * A phone's portrait photo is stored sideways with an Orientation tag: the model, as the official loader, sees
      the stored pixels, and so do COLMAP and nerfstudio, but OpenCV's imread turns the image upright."""
    with Image.open(path) as image:
        if image.mode not in READABLE_MODES:
            return f"its colour mode {image.mode} (not RGB, RGBA or grey) reads wrong in nerfstudio"
        if image.mode == "RGBA" and image.getextrema()[3][0] < 255:
            return (
                "its transparent pixels are white to the model (composited as the official loader does), but their "
                "stored colour to COLMAP, OpenCV and nerfstudio"
            )
        orientation = image.getexif().get(EXIF_ORIENTATION, UPRIGHT)
    if orientation != UPRIGHT:
        return f"its EXIF orientation {orientation} would turn it in OpenCV's reader, not in the model's or COLMAP's"
    return None


def depth_in_millimetres(depth: np.ndarray) -> tuple[np.ndarray, int]:
    """``(H, W)`` depth in metres (NaN / <= 0 = none) -> uint16 millimetres (0 = none) and the number of pixels
    clamped at 65.535 m."""
    with np.errstate(invalid="ignore"):
        # float64: float32 steps are 4 um at 65 m, enough to round a depth to the wrong millimetre.
        millimetres = np.where(depth > 0, np.round(depth.astype(np.float64) * 1000.0), 0.0)  # NaN > 0 is False
    clamped = int(np.count_nonzero(millimetres > MAX_DEPTH_MM))
    return np.minimum(millimetres, MAX_DEPTH_MM).astype(np.uint16), clamped


def write_frame_files(
    out_dir: Path, frame: ExportFrame, image: np.ndarray | None, metric: bool, jpeg_quality: int
) -> tuple[FrameFiles, int]:
    """Write the frame's image (when given), depth and confidence under ``out_dir``.

    Returns the relative paths and the number of depth pixels clamped at 65.535 m (metric runs).
    """
    files = frame_files(frame, metric)
    if image is not None:
        encoder = image_format(frame.name)
        # JPEG at the configured quality; WebP lossless (Pillow's default is lossy); the other formats are lossless.
        options = {"JPEG": {"quality": jpeg_quality}, "WEBP": {"lossless": True}}.get(encoder, {})
        _write(out_dir / files.image, lambda path: Image.fromarray(image).save(path, format=encoder, **options))

    # No prediction (an unusable pixel, the padding, what the crop cut away) is 0 in every file, not NaN: nerfstudio
    # reads the .npy as it is and its depth losses multiply by the mask depth > 0, which leaves a NaN's loss NaN (and
    # with it the whole batch's). VGGT's confidence is >= 1, so 0 is no confidence either.
    valid = usable_pixels(frame.depth, frame.confidence)
    depth = resample_to_image(frame.pixel_map, np.where(valid, frame.depth, 0.0).astype(np.float32), 0.0)
    clamped = _write_depth(out_dir / files.depth, depth, metric)
    confidence = resample_to_image(frame.pixel_map, np.nan_to_num(frame.confidence.astype(np.float32), nan=0.0), 0.0)
    _write(out_dir / files.confidence, lambda path: _save_npy(path, confidence))
    return files, clamped


def rescale_depth_file(path: Path, factor: float) -> int:
    """Multiply a written depth file (a millimetre PNG or a float32 .npy, by its suffix) by ``factor`` in place
    (atomically); returns the pixels clamped at 65.535 m (PNG)."""
    metric = path.suffix == ".png"
    if metric:
        with Image.open(path) as image:
            millimetres = np.asarray(image, dtype=np.float64)
        depth = millimetres / 1000.0 * factor
    else:
        depth = np.load(path) * np.float32(factor)  # 0 (no depth) stays 0
    return _write_depth(path, depth, metric)


def _write_depth(path: Path, depth: np.ndarray, metric: bool) -> int:
    """Write ``(H, W)`` depth (0 = none) atomically: metres as a millimetre PNG when ``metric``, else a float32 .npy
    of the world's units; returns the pixels clamped at 65.535 m (PNG)."""
    if metric:
        millimetres, clamped = depth_in_millimetres(depth)
        # zlib level 1: on a 640x480 depth map with 1 % noise it encodes in a third of the default level's time
        # (48 vs 153 ms on the 2-core dev box) for a 3 % larger file.
        _write(path, lambda target: Image.fromarray(millimetres).save(target, "PNG", compress_level=1))
        return clamped
    _write(path, lambda target: _save_npy(target, depth.astype(np.float32, copy=False)))
    return 0


def _save_npy(path: Path, array: np.ndarray) -> None:
    # Through a buffer: numpy's own file writes report a full disk as "N requested and M written", Python's as
    # ENOSPC, "No space left on device".
    buffer = io.BytesIO()
    np.save(buffer, array)
    path.write_bytes(buffer.getbuffer())


def _write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, write)
