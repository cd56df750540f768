# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Per-frame files of `DatasetWriter` read back with Pillow, OpenCV and numpy; strict JSON; bad input."""

import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from vggt_ros.dataset import strict_json
from vggt_ros.dataset.frames import ExportFrame
from vggt_ros.dataset.tracks import PointSampling
from vggt_ros.dataset.writer import DatasetConfig, DatasetWriter
from vggt_ros.preprocess import pixel_map

SMALL = DatasetConfig(sampling=PointSampling(points_per_frame=20))


def make_frame(name="000000.png", mode="crop", image_hw=(640, 480), depth=None, seed=0, **changes) -> ExportFrame:
    """A frame with a depth ramp from 0.3 m to 70 m across the model columns (beyond a 16-bit PNG's 65.535 m at
    the right), a block of NaN depth and random confidence; ``changes`` replace fields."""
    mapping = pixel_map(*image_hw, mode)
    height, width = mapping.model_hw
    rng = np.random.default_rng(seed)
    if depth is None:
        depth = np.broadcast_to(np.linspace(0.3, 70.0, width, dtype=np.float32), (height, width)).copy()
        depth += rng.uniform(0.0, 0.01, depth.shape).astype(np.float32)
        depth[100:140, 50:90] = np.nan
    fields = dict(
        name=name,
        camera=0,
        stamp_ns=123,
        pixel_map=mapping,
        world_from_camera=np.eye(4),
        intrinsics=np.array([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1.0]]),
        depth=depth,
        confidence=rng.uniform(1.0, 20.0, (height, width)).astype(np.float32),
        colors=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
    )
    fields.update(changes)
    return ExportFrame(**fields)


def expected_at_image_pixels(frame: ExportFrame, model_values: np.ndarray, fill: float) -> np.ndarray:
    """Brute force: each camera pixel takes the model pixel closest to where its centre maps; where that is outside
    the model image, the model pixel whose centre lies in the camera pixel (its pixel-corner coordinate floors to
    it), else ``fill``."""
    mapping = frame.pixel_map
    height, width = frame.image_hw
    nearest = []
    for axis, side, model_side in ((1, height, mapping.model_hw[0]), (0, width, mapping.model_hw[1])):
        position = mapping.scale[axis] * np.arange(side) + mapping.offset[axis]
        distance = np.abs(position[:, None] - np.arange(model_side)[None, :])
        closest = model_side - 1 - distance[:, ::-1].argmin(axis=1)  # a tie (a centre half-way) to the higher
        holder = np.floor((np.arange(model_side) - mapping.offset[axis]) / mapping.scale[axis] + 0.5)  # per centre
        held = [np.flatnonzero(holder == pixel) for pixel in range(side)]
        inside = (position >= -0.5) & (position < model_side - 0.5)
        nearest.append(np.array([c if ok else (h[0] if len(h) else -1) for c, ok, h in zip(closest, inside, held)]))
    rows, columns = nearest
    values = np.full((height, width), fill, dtype=np.float64)
    inside = (rows >= 0)[:, None] & (columns >= 0)[None, :]
    values[inside] = model_values[np.ix_(rows[rows >= 0], columns[columns >= 0])].ravel()
    return values


@pytest.mark.parametrize("mode, image_hw", [("crop", (640, 480)), ("pad", (480, 640))])
def test_metric_depth_png_holds_millimetres_at_the_image_resolution(tmp_path, mode, image_hw):
    frame = make_frame(mode=mode, image_hw=image_hw)
    with DatasetWriter(tmp_path, metric=True, config=SMALL) as writer:
        writer.add(frame)
        written = writer.finish()
    expected_m = expected_at_image_pixels(frame, frame.depth.astype(np.float64), math.nan)
    path = tmp_path / "depth" / "000000.png"
    with Image.open(path) as image:
        assert image.mode == "I;16" and image.size == (image_hw[1], image_hw[0])
        from_pillow = np.asarray(image).astype(np.float64)
    from_opencv = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH)  # what nerfstudio reads depth with
    assert from_opencv.dtype == np.uint16 and np.array_equal(from_opencv, from_pillow)
    has_depth = np.isfinite(expected_m)
    in_range = has_depth & (expected_m <= 65.535)
    assert np.abs(from_pillow[in_range] - expected_m[in_range] * 1000.0).max() <= 0.5 + 1e-3  # rounded to 1 mm
    assert np.all(from_pillow[~has_depth] == 0)
    clamped = has_depth & (expected_m > 65.5355)
    assert clamped.any() and np.all(from_pillow[clamped] == 65535)
    assert written.clamped_depth_pixels == np.count_nonzero(clamped)


