# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`DatasetWriter`: reconstructed frames in, a dataset folder out, streamed one frame at a time.

Layout of ``out_dir``::

    images/<name>                  the camera image (when `add` is given it)
    depth/<stem>.png | .npy        depth at the image resolution (`vggt_ros.dataset.frame_files`)
    confidence/<stem>.npy          its confidence
    colmap/sparse/0/{cameras,images,points3D}.{bin,txt}   COLMAP model (`vggt_ros.dataset.colmap`)
    transforms.json                nerfstudio (`vggt_ros.dataset.nerfstudio`)

Streaming is what lets a 10,000-frame bag through: `add` writes the frame's own files at once and keeps only a
small record (a camera, a transforms.json entry); the sparse points go through `vggt_ros.dataset.tracks`, which
holds the last few frames, and closed frames' COLMAP records go to scratch files in ``out_dir`` that `finish`
turns into the model; `finish` can move the model, transforms.json and the depth files first (`corrections`: the
world moved since the frames came). Every file is written atomically (`vggt_ros.files.replace_atomically`), so a
reader never sees half a file. `close` (or leaving a ``with`` block without `finish`) deletes the scratch files and
writes no model.

Frames are validated when they arrive (`ExportFrame`); names must be unique, and so must their stems, since the
depth and confidence files are named after the stem.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from vggt_ros.dataset import strict_json
from vggt_ros.dataset.colmap import PinholeCamera, SparseModelBuilder
from vggt_ros.dataset.frame_files import image_format, rescale_depth_file, write_frame_files
from vggt_ros.dataset.frames import ExportFrame, check_relative_name
from vggt_ros.dataset.nerfstudio import OPENGL_FROM_OPENCV_AXES, frame_entry, transforms_document
from vggt_ros.dataset.tracks import PointSampling, TrackBuilder
from vggt_ros.geometry import moved_pose

logger = logging.getLogger(__name__)

SPARSE_DIR = Path("colmap") / "sparse" / "0"
TRANSFORMS_JSON = "transforms.json"
# A similarity whose scale is within this of 1 leaves the depth files as they are: a metric world's loops are rigid
# to about 1e-6 (`PoseGraphConfig.metric_scale_sigma`), under a millimetre at a kilometre, and rewriting every depth
# file for it would change nothing but the time.
DEPTH_SCALE_TOLERANCE = 1e-5
# The top-level entries of a dataset folder (`vggt_ros.dataset.frame_files` names the per-frame folders).
DATASET_ENTRIES = ("images", "depth", "confidence", SPARSE_DIR.parts[0], TRANSFORMS_JSON)


@dataclass(frozen=True)
class DatasetConfig:
    """Attributes:
    sampling: how the COLMAP points are sampled and tracked (`vggt_ros.dataset.tracks.PointSampling`).
    jpeg_quality: quality of images written as JPEG, 1..95 (Pillow's useful range).
    """

    sampling: PointSampling = PointSampling()
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if not isinstance(self.sampling, PointSampling):
            raise ValueError(f"sampling must be a PointSampling, got {type(self.sampling).__name__}")
        quality = self.jpeg_quality
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 95:
            raise ValueError(f"jpeg_quality must be an int in [1, 95] (Pillow's useful range), got {quality!r}")


@dataclass(frozen=True)
class WrittenDataset:
    """What `DatasetWriter.finish` wrote.

    Attributes:
        colmap_files: the six sparse-model files (`vggt_ros.dataset.colmap.SPARSE_FILES` order).
        transforms_json: nerfstudio's file.
        num_frames, num_points: images and 3-D points of the model.
        clamped_depth_pixels: metric depth pixels beyond 65.535 m written as 65535 (0 for other runs).
    """

    colmap_files: tuple[Path, ...]
    transforms_json: Path
    num_frames: int
    num_points: int
    clamped_depth_pixels: int


