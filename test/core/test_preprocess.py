# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""vggt_ros.preprocess against tensors from the official `load_and_preprocess_images` (fixtures/preprocess)."""

import logging

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import FIXTURES as REPO_FIXTURES
from vggt_ros.image_encoding import ImageFormatError
from vggt_ros.preprocess import (
    _resize_like_pillow_float,
    _resized_size,
    decode_image_file,
    output_size,
    preprocess_frames,
    preprocess_images,
)

FIXTURES = REPO_FIXTURES / "preprocess"
# Every image of the fixture folder, by the name its expected tensors are stored under (file stem).
IMAGE_FILES = {path.stem: path.name for path in sorted((FIXTURES / "images").iterdir())}
# Square inputs: the README says pad mode gives exactly the crop tensor, which is the only one stored.
SQUARE = ("astronaut", "camera", "logo")
BATCH4 = ("astronaut", "chelsea", "rocket", "chelsea_portrait")
SINGLE_CASES = [(name, mode) for name in IMAGE_FILES for mode in ("crop", "pad")]

# Fast route bound, from bench/preprocess_fast.py on these images: max 2/255 (an 8-bit rounding falls the
# other way in each of the two passes), mean <= 0.0054/255. The mean bound leaves about 4x headroom; any
# systematic error (wrong kernel, missing antialias, missing intermediate rounding) is >= 0.1/255.
FAST_MAX_ABS = 2 / 255
FAST_MEAN_ABS = 0.02 / 255


@pytest.fixture(scope="module")
def expected():
    return {key: u8.float() / 255 for key, u8 in load_file(FIXTURES / "preprocess_expected.safetensors").items()}


def _path(name):
    return FIXTURES / "images" / IMAGE_FILES[name]


def _official_rgb(name):
    """What a camera would hand over for this file: PIL RGB pixels, RGBA composited onto white first."""
    return _official_file_rgb(_path(name))


def _official_file_rgb(path):
    """The official loader's pixels of an image file: RGBA composited onto white, then Pillow's convert("RGB")."""
    image = Image.open(path)
    if image.mode == "RGBA":
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image)
    return np.asarray(image.convert("RGB"))


def _expected_single(expected, name, mode):
    return expected[f"{name}__{'crop' if name in SQUARE else mode}"]


def _assert_fast_close(actual, official):
    assert actual.shape == official.shape and actual.dtype == torch.float32
    diff = (actual - official).abs()
    assert diff.max().item() <= FAST_MAX_ABS + 1e-7
    assert diff.mean().item() <= FAST_MEAN_ABS
    # Like the official output, every value is k/255 (padding is exactly 1.0).
    assert torch.equal(actual, (actual * 255).round() / 255)


# --- exact route: official tensors, bit for bit --------------------------------------------------------------------


@pytest.mark.parametrize("name,mode", SINGLE_CASES)
def test_file_route_is_bit_exact(expected, name, mode):
    assert torch.equal(preprocess_images([_path(name)], mode=mode), _expected_single(expected, name, mode))


@pytest.mark.parametrize("name,mode", SINGLE_CASES)
def test_array_route_is_bit_exact(expected, name, mode):
    out = preprocess_images([_official_rgb(name)], mode=mode)
    assert out.dtype == torch.float32
    assert torch.equal(out, _expected_single(expected, name, mode))


def test_greyscale_2d_array_matches_the_greyscale_file(expected):
    grey = np.asarray(Image.open(_path("camera")))
    assert grey.ndim == 2
    assert torch.equal(preprocess_images([grey]), expected["camera__crop"])


def test_rgba_file_is_composited_onto_white(tmp_path):
    # logo.png is fully opaque, so the fixtures cannot show this: build a file with transparent pixels.
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    alpha = np.full((60, 80), 255, dtype=np.uint8)
    alpha[:, :30] = 0
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(tmp_path / "rgba.png")
    on_white = rgb.copy()
    on_white[:, :30] = 255
    assert torch.equal(preprocess_images([tmp_path / "rgba.png"]), preprocess_images([on_white]))


def test_other_transparent_modes_are_not_composited(tmp_path):
    # As in the official code, only mode RGBA is put on white; LA just drops its alpha.
    grey = np.random.default_rng(1).integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(np.dstack([grey, np.zeros_like(grey)]), mode="LA").save(tmp_path / "la.png")
    assert torch.equal(preprocess_images([tmp_path / "la.png"]), preprocess_images([grey]))