@pytest.mark.parametrize("image_hw", [(450, 350), (200, 160), (97, 86), (130, 100)])
def test_every_camera_pixel_holding_a_model_pixel_has_its_depth_at_the_crop_edge(tmp_path, image_hw):
    """A portrait 350 x 450 image enlarged and cropped to 518 x 518: the camera rows at the crop's edge hold the
    edge model row's centre (where COLMAP's observations of it land) but were NaN in the depth file, since their
    own centres map just beyond the model image (two camera pixels beyond, enlarged three times or more)."""
    height, width = pixel_map(*image_hw, "crop").model_hw
    rows = np.arange(height, dtype=np.float32)[:, None]
    frame = make_frame(image_hw=image_hw, depth=np.broadcast_to(1.0 + rows, (height, width)).copy())
    with DatasetWriter(tmp_path, metric=False, config=SMALL) as writer:
        writer.add(frame)
        writer.finish()
    depth = np.load(tmp_path / "depth" / "000000.npy")
    np.testing.assert_array_equal(depth, expected_at_image_pixels(frame, frame.depth, 0.0).astype(np.float32))
    rows, columns = np.mgrid[0:height, 0:width]
    corners = frame.corner_pixels(np.stack([columns.ravel(), rows.ravel()], axis=1))  # every model pixel
    u, v = np.floor(corners).astype(int).T
    seen = (u >= 0) & (u < image_hw[1]) & (v >= 0) & (v < image_hw[0])
    assert (depth[v[seen], u[seen]] > 0).all()
    assert (depth[0] == 0).all() and (depth[-1] == 0).all()  # what the crop cut away stays empty


def test_world_unit_depth_and_confidence_npy_round_trip_exactly(tmp_path):
    frame = make_frame()  # crop of a portrait image: the top and bottom rows have no prediction
    with DatasetWriter(tmp_path, metric=False, config=SMALL) as writer:
        writer.add(frame)
        writer.finish()
    depth = np.load(tmp_path / "depth" / "000000.npy")
    confidence = np.load(tmp_path / "confidence" / "000000.npy")
    assert depth.dtype == confidence.dtype == np.float32
    # No prediction is 0 in both files: the depth block the frame holds as NaN, and the rows the crop cut away.
    model_depth = np.nan_to_num(frame.depth, nan=0.0)
    np.testing.assert_array_equal(depth, expected_at_image_pixels(frame, model_depth, 0.0).astype(np.float32))
    np.testing.assert_array_equal(confidence, expected_at_image_pixels(frame, frame.confidence, 0.0).astype(np.float32))
    assert np.isfinite(depth).all() and np.isfinite(confidence).all()
    assert (depth[0] == 0).all() and (confidence[0] == 0).all() and (depth[frame.image_hw[0] // 2, :40] > 0).all()


def test_camera_images_are_written_under_their_names(tmp_path):
    rows, columns = np.indices((640, 480))
    image = np.stack((columns * 255 // 479, rows * 255 // 639, (rows + columns) % 256), axis=-1).astype(np.uint8)
    with DatasetWriter(tmp_path, metric=True, config=SMALL) as writer:
        writer.add(make_frame("cam0/a.png"), image)
        writer.add(make_frame("cam0/b.jpg"), image)
        writer.finish()
    with Image.open(tmp_path / "images" / "cam0" / "a.png") as png:
        assert np.array_equal(np.asarray(png), image)
    with Image.open(tmp_path / "images" / "cam0" / "b.jpg") as jpeg:
        assert jpeg.format == "JPEG" and np.abs(np.asarray(jpeg).astype(int) - image).mean() < 3.0
    assert (tmp_path / "depth" / "cam0" / "b.png").is_file() and (tmp_path / "confidence" / "cam0" / "a.npy").is_file()


def test_finish_and_close_leave_no_scratch_or_temporary_files(tmp_path):
    with DatasetWriter(tmp_path / "finished", metric=True, config=SMALL) as writer:
        writer.add(make_frame())
        writer.finish()
    with DatasetWriter(tmp_path / "abandoned", metric=True, config=SMALL) as writer:
        writer.add(make_frame())
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    assert (tmp_path / "finished" / "transforms.json").is_file()
    assert not (tmp_path / "abandoned" / "colmap").exists()


def test_strict_json_turns_nan_and_infinities_anywhere_into_null(tmp_path):
    value = {
        "a": math.nan,
        "b": [1.0, -math.inf, {"c": math.inf}],
        "d": (np.float32("nan"), np.int64(3)),
        "e": np.array([[0.5, np.nan], [np.inf, 2.0]]),
        "f": np.bool_(True),
        "g": "NaN",
    }

    def reject(constant):
        raise ValueError(f"non-standard constant {constant}")

    expected = {
        "a": None,
        "b": [1.0, None, {"c": None}],
        "d": [None, 3],
        "e": [[0.5, None], [None, 2.0]],
        "f": True,
        "g": "NaN",
    }
    assert json.loads(strict_json.dumps(value), parse_constant=reject) == expected
    path = strict_json.write(tmp_path / "x.json", value)
    assert json.loads(path.read_text(), parse_constant=reject) == expected
    with pytest.raises(TypeError):
        strict_json.dumps({"path": object()})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"depth": np.zeros((10, 10), np.float32)}, "depth has shape (10, 10)"),
        ({"confidence": np.zeros((518, 392), np.float32)}, "confidence has shape"),
        ({"colors": np.zeros((518, 518, 3), np.float32)}, "colors must be uint8"),
        ({"depth": np.zeros((518, 518), np.int32)}, "depth must be a floating-point"),
        ({"world_from_camera": np.diag([2.0, 1.0, 1.0, 1.0])}, "not a rigid pose"),
        ({"world_from_camera": np.diag([1.0, 1.0, -1.0, 1.0])}, "not a rigid pose"),
        ({"world_from_camera": np.full((4, 4), np.nan)}, "finite (4, 4)"),
        ({"intrinsics": np.array([[300.0, 2.0, 200], [0, 300, 250], [0, 0, 1]])}, "no skew"),
        ({"intrinsics": np.array([[-300.0, 0, 200], [0, 300, 250], [0, 0, 1]])}, "fx, fy > 0"),
        ({"name": "my image.png"}, "without spaces"),
        ({"name": "../escape.png"}, "relative path"),
        ({"name": "/abs.png"}, "relative path"),
        ({"name": ""}, "non-empty"),
        ({"camera": -1}, "camera must be an int >= 0"),
        ({"stamp_ns": 1.5}, "stamp_ns must be an int >= 0"),
        ({"pixel_map": (640, 480)}, "pixel_map must be a vggt_ros.preprocess.PixelMap"),
    ],
)
def test_bad_frames_are_rejected_with_what_is_wrong(changes, message):
    with pytest.raises(ValueError) as error:
        make_frame(**changes)
    assert message in str(error.value)


