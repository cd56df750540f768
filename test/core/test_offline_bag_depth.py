# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""``--metric-depth --depth-topics`` on a recording: a depth camera's topic, registered to the colour images, sets the
metric scale as the node's depth source does (a RealSense recording's aligned depth gave no metric offline run).

The depth is written as a driver records it (16UC1 millimetres, stamped a few ms after its colour image and logged
after it), so the metric depth the run exports can be checked against it pixel for pixel."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import TINY
from support.bags import NANOSECONDS, write_raw_bag
from support.photos import panned_photographs
from vggt_ros.offline import main
from vggt_ros.recording.bag_reader import BagError, BagImageSource

FAST = ["--weights", str(TINY), "--device", "cpu", "--image-size", "154", "--no-loop-closure"]
START_NS = 1_700_000_000 * NANOSECONDS
PERIOD_NS = 100_000_000
DEPTH_DELAY_NS = 3_000_000  # a depth image stamped 3 ms after its colour image, as two sensors' triggers give
COLOUR, DEPTH = "/camera/color/image_raw", "/camera/aligned_depth_to_color/image_raw"


def sensor_depth_mm(height: int, width: int, frame: int) -> np.ndarray:
    """A slanted surface 1.2 - 2.0 m away, moving a little with each frame, with a hole (0) in a corner."""
    rows, columns = np.mgrid[0:height, 0:width]
    depth_m = 1.2 + 0.8 * columns / width + 0.1 * rows / height + 0.01 * frame
    millimetres = np.round(depth_m * 1000.0).astype(np.uint16)
    millimetres[:8, :8] = 0
    return millimetres


def write_rgbd_bag(path, frames: int = 6, depth=sensor_depth_mm):
    """A colour topic of panned photographs and, unless ``depth`` is None, a depth topic of ``depth(H, W, frame)``
    (uint16 millimetres); returns the bag and each colour stamp's depth."""
    photos = panned_photographs(frames)
    height, width = photos[0].shape[:2]
    records, depths = [], {}
    for index, photo in enumerate(photos):
        stamp = START_NS + index * PERIOD_NS
        records.append((COLOUR, stamp + 1_000_000, stamp, photo))
        image = None if depth is None else depth(height, width, index)
        if image is not None:  # None: no depth image for this frame
            depths[stamp] = image
            records.append((DEPTH, stamp + 2_000_000, stamp + DEPTH_DELAY_NS, image))
    return write_raw_bag(path, records), depths


def _exported_depth(out, metric: bool) -> dict[int, np.ndarray]:
    """Each exported frame's depth file, by its stamp: metres, NaN where none."""
    depth = {}
    for frame in json.loads((out / "transforms.json").read_text())["frames"]:
        stamp = int(frame["file_path"].rsplit("/", 1)[-1].removesuffix(".png"))
        if metric:
            with Image.open(out / frame["depth_file_path"]) as file:
                millimetres = np.asarray(file, dtype=np.float64)
            depth[stamp] = np.where(millimetres > 0, millimetres / 1000.0, np.nan)
        else:
            world_units = np.load(out / frame["depth_file_path"]).astype(np.float64)
            depth[stamp] = np.where(world_units > 0, world_units, np.nan)
    return depth


