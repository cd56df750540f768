# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""COLMAP export of `DatasetWriter`, read back with the real pycolmap (which our writer does not use).

The scene is the analytic textured room of test/support/synthetic.py seen by four cameras with known poses and
known camera-image intrinsics. Each camera's model image comes from a real `preprocess.pixel_map` (crop of a
landscape image: a plain resize; crop of a portrait image: rows cut away; pad: white borders), and its depth is
rendered exactly at the model pixels. Colours come from a smooth texture defined here as a function of the 3-D
position, so a point's colour can be checked against the texture at the point.
"""

import math

import numpy as np
import pycolmap
import pytest
from PIL import Image as PILImage

from support.pycolmap_poses import cam_from_world
from support.synthetic import SyntheticRoom, look_at
from vggt_ros.dataset.frames import ExportFrame
from vggt_ros.dataset.tracks import PointSampling, TrackBuilder
from vggt_ros.dataset.writer import DatasetConfig, DatasetWriter
from vggt_ros.preprocess import pixel_map

NEIGHBOURS = 2
POINTS_PER_FRAME = 200
# (mode, (H, W)) of the camera images.
LAYOUTS = [("crop", (480, 640)), ("crop", (640, 480)), ("pad", (480, 640))]
# Per-channel wave vectors of the texture, radians per scene unit: about 40 colour levels per model pixel, so a
# point coloured from a neighbouring pixel would be off by far more than the 1-level rounding tolerance.
WAVES = 4.0 * np.array([[7.0, 3.1, 5.3], [2.2, 6.4, 4.0], [5.5, 1.7, 8.3]])


def texture(points: np.ndarray) -> np.ndarray:
    """``(N, 3)`` scene points -> ``(N, 3)`` uint8 RGB."""
    return np.round(127.5 + 127.0 * np.sin(points @ WAVES.T)).astype(np.uint8)


def model_from_image(mapping) -> np.ndarray:
    """The affine map of a PixelMap as a 3x3 matrix: camera-image pixel -> model pixel (index convention)."""
    return np.array([[mapping.scale[0], 0.0, mapping.offset[0]], [0.0, mapping.scale[1], mapping.offset[1]], [0, 0, 1]])


class Scene:
    """Four cameras in the room; ``frames`` are what VGGT would hand the exporter if it were exact."""

    def __init__(self, mode: str, image_hw: tuple[int, int], confidence=None, depth_noise: float = 0.0) -> None:
        """``depth_noise``: each model pixel's depth is off by up to this fraction, seeded (a network's noise)."""
        self.room = SyntheticRoom()
        self.image_hw = image_hw
        self.mapping = pixel_map(*image_hw, mode)
        centres = np.array([[-1.6, 0.0, -2.0], [-0.6, 0.1, -2.2], [0.4, 0.0, -2.0], [1.4, -0.1, -2.1]])
        directions = np.array([[0.25, 0.0, 1.0], [0.1, 0.05, 1.0], [-0.1, 0.0, 1.0], [-0.3, -0.05, 1.0]])
        self.camera_from_world = look_at(centres, directions)  # (4, 3, 4), the world is the room's frame
        height, width = image_hw
        self.image_intrinsics = []
        self.frames = []
        for i, extrinsics in enumerate(self.camera_from_world):
            # Index convention, off-centre principal points and non-square pixels, different for every camera.
            k_image = np.array(
                [[0.8 * width + 9 * i, 0, width / 2 - 3.3 + i], [0, 0.81 * width + 9 * i, height / 2 + 2.1], [0, 0, 1]]
            )
            k_model = model_from_image(self.mapping) @ k_image
            depth = self.room.render(extrinsics[None], k_model, self.mapping.model_hw)[0][0]
            depth = depth * (1.0 + depth_noise * np.random.default_rng(i).uniform(-1.0, 1.0, depth.shape))
            world_from_camera = np.eye(4)
            world_from_camera[:3, :3] = extrinsics[:, :3].T
            world_from_camera[:3, 3] = -extrinsics[:, :3].T @ extrinsics[:, 3]
            rows, columns = np.indices(depth.shape)
            rays = np.stack(
                (
                    (columns - k_model[0, 2]) / k_model[0, 0],
                    (rows - k_model[1, 2]) / k_model[1, 1],
                    np.ones_like(depth),
                ),
                axis=-1,
            )
            points = (rays * depth[..., None]) @ world_from_camera[:3, :3].T + world_from_camera[:3, 3]
            conf = np.full(depth.shape, 5.0, np.float32) if confidence is None else confidence(depth.shape)
            self.image_intrinsics.append(k_image)
            self.frames.append(
                ExportFrame(
                    name=f"cam/{i:06d}.png",
                    camera=0,
                    stamp_ns=10**9 + i * 10**8,
                    pixel_map=self.mapping,
                    world_from_camera=world_from_camera,
                    intrinsics=k_model,
                    depth=depth.astype(np.float32),
                    confidence=conf,
                    colors=texture(points.reshape(-1, 3)).reshape(*depth.shape, 3),
                )
            )

    def first_surface_depth(self, camera: int, point: np.ndarray) -> tuple[float, float]:
        """(depth of ``point`` in ``camera``, depth of the first surface on the ray from ``camera`` through it),
        by ray casting the room with a one-pixel camera whose only pixel looks at the point."""
        extrinsics = self.camera_from_world[camera]
        x, y, z = extrinsics[:, :3] @ point + extrinsics[:, 3]
        one_pixel = np.array([[1.0, 0.0, -x / z], [0.0, 1.0, -y / z], [0.0, 0.0, 1.0]])
        return float(z), float(self.room.render(extrinsics[None], one_pixel, (1, 1))[0][0, 0, 0])


def write_model(scene: Scene, out_dir, sampling=PointSampling(POINTS_PER_FRAME, neighbour_frames=NEIGHBOURS)):
    with DatasetWriter(out_dir, metric=True, config=DatasetConfig(sampling=sampling)) as writer:
        for frame in scene.frames:
            writer.add(frame)
        return writer.finish()


def read(out_dir, kind: str) -> pycolmap.Reconstruction:
    reconstruction = pycolmap.Reconstruction()
    getattr(reconstruction, f"read_{kind}")(str(out_dir / "colmap" / "sparse" / "0"))
    return reconstruction


@pytest.fixture(scope="module", params=LAYOUTS, ids=[f"{m}-{w}x{h}" for m, (h, w) in LAYOUTS])
def exported(request, tmp_path_factory):
    scene = Scene(*request.param)
    out_dir = tmp_path_factory.mktemp("colmap")
    written = write_model(scene, out_dir)
    return scene, out_dir, written, read(out_dir, "binary")


def test_images_have_their_names_and_true_poses_and_cameras_the_true_image_intrinsics(exported):
    scene, out_dir, written, model = exported
    assert [p.name for p in written.colmap_files] == [
        "cameras.bin",
        "images.bin",
        "points3D.bin",
        "cameras.txt",
        "images.txt",
        "points3D.txt",
    ]
    assert sorted(model.images) == [1, 2, 3, 4] and len(model.cameras) == 4
    height, width = scene.image_hw
    for image_id, image in model.images.items():
        i = image_id - 1
        assert image.name == scene.frames[i].name
        np.testing.assert_allclose(cam_from_world(image), scene.camera_from_world[i], atol=1e-9)
        camera = model.cameras[image.camera_id]
        assert camera.model_name == "PINHOLE" and (camera.width, camera.height) == (width, height)
        k = scene.image_intrinsics[i]
        # COLMAP's pixel centres are at index + 0.5.
        np.testing.assert_allclose(camera.params, [k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5], rtol=1e-12)


def test_every_point_is_on_the_textured_surface_and_reprojects_onto_each_observation(exported):
    scene, _, written, model = exported
    height, width = scene.image_hw
    assert written.num_points == len(model.points3D) == 4 * POINTS_PER_FRAME
    xyz = np.array([p.xyz for p in model.points3D.values()])
    assert scene.room.distance_to_surface(xyz).max() < 1e-5
    colors = np.array([p.color for p in model.points3D.values()]).astype(int)
    assert np.abs(colors - texture(xyz).astype(int)).max() <= 1
    errors, observations = [], 0
    for point_id, point in model.points3D.items():
        assert point.error == 0.0
        for element in point.track.elements:
            image = model.images[element.image_id]
            observed = image.points2D[element.point2D_idx]
            assert observed.point3D_id == point_id
            assert 0 <= observed.xy[0] < width and 0 <= observed.xy[1] < height
            errors.append(np.linalg.norm(image.project_point(point.xyz) - observed.xy))
            observations += 1
    # The observations are the points' projections, so pycolmap's own projection lands on them exactly.
    assert max(errors) < 1e-6
    assert observations == sum(image.num_points3D for image in model.images.values())


def source_image(model: pycolmap.Reconstruction, point, mapping) -> int:
    """The image a point was sampled in: its one observation that sits on a model pixel centre."""
    for element in point.track.elements:
        model_uv = mapping.to_model(np.asarray(model.images[element.image_id].points2D[element.point2D_idx].xy) - 0.5)
        if np.abs(model_uv - np.round(model_uv)).max() < 1e-6:
            return element.image_id
    raise AssertionError(f"no observation of point {point.xyz} sits on a pixel of the frame it came from")


def in_view(scene: Scene, image_id: int, point: np.ndarray) -> bool:
    """Whether ``point`` projects in front of camera ``image_id``, inside its image and its model image."""
    extrinsics, k_image = scene.camera_from_world[image_id - 1], scene.image_intrinsics[image_id - 1]
    camera_point = extrinsics[:, :3] @ point + extrinsics[:, 3]
    if camera_point[2] <= 0:
        return False
    image_uv = (k_image @ camera_point)[:2] / camera_point[2]  # index convention
    model_uv = scene.mapping.to_model(image_uv)
    (height, width), (model_height, model_width) = scene.image_hw, scene.mapping.model_hw
    return (
        -0.5 <= image_uv[0] < width - 0.5
        and -0.5 <= image_uv[1] < height - 0.5
        and -0.5 <= model_uv[0] < model_width - 0.5
        and -0.5 <= model_uv[1] < model_height - 0.5
    )


def nearest_pixel_shows(scene: Scene, image_id: int, point: np.ndarray, depth: float) -> bool:
    """Whether the model pixel nearest ``point``'s projection into camera ``image_id`` has its depth (within 3 %)."""
    extrinsics, k_image = scene.camera_from_world[image_id - 1], scene.image_intrinsics[image_id - 1]
    camera_point = extrinsics[:, :3] @ point + extrinsics[:, 3]
    column, row = np.floor(scene.mapping.to_model((k_image @ camera_point)[:2] / camera_point[2]) + 0.5).astype(int)
    return abs(scene.frames[image_id - 1].depth[row, column] - depth) <= 0.03 * depth