# Every 8-bit mode the folder's suffixes hold, as Pillow writes them: decoded exactly as the official loader does.
EIGHT_BIT_FILES = [
    ("1", "png"),
    ("L", "png"),
    ("LA", "png"),
    ("P", "png"),
    ("RGB", "png"),
    ("RGBA", "png"),
    ("L", "tiff"),
    ("RGB", "tiff"),
    ("CMYK", "tiff"),
    ("L", "jpg"),
    ("CMYK", "jpg"),
    ("RGB", "bmp"),
    ("P", "bmp"),
    ("RGB", "webp"),
]


@pytest.mark.parametrize("mode, suffix", EIGHT_BIT_FILES)
def test_8_bit_files_of_every_mode_decode_as_the_official_loader(tmp_path, mode, suffix):
    path = tmp_path / f"{mode}.{suffix}"
    Image.fromarray(_official_rgb("chelsea")[:60, :80]).convert(mode).save(path)
    with Image.open(path) as image:
        assert image.mode == mode
    np.testing.assert_array_equal(decode_image_file(path), _official_file_rgb(path))


def test_str_paths_work(expected):
    assert torch.equal(preprocess_images([str(_path("rocket"))], mode="pad"), expected["rocket__pad"])


def test_round_half_to_even_on_2_to_1_image(expected):
    # 300 * 518 / 600 / 14 == 18.5 -> round() gives 18 -> 252 rows; half-up would give 266.
    out = preprocess_images([_path("coffee_2to1")], mode="crop")
    assert out.shape == (1, 3, 252, 518)
    assert torch.equal(out, expected["coffee_2to1__crop"])


def test_mixed_size_batch_is_padded_and_warns(expected, caplog):
    files = [_path(name) for name in BATCH4]
    with caplog.at_level(logging.WARNING, logger="vggt_ros.preprocess"):
        out = preprocess_images(files, mode="crop")
    assert torch.equal(out, expected["batch4__crop"])
    assert any("different sizes" in r.getMessage() and "518x518" in r.getMessage() for r in caplog.records)


def test_mixed_files_and_arrays_in_one_batch(expected):
    mixed = [_path(n) if i % 2 else _official_rgb(n) for i, n in enumerate(BATCH4)]
    assert torch.equal(preprocess_images(mixed, mode="crop"), expected["batch4__crop"])


def test_pad_batch_is_the_single_results_stacked_without_warning(expected, caplog):
    with caplog.at_level(logging.WARNING, logger="vggt_ros.preprocess"):
        out = preprocess_images([_path(name) for name in BATCH4], mode="pad")
    assert torch.equal(out, torch.cat([_expected_single(expected, name, "pad") for name in BATCH4]))
    assert not caplog.records


# --- size rule -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "height,width,mode,size",
    [
        # From docs/vggt_architecture.md section 2 and the fixture README.
        (300, 600, "crop", (252, 518)),  # 18.5 -> 18
        (490, 740, "crop", (336, 518)),  # 24.5 -> 24
        (4000, 6000, "crop", (350, 518)),
        (3024, 4032, "crop", (392, 518)),
        (1080, 1920, "crop", (294, 518)),
        (451, 300, "crop", (518, 518)),  # portrait: centre-cropped
        (451, 300, "pad", (518, 518)),
        (300, 600, "pad", (518, 518)),
    ],
)
def test_output_size_known_answers(height, width, mode, size):
    assert output_size(height, width, mode) == size


@pytest.mark.parametrize("height,width", [(17, 30), (31, 20), (100, 101), (200, 100), (57, 199), (300, 451)])
@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_output_size_is_what_both_routes_produce(height, width, mode):
    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    exact = preprocess_images([rgb], mode=mode)
    fast = preprocess_frames(rgb[None], mode=mode)
    assert exact.shape == fast.shape == (1, 3, *output_size(height, width, mode))


def test_target_size_parameter():
    rgb = np.zeros((480, 640, 3), dtype=np.uint8)
    assert output_size(480, 640, "crop", target_size=224) == (168, 224)
    assert preprocess_images([rgb], target_size=224).shape == (1, 3, 168, 224)
    assert preprocess_frames(rgb[None], target_size=224).shape == (1, 3, 168, 224)


