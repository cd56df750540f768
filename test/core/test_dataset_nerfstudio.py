# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""nerfstudio transforms.json of `DatasetWriter`: known 3-D points, projected with the file's fields in nerfstudio's
convention (written out here, independently of the exporter), land on the camera pixels they were placed at."""

import json

import numpy as np
import pycolmap
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


# nerfstudio's NerfstudioDataParser (nerfstudio >= 1.0, default config), written down here from its documentation
# and source as a named reference: nerfstudio is not installed here (its dependency tree is large), so the test
# computes what the parser computes.
# 1. ``poses``: every frame's transform_matrix (camera to world, OpenGL camera axes), in the file's ("saved")
#    coordinates.
# 2. ``auto_orient_and_center_poses(method="up", center_method="poses")``: up = the normalised mean of the poses' y
#    columns; R rotates up onto +z (Rodrigues: I + K + K^2 (1 - c) / s^2 with K the cross-product matrix of up x z,
#    c = up . z, s = |up x z|); t = the mean camera centre; ``transform_matrix`` = [R | -R t] (3, 4); poses become
#    transform_matrix @ poses.
# 3. ``auto_scale_poses``: scale = 1 / max |translation coordinate| of the oriented poses; translations *= scale.
# 4. ``applied_transform`` (3, 4), the map from the original data's coordinates to the saved ones: the file's key;
#    when it is missing and ``<data>/colmap/sparse/0`` exists, the legacy value [[0, 1, 0, 0], [1, 0, 0, 0],
#    [0, 0, -1, 0]] (what nerfstudio's COLMAP conversion used to apply); else none.
# 5. ``dataparser_transform`` = transform_matrix @ [applied_transform; 0 0 0 1] and ``dataparser_scale`` = scale: a
#    point x of the original data lands at scale * dataparser_transform @ [x, 1] in nerfstudio's space (how
#    ns-export and the viewer map between the two).
# 6. ``ply_file_path``'s points are loaded with transform_matrix and scale only: they are in the saved coordinates.
NERFSTUDIO_LEGACY_COLMAP_APPLIED_TRANSFORM = [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0]]


def nerfstudio_dataparser_reference(data_dir):
    """(poses ``(N, 3, 4)`` in nerfstudio's space, transform_matrix ``(3, 4)``, dataparser_transform ``(3, 4)``,
    dataparser_scale) of the steps above; poses in the file's frame order."""
    meta = json.loads((data_dir / "transforms.json").read_text())
    poses = np.array([frame["transform_matrix"] for frame in meta["frames"]], dtype=np.float64)
    up = poses[:, :3, 1].mean(axis=0)
    up /= np.linalg.norm(up)
    cross = np.cross(up, [0.0, 0.0, 1.0])
    c, s = up[2], np.linalg.norm(cross)
    k = np.array([[0, -cross[2], cross[1]], [cross[2], 0, -cross[0]], [-cross[1], cross[0], 0]])
    rotation = np.eye(3) + k + k @ k * ((1 - c) / (s**2 + 1e-8))
    centre = poses[:, :3, 3].mean(axis=0)
    transform_matrix = np.column_stack((rotation, -rotation @ centre))
    oriented = transform_matrix @ poses
    scale = 1.0 / np.abs(oriented[:, :3, 3]).max()
    oriented[:, :3, 3] *= scale
    applied = meta.get("applied_transform")
    if applied is None and (data_dir / "colmap" / "sparse" / "0").exists():
        applied = NERFSTUDIO_LEGACY_COLMAP_APPLIED_TRANSFORM
    dataparser_transform = transform_matrix
    if applied is not None:
        dataparser_transform = transform_matrix @ np.vstack((np.array(applied, dtype=np.float64), [0, 0, 0, 1]))
    return oriented, transform_matrix, dataparser_transform, scale


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
    # The file describes what its depth and confidence files hold where there is no prediction (they said NaN).
    assert "0 = no depth" in transforms["depth_format"]
    assert transforms["confidence_format"].endswith("0 where the model image does not cover the pixel")
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
        # nerfstudio's convention: its depth losses multiply each ray's term by the mask depth > 0, so a pixel
        # without depth must hold a number that is not > 0 (a NaN times False is NaN, and so is the batch's mean).
        term = (depth - 2.0) ** 2 * (depth > 0)
        assert np.isfinite(term).all() and term.max() == 0.0


