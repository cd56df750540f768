# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Image preprocessing: camera images -> the VGGT model input `(S, 3, H, W)` float32 in [0, 1].

Two routes share one size rule (`output_size`) and one crop / pad step:

* `preprocess_images`: the exact route. It reproduces the official VGGT `load_and_preprocess_images`
  (crop and pad modes) bit for bit: RGBA files composited onto white, greyscale replicated to RGB,
  Pillow BICUBIC resize, centre crop or white padding, and mixed-size batches padded with white to the
  largest height and width. It takes file paths and/or in-memory uint8 arrays. A file is decoded to an
  `(H, W, 3)` uint8 RGB array and then goes through the same code as an array. One departure: a file of more than
  8 bits per channel (16-bit or float PNG / TIFF) is refused, where the official loader turns it into white or black.
* `preprocess_frames`: the streaming route for live frames from synchronised cameras. It takes one
  `(S, H, W, 3)` uint8 batch and resizes it with torch on any device, using
  `interpolate(mode="bicubic", antialias=True)`. That is Pillow's kernel (Keys a = -0.5, support widened by
  the downscale factor). Like Pillow, it rounds to 8 bits after the horizontal pass and again after the
  vertical pass. On the CPU, torch's uint8 kernel does this itself. On other devices, which have no uint8
  kernel, the two passes run in float32 with the same clamping and half-up rounding. It is not bit-exact:
  Pillow uses 22-bit fixed-point weights, so an occasional rounding falls the other way.
  Measured against the exact route on all 11 single-image fixture cases (`bench/preprocess_fast.py`):
  CPU uint8 kernel: max abs difference 2/255, mean abs difference <= 0.0054/255 per case (about 0.5 % of
  values differ, almost all by one step); float kernel (run on the CPU to measure it): max 2/255, mean
  <= 0.0002/255. A single float32 bicubic pass without the intermediate rounding is off by up to 10/255 at
  sharp edges (the logo), so the rounding is kept.
  Its speed against the exact route is in docs/benchmarks.md (Preprocessing).

Input arrays are RGB `(H, W, 3)` uint8; convert BGR camera images first. A 2-D `(H, W)` uint8 array is
accepted as greyscale and replicated to three channels, exactly as Pillow's L -> RGB conversion does
(mono8 camera images). Any other channel count is rejected rather than guessed: the official alpha rule
(composite onto white) applies only to RGBA files.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Iterable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vggt_ros.compressed_image import PILLOW_READ_ERRORS, check_8_bits
from vggt_ros.image_encoding import ImageFormatError
from vggt_ros.model.config import VGGTConfig

logger = logging.getLogger(__name__)

# Output sides are multiples of the ViT patch size.
PATCH_SIZE = VGGTConfig.patch_size
DEFAULT_TARGET_SIZE = 518
MODES = ("crop", "pad")

ImageInput = Union[str, "os.PathLike[str]", np.ndarray]
FramesInput = Union[np.ndarray, torch.Tensor]

# The `ImageFormatError` kind of an image whose short side rounds to 0 model pixels at the target size.
TOO_ELONGATED = "too_elongated"

# White in uint8; the final /255 maps it to exactly 1.0, the official padding value.
_WHITE = 255


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown preprocessing mode {mode!r}; use one of {MODES}")