# --- fast streaming route ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,mode", SINGLE_CASES)
def test_fast_route_is_close_to_official(expected, name, mode):
    # np.asarray of a PIL image is read-only, like a view of a ROS message's bytes.
    _assert_fast_close(preprocess_frames(_official_rgb(name)[None], mode=mode), _expected_single(expected, name, mode))


@pytest.mark.parametrize("name,mode", [("logo", "crop"), ("chelsea", "pad"), ("chelsea_portrait", "crop")])
def test_float_kernel_for_devices_without_uint8_kernel_is_close_to_official(expected, name, mode):
    # preprocess_frames uses this kernel on GPUs; here it runs on the CPU. Fit/crop/pad is tested above,
    # so compare the resize alone against Pillow's.
    rgb = _official_rgb(name)
    height, width = rgb.shape[:2]
    size = _resized_size(height, width, mode, 518)
    pillow = np.array(Image.fromarray(rgb).resize(size[::-1], Image.Resampling.BICUBIC))
    ours = _resize_like_pillow_float(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None], size)[0].permute(1, 2, 0)
    assert ours.dtype == torch.uint8 and tuple(ours.shape) == pillow.shape
    _assert_fast_close(ours.float() / 255, torch.from_numpy(pillow).float() / 255)


def test_fast_route_batch_equals_frames_one_by_one():
    rgb = _official_rgb("rocket")
    frames = np.stack([rgb, rgb[::-1, ::-1], 255 - rgb])
    batch = preprocess_frames(torch.from_numpy(frames), mode="pad")
    assert batch.shape == (3, 3, 518, 518)
    for i in range(3):
        assert torch.equal(batch[i : i + 1], preprocess_frames(frames[i : i + 1], mode="pad"))


def test_flipped_channel_views_are_accepted_by_both_routes():
    # A BGR camera image turned into RGB by a negative-stride view, as a ROS node would do it.
    rgb = _official_rgb("rocket")
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    assert torch.equal(preprocess_images([bgr[..., ::-1]]), preprocess_images([rgb]))
    assert torch.equal(preprocess_frames(bgr[None, ..., ::-1]), preprocess_frames(rgb[None]))


def test_fast_route_device_argument():
    frames = _official_rgb("chelsea")[None]
    out = preprocess_frames(frames, device="cpu")
    assert out.device.type == "cpu" and out.is_contiguous()
    assert torch.equal(out, preprocess_frames(torch.from_numpy(frames.copy())))


# --- bad input -----------------------------------------------------------------------------------------------------


def test_empty_list():
    with pytest.raises(ValueError, match="images is empty"):
        preprocess_images([])


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "no_such_image.png"
    with pytest.raises(ValueError, match=r"not found: .*no_such_image\.png"):
        preprocess_images([_path("rocket"), missing])


def test_unreadable_file_names_the_path(tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match=r"cannot read image file .*garbage\.png"):
        preprocess_images([garbage])


def test_png_with_a_damaged_chunk_is_a_value_error_naming_the_path(tmp_path):
    path = tmp_path / "damaged.png"
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)  # several IDAT chunks
    Image.fromarray(noise).save(path)
    data = bytearray(path.read_bytes())
    second_idat = data.find(b"IDAT", data.find(b"IDAT") + 4)
    data[second_idat : second_idat + 4] = b"\x00\x01\x02\x03"
    path.write_bytes(bytes(data))
    with pytest.raises(SyntaxError, match="broken PNG file"):  # what Pillow raises
        Image.open(path).load()

    with pytest.raises(ValueError, match=r"cannot read image file .*damaged\.png.*broken PNG file"):
        preprocess_images([path])


def _ramp16(channels):
    ramp = (np.arange(40 * 50, dtype=np.uint32).reshape(40, 50) * 31).astype(np.uint16)
    return ramp if channels == 1 else np.dstack([ramp, ramp[::-1], 65535 - ramp, ramp.T.reshape(40, 50)][:channels])


# Files of more than 8 bits per channel (name, writer): the official convert("RGB") clips grey ones to white or black
# and keeps 8 of colour's 16 bits. Pillow writes 16-bit grey, 32-bit integer and float; OpenCV 16-bit colour.
WIDE_FILES = {
    "grey16.png": lambda path: Image.fromarray(_ramp16(1)).save(path),
    "grey16.tiff": lambda path: Image.fromarray(_ramp16(1)).save(path),
    "int32.tiff": lambda path: Image.fromarray(_ramp16(1).astype(np.int32) * 1000).save(path),
    "float.tiff": lambda path: Image.fromarray(_ramp16(1).astype(np.float32) / 65535).save(path),
    "opencv_grey16.png": lambda path: cv2.imwrite(str(path), _ramp16(1)),
    "rgb16.png": lambda path: cv2.imwrite(str(path), _ramp16(3)),
    "rgba16.png": lambda path: cv2.imwrite(str(path), _ramp16(4)),
    "rgb16.tiff": lambda path: cv2.imwrite(str(path), _ramp16(3)),
}