def test_transforms_without_a_point_cloud_have_no_ply_path(tmp_path):
    frames, _ = camera_rig("pad", (480, 640), count=1)
    with DatasetWriter(tmp_path, metric=False, config=SAMPLING) as writer:
        writer.add(frames[0])
        written = writer.finish()
    transforms = strict_load(written.transforms_json)
    assert "ply_file_path" not in transforms and transforms["frames"][0]["colmap_im_id"] == 1


def test_nerfstudio_maps_our_cameras_and_points_where_it_parses_them(tmp_path):
    """Through nerfstudio's dataparser conventions (the reference above), a camera of our world lands on the camera
    nerfstudio parses, a point of our world projects through the parsed camera onto the pixel it was placed at, and a
    COLMAP point (our world, the original data) lands where the same point of map.ply (saved coordinates) does
    (issue 18 item 5: without applied_transform the colmap folder beside it switches on the legacy COLMAP axes)."""
    frames, image_intrinsics = camera_rig("crop", (480, 640), count=4)
    with DatasetWriter(tmp_path, metric=True, config=SAMPLING) as writer:
        for frame in frames:
            writer.add(frame)
        writer.finish()
    assert (tmp_path / "colmap" / "sparse" / "0").is_dir()
    poses, transform_matrix, dataparser_transform, scale = nerfstudio_dataparser_reference(tmp_path)
    entries = strict_load(tmp_path / "transforms.json")["frames"]

    def to_nerfstudio(points):
        return scale * (np.column_stack((points, np.ones(len(points)))) @ dataparser_transform.T)

    for frame, k_image, entry, pose in zip(frames, image_intrinsics, entries, poses):
        # The camera: its centre, and its axes (OpenGL in nerfstudio).
        np.testing.assert_allclose(to_nerfstudio(frame.world_from_camera[None, :3, 3])[0], pose[:, 3], atol=1e-9)
        opengl_axes = frame.world_from_camera[:3, :3] @ np.diag([1.0, -1.0, -1.0])
        np.testing.assert_allclose(dataparser_transform[:3, :3] @ opengl_axes, pose[:, :3], atol=1e-9)
        # A point 3 m in front of the camera image's pixel (100.25, 200.5) (index convention), through the parsed
        # camera: nerfstudio's ray for pixel-corner coordinate (u, v) is ((u - cx) / fx, -(v - cy) / fy, -1).
        pixel = np.array([100.25, 200.5])
        ray = np.linalg.solve(k_image, [*pixel, 1.0])
        point = frame.world_from_camera[:3, :3] @ (3.0 * ray) + frame.world_from_camera[:3, 3]
        camera = pose[:, :3].T @ (to_nerfstudio(point[None])[0] - pose[:, 3])
        u = entry["cx"] + entry["fl_x"] * camera[0] / -camera[2]
        v = entry["cy"] - entry["fl_y"] * camera[1] / -camera[2]
        np.testing.assert_allclose([u, v], pixel + 0.5, atol=1e-6)
    colmap_points = np.array(
        [p.xyz for p in pycolmap.Reconstruction(str(tmp_path / "colmap/sparse/0")).points3D.values()]
    )
    assert len(colmap_points) > 0
    as_ply = scale * (np.column_stack((colmap_points, np.ones(len(colmap_points)))) @ transform_matrix.T)
    np.testing.assert_allclose(to_nerfstudio(colmap_points), as_ply, atol=1e-9)