def check_image_size(name: str, value: object, usual: Optional[int] = DEFAULT_TARGET_SIZE) -> None:
    """Refuse a model image size (the long side, or both sides in square mode; an export's height or width) that
    VGGT cannot take.

    One check, and one message, for every place a user gives the size: `name` is what they set (an option, a
    parameter, or this module's `target_size` argument); ``usual``: VGGT-1B's usual value, quoted (None: none).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % PATCH_SIZE:
        usual_text = f" ({usual} for VGGT-1B)" if usual is not None else ""
        raise ValueError(
            f"{name} must be a positive multiple of the patch size {PATCH_SIZE}{usual_text}, got {value!r}"
        )


def _resized_size(height: int, width: int, mode: str, target_size: int) -> tuple[int, int]:
    """(height, width) that the image is resized to, before the centre crop (crop) or white padding (pad).

    The short side is computed the way the official code does it: Python `round` (half to even) of the
    float64 value `side * (target / long_side) / 14`, times 14.

    Raises:
        ImageFormatError (a ValueError): kind "size" for an empty image, `TOO_ELONGATED` for one whose short side
            rounds to 0 pixels: no model input can be made of it (a reader skips such an image).
    """
    if height <= 0 or width <= 0:
        raise ImageFormatError("size", f"image size must be positive; got height={height}, width={width}")
    if mode == "pad" and height > width:
        resized = (target_size, round(width * (target_size / height) / PATCH_SIZE) * PATCH_SIZE)
    else:
        resized = (round(height * (target_size / width) / PATCH_SIZE) * PATCH_SIZE, target_size)
    if min(resized) == 0:
        raise ImageFormatError(
            TOO_ELONGATED,
            f"a {width}x{height} (WxH) image is too elongated for mode {mode!r}: its short side would "
            f"round to 0 pixels at target size {target_size}; crop it to a less extreme aspect ratio or use a larger "
            "target size",
        )
    return resized


def output_size(height: int, width: int, mode: str, target_size: int = DEFAULT_TARGET_SIZE) -> tuple[int, int]:
    """(H_out, W_out) of the model input for one camera image of `height` x `width` pixels.

    crop: the width becomes target_size; the height is scaled, rounded to a multiple of 14, and
    centre-cropped to at most target_size. pad: always target_size x target_size.

    Raises:
        ImageFormatError: no model input can be made of such an image (see `_resized_size`).
        ValueError: an unknown mode or a bad target_size.
    """
    _check_mode(mode)
    check_image_size("target_size", target_size)
    resized_h, resized_w = _resized_size(height, width, mode, target_size)
    if mode == "pad":
        return target_size, target_size
    return min(resized_h, target_size), resized_w


@dataclass(frozen=True)
class PixelMap:
    """Where a camera image's pixels land in the model image, and back: one axis-aligned affine map.

    ``u_model = scale[0] * u_image + offset[0]`` and ``v_model = scale[1] * v_image + offset[1]``, in pixel-index
    coordinates (integer = pixel centre, the convention of VGGT's intrinsics and depth unprojection). The resize
    maps pixel centres ((u + 0.5) scales by the resize factor), then the centre crop or white padding shifts.

    Attributes:
        image_hw: (H, W) of the camera image.
        model_hw: (H, W) of the model image.
        scale, offset: (x, y) of the map above.
    """

    image_hw: tuple[int, int]
    model_hw: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float]

    def to_model(self, uv: np.ndarray) -> np.ndarray:
        """``(..., 2)`` image pixel coordinates -> model pixel coordinates."""
        return np.asarray(uv, dtype=np.float64) * self.scale + self.offset

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        """``(..., 2)`` model pixel coordinates -> camera image pixel coordinates."""
        return (np.asarray(uv, dtype=np.float64) - self.offset) / self.scale

    def image_box(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right): the model pixels whose centre lies inside the camera image, half-open rows
        ``top:bottom`` and columns ``left:right``. Everything outside is padding (white), not an observation.

        A model pixel centre i lies at image pixel-corner coordinate ``(i - offset) / scale + 0.5``, inside for
        ``[0, side)``: ``i >= offset - scale / 2`` and ``i < offset + (side - 0.5) * scale``. Both bounds fall
        half a model pixel from an integer, so the ceilings are exact.
        """
        bounds = []
        for axis in (1, 0):  # rows (y), then columns (x)
            side, model_side = self.image_hw[1 - axis], self.model_hw[1 - axis]
            first = math.ceil(self.offset[axis] - 0.5 * self.scale[axis])
            end = math.ceil(self.offset[axis] + (side - 0.5) * self.scale[axis])
            bounds += [min(max(first, 0), model_side), min(max(end, 0), model_side)]
        return bounds[0], bounds[1], bounds[2], bounds[3]

    def intrinsics_to_image(self, intrinsics: np.ndarray) -> np.ndarray:
        """``(..., 3, 3)`` pinhole matrices of the model image -> the same cameras at the camera image's pixels."""
        image_from_model = np.diag([1.0 / self.scale[0], 1.0 / self.scale[1], 1.0])
        image_from_model[:2, 2] = -np.asarray(self.offset) / self.scale
        return image_from_model @ np.asarray(intrinsics, dtype=np.float64)


def pixel_map(
    height: int, width: int, mode: str, target_size: int = DEFAULT_TARGET_SIZE, pad_to: tuple[int, int] | None = None
) -> PixelMap:
    """The `PixelMap` of both preprocessing routes for a ``height`` x ``width`` image (``pad_to`` as in
    `preprocess_images`)."""
    _check_mode(mode)
    check_image_size("target_size", target_size)
    resized = _resized_size(height, width, mode, target_size)
    fitted = output_size(height, width, mode, target_size)
    final = fitted if pad_to is None else tuple(pad_to)
    scale, offset = [], []
    for axis, side in ((1, width), (0, height)):
        factor = resized[axis] / side
        # _fit_centred: crop start floor(diff / 2), or pad start floor(diff / 2); applied twice with pad_to.
        shift = _fit_shift(resized[axis], fitted[axis]) + _fit_shift(fitted[axis], final[axis])
        scale.append(factor)
        offset.append(0.5 * factor - 0.5 + shift)
    return PixelMap((height, width), (int(final[0]), int(final[1])), tuple(scale), tuple(offset))


def _fit_shift(side: int, target: int) -> int:
    """How far `_fit_centred` moves pixel coordinates along one axis fitting ``side`` pixels into ``target``."""
    return -(max(side - target, 0) // 2) + max(target - side, 0) // 2


def _fit_centred(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop sides of uint8 `(..., h, w)` that are longer than (height, width); pad shorter ones with white.

    Both the crop and the padding put the odd pixel at the bottom / right (start = floor(diff / 2)),
    as the official code does. (Sides from `_resized_size` are multiples of 14, so the difference is even
    and the split is symmetric in practice.)
    """
    h, w = images.shape[-2:]
    top, left = max(h - height, 0) // 2, max(w - width, 0) // 2
    images = images[..., top : top + height, left : left + width]
    pad_h, pad_w = height - images.shape[-2], width - images.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return images
    pad_top, pad_left = pad_h // 2, pad_w // 2
    return F.pad(images, (pad_left, pad_w - pad_left, pad_top, pad_h - pad_top), mode="constant", value=_WHITE)


def to_unit_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 `(S, 3, H, W)` -> contiguous float32 in [0, 1], bit-exact with torchvision's ToTensor (k / 255)."""
    # Making the uint8 layout contiguous first costs a quarter of the bytes of doing it on floats.
    return images_u8.contiguous().float().div_(255)


def decode_image_file(path: Union[str, "os.PathLike[str]"]) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an 8-bit image file, with RGBA composited onto opaque white.

    Raises:
        ImageFormatError (a ValueError): kind "encoding", a file of more than 8 bits per channel (16-bit, 32-bit
            integer or float PNG / TIFF), which the official loader's ``convert("RGB")`` turns into white or black
            (or 8 bits of its 16): the rule compressed PNG messages follow (`vggt_ros.compressed_image.check_8_bits`).
        ValueError: the file does not exist, or Pillow cannot read it (whatever Pillow raises, e.g. SyntaxError for a
            damaged PNG chunk).
    """
    try:
        with Image.open(path) as image:
            check_8_bits(image, f"image file '{os.fspath(path)}'")
            if image.mode == "RGBA":
                white = Image.new("RGBA", image.size, (_WHITE,) * 4)
                image = Image.alpha_composite(white, image)
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise ValueError(f"image file not found: '{os.fspath(path)}'; check the path") from None
    except ImageFormatError:
        raise
    except PILLOW_READ_ERRORS as err:
        raise ValueError(f"cannot read image file '{os.fspath(path)}' ({err}); pass a readable image file") from err


def _as_rgb_array(array: np.ndarray, index: int) -> np.ndarray:
    """Validate image `index` of the input and return it as (H, W, 3) uint8 RGB."""
    if array.dtype != np.uint8:
        raise TypeError(
            f"image {index} has dtype {array.dtype}; expected uint8 RGB values 0-255 "
            f"(convert floats in [0, 1] with (a * 255).round().astype(np.uint8))"
        )
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"image {index} has shape {array.shape}; expected an (H, W, 3) RGB uint8 array or an (H, W) "
            f"greyscale one (drop or composite an alpha channel first; pass (H, W, 1) as a[..., 0])"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image {index} is empty (shape {array.shape}); every image needs at least one pixel")
    return array


def _load_rgb(image: ImageInput, index: int) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return _as_rgb_array(image, index)
    if isinstance(image, (str, os.PathLike)):
        return _as_rgb_array(decode_image_file(image), index)
    raise TypeError(
        f"image {index} is a {type(image).__name__}; expected a file path (str or os.PathLike) "
        f"or an (H, W, 3) uint8 RGB numpy array"
    )


def preprocess_images(
    images: Iterable[ImageInput],
    mode: str = "crop",
    target_size: int = DEFAULT_TARGET_SIZE,
    pad_to: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Official VGGT preprocessing, bit-exact: file paths and/or uint8 RGB arrays -> `(S, 3, H, W)`.

    Returns float32 in [0, 1] on the CPU. Images whose results differ in size (crop mode, different aspect
    ratios) are each padded with white (1.0) to the largest height and width, and a warning is logged.
    ``pad_to`` (H, W), when given, is the size every result is padded (or centre-cropped) to instead: a caller
    that preprocesses a sequence a few images at a time keeps one size for all of them.
    """
    return to_unit_float(preprocess_images_u8(images, mode, target_size, pad_to))


def preprocess_images_u8(
    images: Iterable[ImageInput],
    mode: str = "crop",
    target_size: int = DEFAULT_TARGET_SIZE,
    pad_to: tuple[int, int] | None = None,
) -> torch.Tensor:
    """`preprocess_images` before the conversion to float: `(S, 3, H, W)` uint8 on the CPU."""
    _check_mode(mode)
    check_image_size("target_size", target_size)
    if isinstance(images, (str, os.PathLike, np.ndarray, torch.Tensor)):
        raise TypeError(
            f"images must be a sequence of images, got a single {type(images).__name__}; wrap one image in a "
            f"list, or use preprocess_frames for an (S, H, W, 3) batch"
        )
    try:
        images = list(images)
    except TypeError:
        raise TypeError(
            f"images must be a sequence of file paths and/or uint8 arrays, got {type(images).__name__}"
        ) from None
    if not images:
        raise ValueError("images is empty; pass at least one file path or (H, W, 3) uint8 array")

    results = []
    for index, image in enumerate(images):
        rgb = _load_rgb(image, index)
        height, width = rgb.shape[:2]
        resized_h, resized_w = _resized_size(height, width, mode, target_size)
        resized = np.array(Image.fromarray(rgb).resize((resized_w, resized_h), Image.Resampling.BICUBIC))
        chw = torch.from_numpy(resized).permute(2, 0, 1)
        results.append(_fit_centred(chw, *output_size(height, width, mode, target_size)))

    sizes = sorted({tuple(r.shape[-2:]) for r in results})
    if pad_to is not None:
        results = [_fit_centred(r, *pad_to) for r in results]
    elif len(sizes) > 1:
        batch_h, batch_w = max(s[0] for s in sizes), max(s[1] for s in sizes)
        logger.warning(
            "images have different sizes after preprocessing %s; padding each with white to %dx%d (HxW)",
            sizes,
            batch_h,
            batch_w,
        )
        results = [_fit_centred(r, batch_h, batch_w) for r in results]
    return torch.stack(results)


def _contiguous_copy(frames: np.ndarray) -> np.ndarray:
    """A C-contiguous copy. A strided ``(..., C)`` array (a BGR -> RGB flip view) is copied one channel at a time:
    numpy copies a reversed 3-element axis pixel by pixel, four times slower."""
    if frames.flags.c_contiguous or frames.ndim == 0:
        return frames.copy()
    copy = np.empty(frames.shape, frames.dtype)
    for channel in range(frames.shape[-1]):
        copy[..., channel] = frames[..., channel]
    return copy


def _frames_as_tensor(frames: FramesInput) -> torch.Tensor:
    """Validate a (S, H, W, 3) uint8 batch and return it as a torch tensor (sharing memory where possible)."""
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8:
            raise TypeError(f"frames have dtype {frames.dtype}; expected uint8 RGB values 0-255")
        if not (frames.flags.writeable and frames.flags.c_contiguous):
            # torch cannot wrap a read-only buffer (a view of a ROS message's bytes) or negative strides
            # (a BGR -> RGB flip view).
            frames = _contiguous_copy(frames)
        frames = torch.from_numpy(frames)
    elif not isinstance(frames, torch.Tensor):
        raise TypeError(
            f"frames is a {type(frames).__name__}; expected one (S, H, W, 3) uint8 numpy array or torch tensor "
            f"(stack same-size frames with np.stack, or use preprocess_images for a list of images)"
        )
    if frames.dtype != torch.uint8:
        raise TypeError(f"frames have dtype {frames.dtype}; expected torch.uint8 RGB values 0-255")
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(
            f"frames have shape {tuple(frames.shape)}; expected (S, H, W, 3) RGB "
            f"(add a batch axis to a single frame with frames[None])"
        )
    if frames.numel() == 0:
        raise ValueError(f"frames are empty (shape {tuple(frames.shape)}); need S >= 1 frames of at least 1x1")
    return frames


def _resize_like_pillow_float(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pillow's BICUBIC on uint8 `(S, 3, H, W)`, computed in float32: for devices without a uint8 kernel.

    Horizontal pass, then vertical pass (a pass whose axis keeps its size is skipped, as in Pillow); each is
    clamped to [0, 255] and rounded half up, like Pillow's fixed-point result.
    """
    pixels = images.float()
    for pass_size in ((images.shape[-2], size[1]), size):
        if tuple(pixels.shape[-2:]) != pass_size:
            pixels = F.interpolate(pixels, size=pass_size, mode="bicubic", align_corners=False, antialias=True)
            pixels = pixels.clamp_(0, 255).add_(0.5).floor_()
    return pixels.to(torch.uint8)


def _resize_like_pillow(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 `(S, 3, H, W)` to `size` = (h, w) the way Pillow's BICUBIC does, up to rare 1-2/255 steps."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images  # Pillow returns a copy for a same-size resize, too
    if images.device.type == "cpu":
        # torch's CPU uint8 kernel follows Pillow: integer weights, 8-bit rounding after each pass.
        return F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)
    return _resize_like_pillow_float(images, size)


def preprocess_frames(
    frames: FramesInput,
    mode: str = "crop",
    target_size: int = DEFAULT_TARGET_SIZE,
    device: Union[str, torch.device, None] = None,
) -> torch.Tensor:
    """Fast preprocessing of one batch of same-size live frames: `(S, H, W, 3)` uint8 RGB -> `(S, 3, H, W)`.

    Uses the same output size and crop / pad placement as `preprocess_images`. The resize runs in torch on
    `device` (default: the device `frames` is on; numpy input starts on the CPU) and differs from the exact
    route by at most 2/255 on rare pixels (see the module docstring). Returns float32 in [0, 1] on `device`.
    """
    return to_unit_float(preprocess_frames_u8(frames, mode, target_size, device))


def preprocess_frames_u8(
    frames: FramesInput,
    mode: str = "crop",
    target_size: int = DEFAULT_TARGET_SIZE,
    device: Union[str, torch.device, None] = None,
) -> torch.Tensor:
    """`preprocess_frames` before the conversion to float: `(S, 3, H, W)` uint8 (a caller that also needs the
    model images' colours keeps them as they are)."""
    _check_mode(mode)
    check_image_size("target_size", target_size)
    batch = _frames_as_tensor(frames)
    if device is not None:
        # Move the uint8 frames: a quarter of the bytes of float ones.
        batch = batch.to(device)
    height, width = batch.shape[1:3]
    # A channels-last view, the layout torch's uint8 kernel works in.
    resized = _resize_like_pillow(batch.permute(0, 3, 1, 2), _resized_size(height, width, mode, target_size))
    return _fit_centred(resized, *output_size(height, width, mode, target_size))