@pytest.mark.parametrize("name", WIDE_FILES)
def test_files_of_more_than_8_bits_per_channel_are_refused_not_clipped(tmp_path, name):
    path = tmp_path / name
    WIDE_FILES[name](path)
    with Image.open(path) as image:
        assert image.size == (50, 40)

    with pytest.raises(ImageFormatError, match=rf"{name}.*more than 8 bits per channel") as caught:
        decode_image_file(path)

    assert caught.value.kind == "encoding"


@pytest.mark.parametrize("shape", [(8, 8, 4), (8, 8, 1), (8, 8, 2), (2, 8, 8, 3), (24,)])
def test_wrong_channel_count_or_rank(shape):
    with pytest.raises(ValueError, match=r"image 0 has shape .*expected an \(H, W, 3\) RGB uint8"):
        preprocess_images([np.zeros(shape, dtype=np.uint8)])


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int64, bool])
def test_wrong_dtype(dtype):
    with pytest.raises(TypeError, match=r"image 1 has dtype .*expected uint8"):
        preprocess_images([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), dtype=dtype)])


@pytest.mark.parametrize("shape", [(0, 8, 3), (8, 0, 3), (0, 0)])
def test_zero_size_image(shape):
    with pytest.raises(ValueError, match="image 0 is empty"):
        preprocess_images([np.zeros(shape, dtype=np.uint8)])


def test_unknown_mode():
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"unknown preprocessing mode 'resize'; use one of \('crop', 'pad'\)"):
        preprocess_images([rgb], mode="resize")
    with pytest.raises(ValueError, match="unknown preprocessing mode"):
        preprocess_frames(rgb[None], mode="resize")
    with pytest.raises(ValueError, match="unknown preprocessing mode"):
        output_size(8, 8, "square")


@pytest.mark.parametrize("target_size", [0, 500, 518.0, True])
def test_bad_target_size(target_size):
    with pytest.raises(ValueError, match="target_size must be a positive multiple of the patch size 14"):
        output_size(480, 640, "crop", target_size=target_size)


def test_too_elongated_image():
    with pytest.raises(ValueError, match="too elongated"):
        preprocess_images([np.zeros((2, 1000, 3), dtype=np.uint8)])


def test_single_image_instead_of_a_list():
    with pytest.raises(TypeError, match="got a single ndarray; wrap one image in a list"):
        preprocess_images(np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="got a single str"):
        preprocess_images(str(_path("rocket")))


def test_not_a_sequence():
    with pytest.raises(TypeError, match="images must be a sequence of file paths and/or uint8 arrays, got int"):
        preprocess_images(5)


def test_wrong_item_type():
    with pytest.raises(TypeError, match=r"image 0 is a Tensor; expected a file path"):
        preprocess_images([torch.zeros(8, 8, 3, dtype=torch.uint8)])