def test_bad_use_of_the_writer_is_rejected_with_what_is_wrong(tmp_path):
    writer = DatasetWriter(tmp_path, metric=True, config=SMALL)
    writer.add(make_frame("a.png"))
    with pytest.raises(ValueError, match="'a.png' was already added"):
        writer.add(make_frame("a.png"))
    with pytest.raises(ValueError, match="stem 'a'"):
        writer.add(make_frame("a.jpg"))
    with pytest.raises(ValueError, match=r"shape \(640, 480, 3\)"):
        writer.add(make_frame("b.png"), np.zeros((480, 640, 3), np.uint8))
    with pytest.raises(ValueError, match="no format for the suffix '.xyz'"):
        writer.add(make_frame("c.xyz"), np.zeros((640, 480, 3), np.uint8))
    with pytest.raises(ValueError, match="relative path"):
        writer.finish(ply_path="/tmp/map.ply")
    with pytest.raises(ValueError, match="not a file"):
        writer.finish(ply_path="map.ply")
    assert writer.num_frames == 1  # the rejected frames left nothing behind
    writer.finish()
    with pytest.raises(RuntimeError, match="finished"):
        writer.add(make_frame("d.png"))
    with pytest.raises(ValueError, match="no frame was added"):
        DatasetWriter(tmp_path / "empty", metric=False).finish()
    with pytest.raises(ValueError, match="metric must be True"):
        DatasetWriter(tmp_path, metric=1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PointSampling(points_per_frame=0), "points_per_frame must be an int >= 1"),
        (lambda: PointSampling(confidence_percentile=100.0), "confidence_percentile must be in [0, 100)"),
        (lambda: PointSampling(neighbour_frames=-1), "neighbour_frames must be an int >= 0"),
        (lambda: PointSampling(depth_agreement=3.0), "depth_agreement must be a fraction"),
        (lambda: DatasetConfig(jpeg_quality=100), "jpeg_quality must be an int in [1, 95]"),
    ],
)
def test_bad_configuration_is_rejected(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)