class DatasetWriter:
    """See the module docstring. Use from one thread.

    Args:
        out_dir: the dataset folder (created if missing; files of the same names are replaced).
        metric: True when the world is in metres (depth written as millimetre PNGs), False for VGGT world units.
        config: `DatasetConfig`.
    """

    def __init__(self, out_dir, metric: bool, config: DatasetConfig = DatasetConfig()) -> None:
        if not isinstance(metric, bool):
            raise ValueError(f"metric must be True (world in metres) or False (VGGT world units), got {metric!r}")
        if not isinstance(config, DatasetConfig):
            raise ValueError(f"config must be a DatasetConfig, got {type(config).__name__}")
        self.out_dir = Path(out_dir)
        self.metric = metric
        self.config = config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._scratch_dir = Path(tempfile.mkdtemp(prefix=".colmap-scratch-", dir=self.out_dir))
        self._model = SparseModelBuilder(self._scratch_dir)
        self._tracks = TrackBuilder(config.sampling)
        self._names: set[str] = set()
        self._stems: set[str] = set()
        self._entries: list[dict] = []
        self._without_image: list[str] = []
        self._clamped_depth_pixels = 0
        self._state = "open"

    @property
    def num_frames(self) -> int:
        return len(self._entries)

    def add(self, frame: ExportFrame, image: Optional[np.ndarray] = None) -> None:
        """Write one frame's files and remember what the model and transforms.json need of it.

        Args:
            frame: the reconstructed frame (validated on construction).
            image: ``(H, W, 3)`` uint8 RGB camera image (the pixel_map's image size), written to images/<name>
                in the format of the name's suffix. Without it, images/<name> is expected to be put there by the
                caller (`finish` warns about missing ones).
        Raises:
            ValueError: a name or stem already added, an image of the wrong size or type, or a suffix Pillow cannot
                write. RuntimeError: after `finish` or `close`.
        """
        self._require_open()
        if not isinstance(frame, ExportFrame):
            raise ValueError(f"frame must be an ExportFrame, got {type(frame).__name__}")
        if frame.name in self._names:
            raise ValueError(f"frame name {frame.name!r} was already added; every frame needs its own image name")
        if frame.stem in self._stems:
            raise ValueError(
                f"frame name {frame.name!r} has the stem {frame.stem!r} of a frame already added; its depth and "
                f"confidence files would overwrite that frame's, so give the images different stems"
            )
        if image is not None:
            expected = (*frame.image_hw, 3)
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != expected:
                raise ValueError(
                    f"frame {frame.name!r}: image must be a uint8 RGB array of shape {expected} (the size its "
                    f"pixel_map maps from), got {getattr(image, 'dtype', type(image).__name__)} "
                    f"{getattr(image, 'shape', '')}"
                )
            image_format(frame.name)  # raises now, before any of the frame's files is written
        image_id = len(self._entries) + 1
        files, clamped = write_frame_files(self.out_dir, frame, image, self.metric, self.config.jpeg_quality)
        self._clamped_depth_pixels += clamped
        self._names.add(frame.name)
        self._stems.add(frame.stem)
        if image is None:
            self._without_image.append(frame.name)
        self._model.add_camera(PinholeCamera.from_matrix(image_id, frame.image_hw, frame.corner_intrinsics()))
        self._entries.append(frame_entry(frame, files, image_id))
        for record, points in self._tracks.add(frame, image_id):
            self._model.add_image(record)
            self._model.add_points(points)

    def finish(
        self, ply_path: Optional[str] = None, corrections: Optional[Mapping[str, np.ndarray]] = None
    ) -> WrittenDataset:
        """Write the COLMAP model and transforms.json; the writer is closed afterwards.

        Args:
            ply_path: the initial point cloud for nerfstudio (``ply_file_path``), relative to ``out_dir``, POSIX
                separators; the file must already be there (e.g. the map's PLY, written first).
            corrections: frame name -> ``(4, 4)`` similarity new_world_from_world, one for every frame added: the
                world moved since the frames came (a loop closure re-placed them). Each camera moves rigidly with
                its similarity, the COLMAP points with the frame they were sampled in, and a frame's depth file is
                multiplied by its similarity's scale where that is not 1 (`DEPTH_SCALE_TOLERANCE`; its confidence
                stays).
        Raises:
            ValueError: no frame was added, ``ply_path`` is not a relative path to an existing file, or
                ``corrections`` misses a frame or holds something other than a finite similarity.
        """
        self._require_open()
        if not self._entries:
            raise ValueError("no frame was added; there is nothing to export (add frames before finish)")
        if ply_path is not None:
            check_relative_name(ply_path, "ply_path")
            if not (self.out_dir / ply_path).is_file():
                raise ValueError(
                    f"ply_path {ply_path!r} is not a file in {self.out_dir}; write the point cloud there before finish"
                )
        for record, points in self._tracks.close_all():
            self._model.add_image(record)
            self._model.add_points(points)
        if corrections is not None:
            self._move(corrections)
        colmap_files = self._model.write(self.out_dir / SPARSE_DIR)
        transforms = strict_json.write(
            self.out_dir / TRANSFORMS_JSON, transforms_document(self._entries, self.metric, ply_path)
        )
        missing = [name for name in self._without_image if not (self.out_dir / "images" / name).is_file()]
        if missing:
            logger.warning(
                "%d of the dataset's images are not in %s (first: %s); copy them there before using the dataset",
                len(missing),
                self.out_dir / "images",
                missing[0],
            )
        if self._clamped_depth_pixels:
            logger.warning(
                "%d depth pixels lie beyond 65.535 m, the most a millimetre PNG holds; they were written as 65535",
                self._clamped_depth_pixels,
            )
        written = WrittenDataset(
            colmap_files=colmap_files,
            transforms_json=transforms,
            num_frames=len(self._entries),
            num_points=self._model.num_points,
            clamped_depth_pixels=self._clamped_depth_pixels,
        )
        self._release("finished")
        return written

    def _move(self, corrections: Mapping[str, np.ndarray]) -> None:
        """Apply `finish`'s ``corrections`` to the model, the transforms.json entries and the depth files."""
        names = [entry["file_path"].removeprefix("images/") for entry in self._entries]
        missing = [name for name in names if name not in corrections]
        if missing:
            raise ValueError(f"corrections miss {len(missing)} of the {len(names)} frames (first: {missing[0]})")
        self._model.move({entry["colmap_im_id"]: corrections[name] for entry, name in zip(self._entries, names)})
        for entry, name in zip(self._entries, names):
            world_from_camera = np.asarray(entry["transform_matrix"]) @ OPENGL_FROM_OPENCV_AXES  # OpenCV axes
            moved, scale = moved_pose(corrections[name], world_from_camera)
            entry["transform_matrix"] = (moved @ OPENGL_FROM_OPENCV_AXES).tolist()
            if abs(scale - 1.0) > DEPTH_SCALE_TOLERANCE:
                self._clamped_depth_pixels += rescale_depth_file(self.out_dir / entry["depth_file_path"], scale)

    def close(self) -> None:
        """Abandon the export: delete the scratch files; frames' own files stay. Idempotent; no-op after finish."""
        if self._state == "open":
            self._release("closed")

    def _release(self, state: str) -> None:
        self._model.discard()
        shutil.rmtree(self._scratch_dir, ignore_errors=True)
        self._state = state

    def _require_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"this DatasetWriter is {self._state}; start a new one to write another dataset")

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