@pytest.mark.parametrize(
    "frames,error,message",
    [
        (np.zeros((8, 8, 3), np.uint8), ValueError, r"expected \(S, H, W, 3\).*frames\[None\]"),
        (np.zeros((1, 8, 8, 4), np.uint8), ValueError, r"shape \(1, 8, 8, 4\); expected \(S, H, W, 3\)"),
        (np.zeros((0, 8, 8, 3), np.uint8), ValueError, "frames are empty"),
        (np.zeros((1, 8, 8, 3), np.float32), TypeError, "dtype float32; expected uint8"),
        (torch.zeros(1, 8, 8, 3), TypeError, "dtype torch.float32; expected torch.uint8"),
        ([np.zeros((8, 8, 3), np.uint8)], TypeError, "frames is a list; expected one"),
    ],
)
def test_bad_frames(frames, error, message):
    with pytest.raises(error, match=message):
        preprocess_frames(frames)


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize(
    "height, width, pad_to",
    [(480, 640, None), (720, 1280, None), (900, 500, None), (480, 640, (420, 518)), (480, 640, (350, 532))],
)
def test_pixel_map_puts_image_points_where_preprocessing_puts_them(mode, height, width, pad_to):
    """Marker dots drawn in a camera image are found in the preprocessed image where `pixel_map` says."""
    from vggt_ros.preprocess import pixel_map

    if pad_to is not None and mode == "pad":
        pad_to = (518, 532)
    mapping = pixel_map(height, width, mode, pad_to=pad_to)
    rng = np.random.default_rng(height + width)
    dots = []
    for _ in range(6):
        centre = rng.uniform(0.3, 0.7, 2) * (width, height)
        model = mapping.to_model(centre)
        if not (20 <= model[0] < mapping.model_hw[1] - 20 and 20 <= model[1] < mapping.model_hw[0] - 20):
            continue
        u, v = np.meshgrid(np.arange(width), np.arange(height))
        dots.append(model)
        image_only = np.zeros((height, width, 3), np.uint8)
        image_only[np.hypot(u - centre[0], v - centre[1]) <= 12] = 200  # grey: white is the padding
        rows, cols = np.nonzero(image_only[..., 0])
        model = mapping.to_model(np.array([cols.mean(), rows.mean()]))  # the drawn disk's own centroid
        model_image = preprocess_images([image_only], mode=mode, pad_to=pad_to)[0, 0].numpy()
        assert model_image.shape == mapping.model_hw
        weights = np.where(model_image < 0.9, model_image, 0.0)  # white padding is not the dot
        vv, uu = np.nonzero(weights > 0.05)
        w = weights[vv, uu]
        found = np.array([(uu * w).sum() / w.sum(), (vv * w).sum() / w.sum()])
        # 8-bit rounding moves a centroid by up to ~0.05 px; dropping the half-pixel term of the resize would
        # move it by 0.5 * (1 - scale): 0.1 px at 640 wide, 0.3 px at 1280.
        assert np.abs(found - model).max() < 0.07, (found, model)
    assert dots, "no marker landed inside the model image"
    back = mapping.to_image(mapping.to_model(np.array([[3.0, 7.0], [width - 1.0, height - 1.0]])))
    np.testing.assert_allclose(back, [[3.0, 7.0], [width - 1.0, height - 1.0]])


def test_pixel_map_intrinsics_project_like_the_model_image():
    """A 3-D point projects through the image intrinsics onto the image pixel that maps to its model pixel."""
    from vggt_ros.preprocess import pixel_map

    mapping = pixel_map(480, 640, "crop")
    model_k = np.array([[400.0, 0, 259.0], [0, 410.0, 175.0], [0, 0, 1]])
    image_k = mapping.intrinsics_to_image(model_k)
    point = np.array([0.3, -0.2, 2.5])
    in_model = (model_k @ point)[:2] / point[2]
    in_image = (image_k @ point)[:2] / point[2]
    np.testing.assert_allclose(mapping.to_model(in_image), in_model, atol=1e-9)


@pytest.mark.parametrize(
    "height, width, mode, pad_to",
    [
        (120, 160, "pad", None),  # landscape in pad mode: white rows above and below
        (451, 300, "pad", None),  # portrait in pad mode: white columns
        (120, 160, "crop", (154, 154)),  # a landscape frame padded to a folder's portrait size
        (480, 640, "crop", (350, 532)),  # padded on both axes
        (900, 500, "crop", None),  # portrait in crop mode: rows cut away, no padding
        (480, 640, "crop", None),  # a plain resize
    ],
)
def test_image_box_is_exactly_what_preprocessing_does_not_fill_with_white(height, width, mode, pad_to):
    """A grey image preprocessed by the exact route: every pixel inside `PixelMap.image_box` shows it, every pixel
    outside is the padding's white (1.0)."""
    from vggt_ros.preprocess import pixel_map

    target_size = 154 if pad_to == (154, 154) else 518
    mapping = pixel_map(height, width, mode, target_size, pad_to)
    grey = np.full((height, width, 3), 100, np.uint8)
    model_image = preprocess_images([grey], mode=mode, target_size=target_size, pad_to=pad_to)[0, 0].numpy()
    assert model_image.shape == mapping.model_hw
    top, bottom, left, right = mapping.image_box()
    inside = np.zeros(mapping.model_hw, dtype=bool)
    inside[top:bottom, left:right] = True
    np.testing.assert_array_equal(model_image == 1.0, ~inside)