def test_neighbouring_frames_observe_the_points_they_see_and_no_hidden_ones(exported):
    scene, _, _, model = exported
    visible = visible_observed = hidden = 0
    for point in model.points3D.values():
        source = source_image(model, point, scene.mapping)
        track = {element.image_id for element in point.track.elements}
        for image_id in set(model.images) - {source}:
            if abs(image_id - source) > NEIGHBOURS:
                assert image_id not in track, "only the neighbouring frames may observe a point"
                continue
            if not in_view(scene, image_id, point.xyz):
                assert image_id not in track, f"image {image_id} observes a point outside its view: {point.xyz}"
                continue
            depth, surface = scene.first_surface_depth(image_id - 1, point.xyz)
            # The writer accepts depth within 3 % of the nearest pixel's, so a surface less than that in front
            # cannot be told apart; anything clearly in front hides the point, unless an edge passes between the
            # point's projection and its nearest pixel's centre, which then shows the point's surface.
            if surface < 0.95 * depth and not nearest_pixel_shows(scene, image_id, point.xyz, depth):
                hidden += 1
                assert image_id not in track, f"image {image_id} observes a point hidden behind a surface: {point.xyz}"
            elif abs(depth - surface) < 1e-5 * depth:
                visible += 1
                visible_observed += image_id in track
    assert hidden > 0, "the scene must hide some points from some neighbours (the panel)"
    # A visible point is missed only next to a depth edge, where its nearest pixel shows the other surface.
    assert visible_observed >= 0.9 * visible
    assert visible_observed > 0.5 * len(model.points3D), "points must be tracked across frames"


