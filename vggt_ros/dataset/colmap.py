# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""COLMAP sparse models (cameras, images, points3D) in COLMAP's binary and text formats, written without COLMAP.

Formats as documented by COLMAP ("Output Format"; binary layout of its reconstruction_io_binary), little endian:

* cameras.bin: uint64 count; per camera uint32 id, int32 model id, uint64 width, uint64 height, float64 params.
* images.bin: uint64 count; per image uint32 id, float64 qw qx qy qz tx ty tz (camera-from-world, Hamilton
  quaternion), uint32 camera id, the name as NUL-terminated bytes, uint64 point count, then per 2-D point
  float64 x, y and uint64 point3D id (2**64 - 1 = none).
* points3D.bin: uint64 count; per point uint64 id, float64 x y z, uint8 r g b, float64 error, uint64 track
  length, then per track element uint32 image id, uint32 point2D index (into that image's 2-D points).
* The .txt files hold the same records, space separated, with '#' comment headers; floats are written with
  Python's repr (shortest text that reads back to the same float64), so text and binary hold equal numbers.

No rigs / frames files: COLMAP (3.12 and later) reads a model without them as one trivial rig per camera and
one frame per image, and older COLMAP versions and the tools built on its format (nerfstudio, gsplat, InstantNGP
scripts) know only these three files.

Pixel coordinates are COLMAP's: the top-left corner of the top-left pixel is (0, 0), a pixel centre is at
index + 0.5 (`vggt_ros.dataset.frames.ExportFrame.corner_intrinsics` converts from VGGT's index convention).

`SparseModelBuilder` streams: image and point records are encoded as they come into scratch files (binary and
text side by side) and the final files are the count header plus the scratch bytes, so a model of millions of
points is written without holding it in memory. The writer keeps only the cameras (a few numbers per image).
`SparseModelBuilder.move` re-poses the streamed records before the model is written (a loop closure moved the
world after the frames came), decoding and encoding them again.
"""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Mapping

import numpy as np

from vggt_ros.dataset.frames import check_relative_name
from vggt_ros.files import replace_atomically
from vggt_ros.geometry import (
    apply_transform,
    invert_pose,
    moved_pose,
    project_points,
    quaternion_to_rotation_matrix,
    rotation_matrix_to_quaternion,
)

PINHOLE_MODEL_ID = 1
INVALID_POINT3D_ID = 2**64 - 1
SPARSE_FILES = ("cameras.bin", "images.bin", "points3D.bin", "cameras.txt", "images.txt", "points3D.txt")

_COUNT = struct.Struct("<Q")
_CAMERA = struct.Struct("<IiQQ4d")
_IMAGE_POSE = struct.Struct("<I7dI")
_POINT2D = np.dtype([("x", "<f8"), ("y", "<f8"), ("point3d_id", "<u8")])
_POINT3D = np.dtype(
    [("point3d_id", "<u8"), ("xyz", "<f8", (3,)), ("rgb", "u1", (3,)), ("error", "<f8"), ("track_length", "<u8")]
)
_TRACK_ELEMENT = np.dtype([("image_id", "<u4"), ("point2d_idx", "<u4")])
# Scratch files of the streamed records: (binary, text) for images and for points.
_SCRATCH = ("images.bin", "images.txt", "points3D.bin", "points3D.txt")
# Points re-encoded at a time when a model is moved (`SparseModelBuilder.move`).
_MOVE_BATCH = 100_000


@dataclass(frozen=True)
class PinholeCamera:
    """A COLMAP PINHOLE camera: ``width`` x ``height`` pixels, focal lengths and principal point in pixels
    (pixel-corner convention)."""

    camera_id: int
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if not 0 < self.camera_id < 2**32 or self.width <= 0 or self.height <= 0:
            raise ValueError(
                f"camera {self.camera_id}: id must be in [1, 2**32) and the size positive, got "
                f"{self.width}x{self.height}"
            )
        if not all(np.isfinite((self.fx, self.fy, self.cx, self.cy))) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(
                f"camera {self.camera_id}: focal lengths must be finite and > 0 and the principal point finite, got "
                f"fx={self.fx}, fy={self.fy}, cx={self.cx}, cy={self.cy}"
            )

    @classmethod
    def from_matrix(cls, camera_id: int, image_hw: tuple[int, int], corner_intrinsics: np.ndarray) -> "PinholeCamera":
        """From a ``(3, 3)`` pinhole matrix in the pixel-corner convention for an (H, W) image."""
        k = np.asarray(corner_intrinsics, dtype=np.float64)
        return cls(
            camera_id,
            int(image_hw[1]),
            int(image_hw[0]),
            float(k[0, 0]),
            float(k[1, 1]),
            float(k[0, 2]),
            float(k[1, 2]),
        )

    @property
    def matrix(self) -> np.ndarray:
        """The ``(3, 3)`` pinhole matrix (pixel-corner convention), the inverse of `from_matrix`."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One registered image and its 2-D points.

    Attributes:
        image_id, camera_id: COLMAP ids (>= 1).
        name: path relative to the image folder.
        camera_from_world: ``(3, 4)`` or ``(4, 4)`` float64 rigid transform world -> OpenCV camera frame.
        points2d: ``(N, 2)`` float64 pixel positions (pixel-corner convention).
        point3d_ids: ``(N,)`` uint64 id of the 3-D point each 2-D point observes (`INVALID_POINT3D_ID`: none).
    """

    image_id: int
    camera_id: int
    name: str
    camera_from_world: np.ndarray
    points2d: np.ndarray
    point3d_ids: np.ndarray

    def __post_init__(self) -> None:
        check_relative_name(self.name, "image name")
        if self.points2d.ndim != 2 or self.points2d.shape[1] != 2 or self.point3d_ids.shape != (len(self.points2d),):
            raise ValueError(
                f"image {self.name!r}: points2d must be (N, 2) and point3d_ids (N,), got {self.points2d.shape} and "
                f"{self.point3d_ids.shape}"
            )


@dataclass(frozen=True, eq=False)
class PointBatch:
    """3-D points and their tracks; track element k belongs to point ``track_point[k]`` (rows of this batch).

    Attributes:
        point3d_ids: ``(P,)`` uint64 ids (>= 1).
        xyz: ``(P, 3)`` float64 world coordinates.
        rgb: ``(P, 3)`` uint8 colours.
        error: ``(P,)`` float64 mean reprojection error, pixels.
        track_point: ``(T,)`` int64 row of the point each element belongs to, non-decreasing.
        track_image_ids, track_point2d_idx: ``(T,)`` uint32 image id and index into that image's 2-D points.
    """

    point3d_ids: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    error: np.ndarray
    track_point: np.ndarray
    track_image_ids: np.ndarray
    track_point2d_idx: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.point3d_ids)
        elements = len(self.track_point)
        if (
            self.xyz.shape != (count, 3)
            or self.rgb.shape != (count, 3)
            or self.error.shape != (count,)
            or self.track_image_ids.shape != (elements,)
            or self.track_point2d_idx.shape != (elements,)
        ):
            raise ValueError(
                f"point batch fields disagree: {count} ids, xyz {self.xyz.shape}, rgb {self.rgb.shape}, error "
                f"{self.error.shape}; {elements} track elements, images {self.track_image_ids.shape}, indices "
                f"{self.track_point2d_idx.shape}"
            )
        if elements and (
            np.any(np.diff(self.track_point) < 0) or self.track_point[0] < 0 or self.track_point[-1] >= count
        ):
            raise ValueError("track_point must be non-decreasing rows of the batch (sort the track elements by point)")

    @property
    def track_lengths(self) -> np.ndarray:
        """``(P,)`` number of track elements of each point."""
        return np.bincount(self.track_point, minlength=len(self.point3d_ids))


def cameras_binary(cameras: list[PinholeCamera]) -> bytes:
    records = [_CAMERA.pack(c.camera_id, PINHOLE_MODEL_ID, c.width, c.height, c.fx, c.fy, c.cx, c.cy) for c in cameras]
    return _COUNT.pack(len(cameras)) + b"".join(records)


def cameras_text(cameras: list[PinholeCamera]) -> str:
    lines = [
        "# Camera list with one line of data per camera:",
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
        f"# Number of cameras: {len(cameras)}",
    ]
    lines += [f"{c.camera_id} PINHOLE {c.width} {c.height} {c.fx!r} {c.fy!r} {c.cx!r} {c.cy!r}" for c in cameras]
    return "\n".join(lines) + "\n"


def _pose_values(camera_from_world: np.ndarray) -> tuple[float, ...]:
    """(qw, qx, qy, qz, tx, ty, tz) of a rigid camera-from-world transform."""
    pose = np.asarray(camera_from_world, dtype=np.float64)
    qx, qy, qz, qw = rotation_matrix_to_quaternion(pose[:3, :3])
    return tuple(float(v) for v in (qw, qx, qy, qz, *pose[:3, 3]))


def image_binary(record: ImageRecord) -> bytes:
    """One images.bin record (without the file's count header)."""
    points = np.empty(len(record.points2d), dtype=_POINT2D)
    points["x"], points["y"] = record.points2d[:, 0], record.points2d[:, 1]
    points["point3d_id"] = record.point3d_ids
    head = _IMAGE_POSE.pack(record.image_id, *_pose_values(record.camera_from_world), record.camera_id)
    return head + record.name.encode("utf-8") + b"\0" + _COUNT.pack(len(points)) + points.tobytes()


def image_text(record: ImageRecord) -> str:
    """The two images.txt lines of one image (the second lists the 2-D points; empty when there are none)."""
    pose = " ".join(repr(v) for v in _pose_values(record.camera_from_world))
    ids = [-1 if i == INVALID_POINT3D_ID else i for i in record.point3d_ids.tolist()]
    points = " ".join([f"{x!r} {y!r} {i}" for (x, y), i in zip(record.points2d.tolist(), ids)])
    return f"{record.image_id} {pose} {record.camera_id} {record.name}\n{points}\n"


def points_binary(batch: PointBatch) -> bytes:
    """points3D.bin records of a batch (without the count header), built in numpy.

    Every record is a fixed part followed by its variable-length track, so the bytes are scattered into one
    buffer at offsets from the cumulative record sizes instead of being packed point by point.
    """
    count = len(batch.point3d_ids)
    lengths = batch.track_lengths
    fixed = np.empty(count, dtype=_POINT3D)
    fixed["point3d_id"], fixed["xyz"], fixed["rgb"] = batch.point3d_ids, batch.xyz, batch.rgb
    fixed["error"], fixed["track_length"] = batch.error, lengths
    elements = np.empty(len(batch.track_point), dtype=_TRACK_ELEMENT)
    elements["image_id"], elements["point2d_idx"] = batch.track_image_ids, batch.track_point2d_idx

    sizes = _POINT3D.itemsize + _TRACK_ELEMENT.itemsize * lengths
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    buffer = np.empty(int(sizes.sum()), dtype=np.uint8)
    buffer[starts[:, None] + np.arange(_POINT3D.itemsize)] = fixed.view(np.uint8).reshape(count, -1)
    first_element = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    position = np.arange(len(batch.track_point)) - first_element[batch.track_point]
    element_starts = starts[batch.track_point] + _POINT3D.itemsize + _TRACK_ELEMENT.itemsize * position
    buffer[element_starts[:, None] + np.arange(_TRACK_ELEMENT.itemsize)] = elements.view(np.uint8).reshape(-1, 8)
    return buffer.tobytes()


def points_text(batch: PointBatch) -> str:
    """points3D.txt lines of a batch."""
    elements = [f"{i} {j}" for i, j in zip(batch.track_image_ids.tolist(), batch.track_point2d_idx.tolist())]
    ends = np.cumsum(batch.track_lengths).tolist()
    starts = [0] + ends[:-1]
    lines = [
        f"{point_id} {x!r} {y!r} {z!r} {r} {g} {b} {error!r} {' '.join(elements[start:end])}\n"
        for point_id, (x, y, z), (r, g, b), error, start, end in zip(
            batch.point3d_ids.tolist(), batch.xyz.tolist(), batch.rgb.tolist(), batch.error.tolist(), starts, ends
        )
    ]
    return "".join(lines)


class SparseModelBuilder:
    """Streams a sparse model into ``scratch_dir``, then writes the six files (see the module docstring).

    Call `add_camera`, `add_image` and `add_points` in any order (ids are the caller's), then `write` once.
    `discard` removes the scratch files (also done by `write`).
    """

    def __init__(self, scratch_dir: Path) -> None:
        self._scratch_dir = Path(scratch_dir)
        self._scratch_dir.mkdir(parents=True, exist_ok=True)
        self._scratch: dict[str, BinaryIO] = {name: open(self._scratch_dir / name, "w+b") for name in _SCRATCH}
        self._cameras: list[PinholeCamera] = []
        self.num_images = 0
        self.num_points = 0
        self.num_observations = 0

    def add_camera(self, camera: PinholeCamera) -> None:
        self._require_open()
        self._cameras.append(camera)

    def add_image(self, record: ImageRecord) -> None:
        self._require_open()
        self._encode_image(record)
        self.num_images += 1
        self.num_observations += int(np.count_nonzero(record.point3d_ids != INVALID_POINT3D_ID))

    def _encode_image(self, record: ImageRecord) -> None:
        """Encode one image into the scratch files (`add_image` without the counting, for `move`)."""
        self._scratch["images.bin"].write(image_binary(record))
        self._scratch["images.txt"].write(image_text(record).encode("utf-8"))

    def add_points(self, batch: PointBatch) -> None:
        self._require_open()
        if not len(batch.point3d_ids):
            return
        self._write_points(batch)
        self.num_points += len(batch.point3d_ids)

    def _write_points(self, batch: PointBatch) -> None:
        self._scratch["points3D.bin"].write(points_binary(batch))
        self._scratch["points3D.txt"].write(points_text(batch).encode("utf-8"))

    def move(self, corrections: Mapping[int, np.ndarray]) -> None:
        """Move the streamed model by a similarity per image: image id -> ``(4, 4)`` new_world_from_world (e.g. a
        loop closure's correction at that image). Each image's camera moves rigidly with it (its rotation and
        centre; the similarity's scale goes to the scene's depth), and each 3-D point with the first image of its
        track, the one it was sampled in: there its observation projects exactly where it did, and in the track's
        other images as far off as their similarities differ, which each point's reprojection error (the mean
        over its track, pixels) now says. The scratch records are decoded and encoded again, one image or a batch
        of points at a time; the images' 2-D points are held until the points are moved.

        Raises:
            ValueError: an image without a correction, or a correction that is not a finite (4, 4) similarity.
        """
        self._require_open()
        for image_id, correction in corrections.items():
            matrix = np.asarray(correction, dtype=np.float64)
            if matrix.shape != (4, 4) or not np.isfinite(matrix).all() or not np.linalg.det(matrix[:3, :3]) > 0:
                raise ValueError(f"the correction of image {image_id} must be a finite (4, 4) similarity")
        images, points = self._scratch_copies("images.bin"), self._scratch_copies("points3D.bin")
        cameras = {camera.camera_id: camera for camera in self._cameras}
        views: dict[int, tuple[np.ndarray, PinholeCamera, np.ndarray]] = {}  # image id -> what projects a point
        try:
            for record in _image_records(images, self.num_images):
                if record.image_id not in corrections:
                    raise ValueError(f"image {record.image_id} ({record.name}) has no correction to move it by")
                world_from_camera, _ = moved_pose(corrections[record.image_id], invert_pose(record.camera_from_world))
                moved = invert_pose(world_from_camera)
                self._encode_image(ImageRecord(**{**record.__dict__, "camera_from_world": moved}))
                views[record.image_id] = (moved, cameras[record.camera_id], record.points2d)
            for batch in _point_batches(points, self.num_points, _MOVE_BATCH):
                first = np.concatenate(([0], np.cumsum(batch.track_lengths)[:-1]))
                owners = batch.track_image_ids[first]
                xyz = np.empty_like(batch.xyz)
                for image_id in np.unique(owners).tolist():
                    rows = owners == image_id
                    xyz[rows] = apply_transform(np.asarray(corrections[image_id], dtype=np.float64), batch.xyz[rows])
                error = _mean_reprojection_errors(batch, xyz, views)
                self._write_points(PointBatch(**{**batch.__dict__, "xyz": xyz, "error": error}))
        finally:
            images.close()
            points.close()

    def _scratch_copies(self, binary: str) -> BinaryIO:
        """The binary scratch file of images or points, rewound, with fresh scratch files (binary and text) in its
        place for the moved records."""
        old = self._scratch.pop(binary)
        self._scratch[binary.replace(".bin", ".txt")].close()
        old.flush()
        old.seek(0)
        for name in (binary, binary.replace(".bin", ".txt")):
            (self._scratch_dir / name).unlink(missing_ok=True)
            self._scratch[name] = open(self._scratch_dir / name, "w+b")
        return old

    def write(self, sparse_dir: Path) -> tuple[Path, ...]:
        """Write the six model files into ``sparse_dir`` (each atomically); returns their paths in `SPARSE_FILES`
        order."""
        self._require_open()
        sparse_dir = Path(sparse_dir)
        sparse_dir.mkdir(parents=True, exist_ok=True)
        mean_observations = self.num_observations / self.num_images if self.num_images else 0.0
        mean_track = self.num_observations / self.num_points if self.num_points else 0.0
        images_header = (
            "# Image list with two lines of data per image:\n"
            "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
            "#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
            f"# Number of images: {self.num_images}, mean observations per image: {mean_observations!r}\n"
        )
        points_header = (
            "# 3D point list with one line of data per point:\n"
            "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
            f"# Number of points: {self.num_points}, mean track length: {mean_track!r}\n"
        )
        contents: dict[str, tuple[bytes, str | None]] = {
            "cameras.bin": (cameras_binary(self._cameras), None),
            "images.bin": (_COUNT.pack(self.num_images), "images.bin"),
            "points3D.bin": (_COUNT.pack(self.num_points), "points3D.bin"),
            "cameras.txt": (cameras_text(self._cameras).encode("utf-8"), None),
            "images.txt": (images_header.encode("utf-8"), "images.txt"),
            "points3D.txt": (points_header.encode("utf-8"), "points3D.txt"),
        }
        paths = []
        for name in SPARSE_FILES:
            head, scratch = contents[name]
            path = sparse_dir / name
            replace_atomically(path, self._file_writer(head, None if scratch is None else self._scratch[scratch]))
            paths.append(path)
        self.discard()
        return tuple(paths)

    @staticmethod
    def _file_writer(head: bytes, body: BinaryIO | None) -> Callable[[Path], None]:
        def write(temporary: Path) -> None:
            with open(temporary, "wb") as file:
                file.write(head)
                if body is not None:
                    body.flush()
                    body.seek(0)
                    shutil.copyfileobj(body, file, length=1 << 20)

        return write

    def _require_open(self) -> None:
        if not self._scratch:
            raise RuntimeError("this SparseModelBuilder was written or discarded; start a new one")

    def discard(self) -> None:
        """Close and delete the scratch files (idempotent)."""
        for name, file in self._scratch.items():
            file.close()
            (self._scratch_dir / name).unlink(missing_ok=True)
        self._scratch = {}


def _mean_reprojection_errors(
    batch: PointBatch, xyz: np.ndarray, views: Mapping[int, tuple[np.ndarray, PinholeCamera, np.ndarray]]
) -> np.ndarray:
    """``(P,)`` mean distance, pixels, between where each point ``xyz`` ``(P, 3)`` projects in its track's images
    and the 2-D points observed there (``views``: image id -> camera_from_world, camera, 2-D points)."""
    distances = np.zeros(len(batch.track_point))
    for image_id in np.unique(batch.track_image_ids).tolist():
        elements = batch.track_image_ids == image_id
        camera_from_world, camera, points2d = views[image_id]
        local = apply_transform(camera_from_world, xyz[batch.track_point[elements]])
        projected = project_points(camera.matrix, local)
        distances[elements] = np.linalg.norm(projected - points2d[batch.track_point2d_idx[elements]], axis=1)
    return np.bincount(batch.track_point, weights=distances, minlength=len(xyz)) / np.maximum(batch.track_lengths, 1)


def _read_exactly(file: BinaryIO, size: int) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise ValueError(f"a scratch record ends early ({len(data)} of {size} bytes): the model is truncated")
    return data


def _image_records(file: BinaryIO, count: int) -> Iterator[ImageRecord]:
    """Decode ``count`` images.bin records (`image_binary`) from ``file``, one at a time."""
    for _ in range(count):
        image_id, qw, qx, qy, qz, tx, ty, tz, camera_id = _IMAGE_POSE.unpack(_read_exactly(file, _IMAGE_POSE.size))
        name = bytearray()
        while (byte := _read_exactly(file, 1)) != b"\0":
            name += byte
        (points,) = _COUNT.unpack(_read_exactly(file, _COUNT.size))
        observations = np.frombuffer(_read_exactly(file, points * _POINT2D.itemsize), dtype=_POINT2D)
        camera_from_world = np.eye(4)
        camera_from_world[:3, :3] = quaternion_to_rotation_matrix(np.array([qx, qy, qz, qw]))
        camera_from_world[:3, 3] = (tx, ty, tz)
        yield ImageRecord(
            image_id=image_id,
            camera_id=camera_id,
            name=name.decode("utf-8"),
            camera_from_world=camera_from_world,
            points2d=np.stack((observations["x"], observations["y"]), axis=1),
            point3d_ids=observations["point3d_id"].copy(),
        )


def _point_batches(file: BinaryIO, count: int, batch_size: int) -> Iterator[PointBatch]:
    """Decode ``count`` points3D.bin records (`points_binary`) from ``file``, ``batch_size`` points at a time."""
    while count > 0:
        size = min(count, batch_size)
        fixed, elements = [], []
        for _ in range(size):
            record = np.frombuffer(_read_exactly(file, _POINT3D.itemsize), dtype=_POINT3D)
            fixed.append(record)
            length = int(record["track_length"][0])
            elements.append(np.frombuffer(_read_exactly(file, length * _TRACK_ELEMENT.itemsize), dtype=_TRACK_ELEMENT))
        points, track = np.concatenate(fixed), np.concatenate(elements)
        yield PointBatch(
            point3d_ids=points["point3d_id"].copy(),
            xyz=points["xyz"].copy(),
            rgb=points["rgb"].copy(),
            error=points["error"].copy(),
            track_point=np.repeat(np.arange(size), points["track_length"].astype(np.int64)),
            track_image_ids=track["image_id"].copy(),
            track_point2d_idx=track["point2d_idx"].copy(),
        )
        count -= size
