# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""nerfstudio transforms.json of `DatasetWriter`: known 3-D points, projected with the file's fields in nerfstudio's
convention (written out here, independently of the exporter), land on the camera pixels they were placed at."""

import json

import numpy as np
import pytest
from PIL import Image

from vggt_ros.dataset.frames import ExportFrame
from vggt_ros.dataset.tracks import PointSampling
from vggt_ros.dataset.writer import DatasetConfig, DatasetWriter
from vggt_ros.preprocess import pixel_map

LAYOUTS = [("crop", (480, 640)), ("crop", (640, 480)), ("pad", (480, 640)), ("pad", (720, 1280))]
SAMPLING = DatasetConfig(sampling=PointSampling(points_per_frame=50))


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    return (
        np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        @ np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    )


def camera_rig(mode: str, image_hw: tuple[int, int], count: int = 3):
    """``count`` frames with known poses and camera-image intrinsics (index convention); depth 2 m everywhere."""
    mapping = pixel_map(*image_hw, mode)
    height, width = image_hw
    model_from_image = np.array(
        [[mapping.scale[0], 0, mapping.offset[0]], [0, mapping.scale[1], mapping.offset[1]], [0, 0, 1]]
    )
    frames, image_intrinsics = [], []
    for i in range(count):
        pose = np.eye(4)
        pose[:3, :3] = rotation(0.3 * i - 0.2, 0.1 * i, 0.05 - 0.04 * i)
        pose[:3, 3] = [0.5 * i, -0.2 * i, 1.0 + 0.1 * i]
        k_image = np.array(
            [[0.9 * width + 5 * i, 0, width / 2 + 4.2 - i], [0, 0.88 * width, height / 2 - 1.7], [0, 0, 1]]
        )
        model_hw = mapping.model_hw
        frames.append(
            ExportFrame(
                name=f"{i:06d}.jpg",
                camera=i % 2,
                stamp_ns=1_700_000_000_000_000_000 + i * 50_000_000,
                pixel_map=mapping,
                world_from_camera=pose,
                intrinsics=model_from_image @ k_image,
                depth=np.full(model_hw, 2.0, np.float32),
                confidence=np.full(model_hw, 3.0, np.float32),
                colors=np.zeros((*model_hw, 3), np.uint8),
            )
        )
        image_intrinsics.append(k_image)
    return frames, image_intrinsics


def strict_load(path) -> dict:
    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=reject)


@pytest.mark.parametrize("mode, image_hw", LAYOUTS, ids=[f"{m}-{w}x{h}" for m, (h, w) in LAYOUTS])
def test_points_projected_with_the_transforms_land_on_the_pixels_they_were_placed_at(tmp_path, mode, image_hw):
    frames, image_intrinsics = camera_rig(mode, image_hw)
    with DatasetWriter(tmp_path, metric=True, config=SAMPLING) as writer:
        for frame in frames:
            writer.add(frame)
        writer.finish()
    transforms = strict_load(tmp_path / "transforms.json")
    assert transforms["camera_model"] == "OPENCV" and len(transforms["frames"]) == len(frames)
    height, width = image_hw
    rng = np.random.default_rng(7)
    for frame, k_image, entry in zip(frames, image_intrinsics, transforms["frames"]):
        assert entry["file_path"] == f"images/{frame.name}"
        assert (entry["w"], entry["h"]) == (width, height)
        assert [entry[k] for k in ("k1", "k2", "p1", "p2")] == [0.0] * 4
        # Known points: camera pixels (index convention) at random depths, through the true camera.
        pixels = rng.uniform([0, 0], [width - 1, height - 1], size=(200, 2))
        depth = rng.uniform(0.5, 20.0, size=200)
        rays = np.linalg.solve(k_image, np.column_stack((pixels, np.ones(200))).T).T
        points = (rays * depth[:, None]) @ frame.world_from_camera[:3, :3].T + frame.world_from_camera[:3, 3]
        # nerfstudio: transform_matrix is camera-to-world with OpenGL axes (x right, y up, z back); flipping y and z
        # gives OpenCV axes; pixels in the corner convention, so a pixel centre is at index + 0.5.
        camera_to_world = np.array(entry["transform_matrix"]) @ np.diag([1.0, -1.0, -1.0, 1.0])
        camera = (points - camera_to_world[:3, 3]) @ camera_to_world[:3, :3]
        assert (camera[:, 2] > 0).all()
        u = entry["fl_x"] * camera[:, 0] / camera[:, 2] + entry["cx"]
        v = entry["fl_y"] * camera[:, 1] / camera[:, 2] + entry["cy"]
        assert np.abs(u - (pixels[:, 0] + 0.5)).max() < 1e-6
        assert np.abs(v - (pixels[:, 1] + 0.5)).max() < 1e-6


@pytest.mark.parametrize("metric", [True, False])
def test_depth_files_have_the_image_size_and_the_units_are_written_down(tmp_path, metric):
    frames, _ = camera_rig("crop", (640, 480))
    (tmp_path / "map.ply").write_text("ply\n")
    with DatasetWriter(tmp_path, metric=metric, config=SAMPLING) as writer:
        for frame in frames:
            writer.add(frame)
        writer.finish(ply_path="map.ply")
    transforms = strict_load(tmp_path / "transforms.json")
    assert transforms["ply_file_path"] == "map.ply"
    assert transforms["units"] == ("metres" if metric else "VGGT world units (not metric)")
    assert transforms["depth_unit_scale_factor"] == (0.001 if metric else 1.0)
    for frame, entry in zip(frames, transforms["frames"]):
        assert entry["depth_file_path"] == f"depth/{frame.stem}" + (".png" if metric else ".npy")
        assert entry["confidence_file_path"] == f"confidence/{frame.stem}.npy"
        assert (entry["camera_index"], entry["stamp_ns"]) == (frame.camera, frame.stamp_ns)
        path = tmp_path / entry["depth_file_path"]
        if metric:
            with Image.open(path) as depth_image:
                assert depth_image.size == (entry["w"], entry["h"])
                depth = np.asarray(depth_image) * transforms["depth_unit_scale_factor"]
        else:
            depth = np.load(path)
        assert depth.shape == (entry["h"], entry["w"])
        # Crop mode cut rows off this portrait image: the middle row has the 2 m depth, the first none.
        assert depth[entry["h"] // 2].tolist() == [2.0] * entry["w"]
        assert not np.any(depth[0] > 0)


def test_transforms_without_a_point_cloud_have_no_ply_path(tmp_path):
    frames, _ = camera_rig("pad", (480, 640), count=1)
    with DatasetWriter(tmp_path, metric=False, config=SAMPLING) as writer:
        writer.add(frames[0])
        written = writer.finish()
    transforms = strict_load(written.transforms_json)
    assert "ply_file_path" not in transforms and transforms["frames"][0]["colmap_im_id"] == 1