@pytest.mark.parametrize("layout", LAYOUTS, ids=[f"{m}-{w}x{h}" for m, (h, w) in LAYOUTS])
def test_every_observation_agrees_with_the_depth_file_at_its_pixel(layout, tmp_path):
    """A reader checks a COLMAP observation against depth/<stem> at its pixel. Points were sampled from any model
    pixel and confirmed by the model pixel nearest their projection, while the depth file holds each camera
    pixel's nearest model pixel: with a network's per-pixel noise and a model image that enlarges the camera image
    (the portrait's 480 columns to 518), the file disagreed with both kinds of observation."""
    agreement = PointSampling().depth_agreement
    scene = Scene(*layout, depth_noise=0.05)
    write_model(scene, tmp_path)
    model = read(tmp_path, "binary")
    own = neighbours = 0
    for image_id, image in model.images.items():
        extrinsics = scene.camera_from_world[image_id - 1]
        with PILImage.open(tmp_path / "depth" / f"cam/{image_id - 1:06d}.png") as file:
            depth_file = np.asarray(file, dtype=np.float64) / 1000.0  # millimetres
        for observed in image.points2D:
            if not observed.has_point3D():
                continue
            point = model.points3D[observed.point3D_id]
            depth = (extrinsics[:, :3] @ point.xyz + extrinsics[:, 3])[2]
            column, row = np.floor(observed.xy).astype(int)
            if source_image(model, point, scene.mapping) == image_id:
                own += 1
                assert abs(depth - depth_file[row, column]) <= 0.0005 + 1e-9  # its own depth, to the millimetre
            else:
                neighbours += 1
                assert abs(depth - depth_file[row, column]) <= agreement * depth_file[row, column] + 0.0005
    assert own == 4 * POINTS_PER_FRAME and neighbours > 0.2 * own