def test_a_recordings_registered_depth_sets_the_metric_scale_of_every_output(tmp_path):
    """The depth sensor says the scene is 2.5 times as deep as the network's unit-less depth (the first run's):
    the metric run's depth is then the sensor's, and its trajectory 2.5 times the unit-less one."""
    colour_only, _ = write_rgbd_bag(tmp_path / "colour", depth=None)
    unitless = tmp_path / "unitless"
    assert main(["--bag", str(colour_only), "--topics", COLOUR, "--out", str(unitless), *FAST]) == 0
    network = _exported_depth(unitless, metric=False)
    sensor = {
        stamp: np.nan_to_num(np.round(2500.0 * depth), nan=0.0).astype(np.uint16) for stamp, depth in network.items()
    }
    stamps = sorted(sensor)
    bag, _ = write_rgbd_bag(tmp_path / "rgbd", depth=lambda h, w, index: sensor[stamps[index]])
    out = tmp_path / "metric"
    arguments = ["--bag", str(bag), "--topics", COLOUR, "--metric-depth", "--depth-topics", DEPTH]
    assert main([*arguments, "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["units"] == "metres" and summary["skipped_inputs"] == {}
    # In metres from its first window on (the field was null unless frames had been held back before it).
    assert summary["held_back_frames"] == 0 and summary["metric_from_window"] == summary["per_window"][0]["window"]
    assert json.loads((unitless / "summary.json").read_text())["metric_from_window"] is None
    metric = _exported_depth(out, metric=True)
    assert sorted(metric) == stamps
    for stamp in stamps:
        both = np.isfinite(metric[stamp]) & (sensor[stamp] > 0)
        ratio = metric[stamp][both] / (sensor[stamp][both] / 1000.0)
        assert abs(np.median(ratio) - 1.0) < 0.01, stamp  # millimetres and nearest-neighbour resampling
    unitless_path, metric_path = (_positions(folder / "trajectory.tum") for folder in (unitless, out))
    np.testing.assert_allclose(metric_path, 2.5 * unitless_path, rtol=0.01, atol=1e-4)


def _positions(trajectory) -> np.ndarray:
    rows = [line.split() for line in trajectory.read_text().splitlines() if not line.startswith("#")]
    return np.array([[float(value) for value in row[1:4]] for row in rows])


def test_the_depth_image_stamped_nearest_within_the_slop_is_its_colour_images(tmp_path):
    bag, depths = write_rgbd_bag(tmp_path / "bag", frames=3)
    source = BagImageSource(bag, [COLOUR], depth_topics=[DEPTH], depth_slop_s=0.02)
    for stamp, millimetres in depths.items():
        expected = np.where(millimetres > 0, millimetres / 1000.0, np.nan)
        np.testing.assert_allclose(source.depth_lookup(0, stamp), expected, rtol=1e-6)
    assert source.depth_lookup(0, START_NS - 50_000_000) is None  # 53 ms from the nearest: beyond the slop
    strict = BagImageSource(bag, [COLOUR], depth_topics=[DEPTH], depth_slop_s=0.002)
    assert strict.depth_lookup(0, START_NS) is None  # 3 ms apart


def test_a_depth_image_without_a_reading_is_skipped_and_counted_once(tmp_path):
    """The session asks again for a frame without depth in every window that holds it: each ask counted the same
    message again (14 for one image in a sliding window)."""
    bag, _ = write_rgbd_bag(tmp_path / "bag", frames=2, depth=lambda h, w, i: np.zeros((h, w), np.uint16))
    source = BagImageSource(bag, [COLOUR], depth_topics=[DEPTH])
    for _ in range(3):
        assert source.depth_lookup(0, START_NS) is None
    assert source.skipped == {DEPTH: {"no_reading": 1}}


def test_a_depth_image_of_another_size_than_its_colour_image_is_skipped_and_counted(tmp_path):
    """Depth at half the colour resolution (not registered to it) cost each window its scale, said so in the log,
    but summary.json's skipped_inputs did not count it: it said no input was lost."""
    bag, _ = write_rgbd_bag(tmp_path / "bag", frames=4, depth=lambda h, w, i: sensor_depth_mm(h // 2, w // 2, i))
    out = tmp_path / "out"
    arguments = ["--bag", str(bag), "--topics", COLOUR, "--metric-depth", "--depth-topics", DEPTH]
    assert main([*arguments, "--out", str(out), *FAST]) == 1  # nothing in metres: no result, said so
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_inputs"] == {DEPTH: {"resolution": 4}}, summary["skipped_inputs"]
    assert "depth image is 80x60 (WxH) but" in summary["no_result"]


def test_the_depth_of_the_last_colour_image_in_the_time_range_is_found(tmp_path):
    """--stop between a colour image and its depth, logged 1 ms later: the colour image was read, its depth not."""
    bag, depths = write_rgbd_bag(tmp_path / "bag", frames=3)
    last = max(depths)
    stop_s = (last - START_NS) / NANOSECONDS + 0.0005  # after the last colour image's log time, before its depth's
    source = BagImageSource(bag, [COLOUR], stop_s=stop_s, depth_topics=[DEPTH])
    assert [stamp for _, stamp, _ in source] == sorted(depths)
    assert source.depth_lookup(0, last) is not None


def test_a_depth_topic_without_a_message_in_the_time_range_is_named(tmp_path, caplog):
    bag, _ = write_rgbd_bag(
        tmp_path / "bag", frames=4, depth=lambda h, w, i: sensor_depth_mm(h, w, i) if i < 2 else None
    )
    source = BagImageSource(bag, [COLOUR], start_s=0.25, depth_topics=[DEPTH])
    with caplog.at_level("WARNING", logger="vggt_ros.recording.bag_reader"):
        assert source.depth_lookup(0, START_NS + 3 * PERIOD_NS) is None
    assert f"depth topic {DEPTH} has no readable message in the time range: camera 0's images have no" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--depth-topics", DEPTH], "--depth-topics set the metric scale: add --metric-depth"),
        (["--metric-depth"], "--metric-depth with --bag needs --depth-topics (one per camera)"),
        (["--metric-depth", "--depth-topics", f"{DEPTH},/other"], "--depth-topics must give one depth topic per"),
    ],
)
def test_depth_options_that_cannot_work_are_refused_at_parsing(tmp_path, capsys, options, message):
    with pytest.raises(SystemExit):
        main(["--bag", str(tmp_path), "--topics", COLOUR, *options, "--out", str(tmp_path / "out"), *FAST])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("/camera/depth/missing", "depth topic /camera/depth/missing is not in bag"),
        (COLOUR, "depth topics must be distinct topics of their own, not image topics"),
        (f"{DEPTH}/compressedDepth", "compressedDepth transport is not read; record the raw depth topic"),
        # Colour images on the depth topic: each was skipped, and the run ended saying no depth matched.
        ("colour", f"depth topic {DEPTH} in bag '.*' carries rgb8 images, not depth"),
    ],
)
def test_a_depth_topic_the_bag_cannot_give_is_refused_before_any_work(tmp_path, topic, message):
    if topic == "colour":
        photo = panned_photographs(1)[0]
        bag = write_raw_bag(tmp_path / "bag", [(COLOUR, START_NS, START_NS, photo), (DEPTH, START_NS, START_NS, photo)])
        topic = DEPTH
    else:
        bag, _ = write_rgbd_bag(tmp_path / "bag", frames=1)
    with pytest.raises((BagError, ValueError), match=message):
        BagImageSource(bag, [COLOUR], depth_topics=[topic])