def test_text_and_binary_models_are_the_same_reconstruction(exported):
    _, out_dir, _, binary = exported
    text = read(out_dir, "text")
    assert {i: (c.model_name, c.width, c.height, list(c.params)) for i, c in text.cameras.items()} == {
        i: (c.model_name, c.width, c.height, list(c.params)) for i, c in binary.cameras.items()
    }
    assert sorted(text.images) == sorted(binary.images)
    for image_id, image in binary.images.items():
        other = text.images[image_id]
        assert (other.name, other.camera_id) == (image.name, image.camera_id)
        assert np.array_equal(cam_from_world(other), cam_from_world(image))
        assert [(p.xy.tolist(), p.point3D_id) for p in other.points2D] == [
            (p.xy.tolist(), p.point3D_id) for p in image.points2D
        ]
    assert sorted(text.points3D) == sorted(binary.points3D)
    for point_id, point in binary.points3D.items():
        other = text.points3D[point_id]
        assert np.array_equal(other.xyz, point.xyz) and np.array_equal(other.color, point.color)
        assert other.error == point.error
        assert [(e.image_id, e.point2D_idx) for e in other.track.elements] == [
            (e.image_id, e.point2D_idx) for e in point.track.elements
        ]


def test_points_come_only_from_confident_pixels_that_show_the_camera_image(tmp_path):
    """Pad mode (white bands above and below a landscape image) with confidence rising left to right: the sample
    must avoid the bands and the pixels below the frame's confidence percentile."""

    def ramp(shape):
        return np.broadcast_to(1.0 + np.linspace(0.0, 9.0, shape[1], dtype=np.float32), shape).copy()

    scene = Scene("pad", (480, 640), confidence=ramp)
    write_model(scene, tmp_path, PointSampling(POINTS_PER_FRAME, confidence_percentile=70.0, neighbour_frames=0))
    model = read(tmp_path, "binary")
    mapping = scene.mapping
    # Model rows showing the image: their centres map inside the image's 480 rows (pixel-corner [0, 480)).
    image_rows = (np.arange(mapping.model_hw[0]) - mapping.offset[1]) / mapping.scale[1] + 0.5
    shown_rows = np.flatnonzero((image_rows >= 0) & (image_rows < 480))
    assert 0 < shown_rows[0] and shown_rows[-1] < mapping.model_hw[0] - 1, "pad mode must add bands"
    # Every model column shows the image, so 70 % of the columns lie below the percentile.
    first_confident_column = math.ceil(0.7 * (mapping.model_hw[1] - 1))
    for image in model.images.values():
        model_uv = np.array([mapping.to_model(np.asarray(p.xy) - 0.5) for p in image.points2D])
        assert len(model_uv) == POINTS_PER_FRAME
        assert model_uv[:, 1].min() >= shown_rows[0] - 1e-6 and model_uv[:, 1].max() <= shown_rows[-1] + 1e-6
        assert model_uv[:, 0].min() >= first_confident_column - 1e-6


def test_only_the_last_neighbour_frames_stay_in_memory():
    scene = Scene("crop", (480, 640))
    builder = TrackBuilder(PointSampling(50, neighbour_frames=2))
    closed = []
    for image_id, frame in enumerate(scene.frames + scene.frames[:2], start=1):
        closed += builder.add(frame, image_id)
        assert builder.open_frames == min(image_id, 2)
    assert [record.image_id for record, _ in closed] == [1, 2, 3, 4]
    assert [record.image_id for record, _ in builder.close_all()] == [5, 6] and builder.open_frames == 0
    with pytest.raises(ValueError, match="image_id must be an int above the previous frame's"):
        builder.add(scene.frames[0], 6)


def test_a_frame_without_usable_depth_is_an_image_without_points(tmp_path):
    scene = Scene("crop", (480, 640))
    first = scene.frames[0]
    blind = ExportFrame(
        name="blind.png",
        camera=0,
        stamp_ns=5,
        pixel_map=first.pixel_map,
        world_from_camera=first.world_from_camera,
        intrinsics=first.intrinsics,
        depth=np.full_like(first.depth, np.nan),
        confidence=first.confidence,
        colors=first.colors,
    )
    scene.frames = [blind] + scene.frames[1:3]
    write_model(scene, tmp_path)
    for kind in ("binary", "text"):
        model = read(tmp_path, kind)
        assert model.images[1].name == "blind.png" and model.images[1].num_points3D == 0
        # The other two frames see each other's points but never get points from the blind one.
        assert len(model.points3D) == 2 * POINTS_PER_FRAME
        assert all(1 not in {e.image_id for e in p.track.elements} for p in model.points3D.values())


def _similarity(scale: float, angle: float, translation) -> np.ndarray:
    """``(4, 4)`` scale * rotation about y by ``angle`` radians, then ``translation``."""
    c, s = math.cos(angle), math.sin(angle)
    matrix = np.eye(4)
    matrix[:3, :3] = scale * np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    matrix[:3, 3] = translation
    return matrix


def test_a_model_moved_by_one_similarity_is_the_same_reconstruction_in_the_moved_world(tmp_path):
    """Every frame moved by the same similarity (as a loop closure moves a stretch of keyframes): the cameras and
    points are that similarity's images of the unmoved ones, every observation still projects exactly, and the
    metric depth files hold the depth times its scale."""
    scene = Scene("crop", (480, 640))
    plain = write_model(scene, tmp_path / "plain")
    moved_by = _similarity(1.5, 0.4, [0.3, -1.0, 2.0])
    sampling = PointSampling(POINTS_PER_FRAME, neighbour_frames=NEIGHBOURS)
    with DatasetWriter(tmp_path / "moved", metric=True, config=DatasetConfig(sampling=sampling)) as writer:
        for frame in scene.frames:
            writer.add(frame)
        moved = writer.finish(corrections={frame.name: moved_by for frame in scene.frames})
    assert (moved.num_frames, moved.num_points) == (plain.num_frames, plain.num_points)
    before, after = read(tmp_path / "plain", "binary"), read(tmp_path / "moved", "binary")

    for image_id, image in after.images.items():
        old, new = cam_from_world(before.images[image_id]), cam_from_world(image)
        old_centre, new_centre = -old[:, :3].T @ old[:, 3], -new[:, :3].T @ new[:, 3]
        np.testing.assert_allclose(new_centre, moved_by[:3, :3] @ old_centre + moved_by[:3, 3], atol=1e-9)
        np.testing.assert_allclose(new[:, :3].T, moved_by[:3, :3] @ old[:, :3].T / 1.5, atol=1e-12)
    for point_id, point in after.points3D.items():
        np.testing.assert_allclose(point.xyz, moved_by[:3, :3] @ before.points3D[point_id].xyz + moved_by[:3, 3])
        assert point.error < 1e-9
        for element in point.track.elements:
            image = after.images[element.image_id]
            observed = image.points2D[element.point2D_idx].xy
            assert np.linalg.norm(image.project_point(point.xyz) - observed) < 1e-6
    for frame in scene.frames:
        depth = f"depth/{frame.stem}.png"
        old_mm = np.asarray(PILImage.open(tmp_path / "plain" / depth), dtype=np.float64)
        new_mm = np.asarray(PILImage.open(tmp_path / "moved" / depth), dtype=np.float64)
        assert np.array_equal(new_mm == 0, old_mm == 0)
        assert np.abs(new_mm - 1.5 * old_mm).max() <= 0.5  # rounded to the millimetre again
    text = read(tmp_path / "moved", "text")
    for image_id, image in after.images.items():
        np.testing.assert_array_equal(cam_from_world(text.images[image_id]), cam_from_world(image))
    for point_id, point in after.points3D.items():
        assert np.array_equal(text.points3D[point_id].xyz, point.xyz) and text.points3D[point_id].error == point.error


def test_moving_a_model_needs_a_correction_for_every_frame(tmp_path):
    scene = Scene("crop", (480, 640))
    with DatasetWriter(tmp_path, metric=True) as writer:
        for frame in scene.frames:
            writer.add(frame)
        with pytest.raises(ValueError, match="corrections miss 1 of the 4 frames"):
            writer.finish(corrections={frame.name: np.eye(4) for frame in scene.frames[1:]})
