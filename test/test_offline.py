"""`vggt-ros-reconstruct`: the node's core run offline on a folder of photographs with the tiny model."""
from __future__ import annotations

import json
import shutil

import numpy as np

from conftest import IMAGES, TINY
from vggt_ros.offline import main



def test_a_folder_of_photographs_gives_map_trajectory_and_summary(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--images", str(IMAGES), "--weights", str(TINY), "--device", "cpu", "--out", str(out),
                 "--window-size", "3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    images = sorted(p for p in IMAGES.iterdir())
    assert summary["images"] == len(images) and summary["windows"] == len(images)  # stride 1: one window per image
    statuses = [w["status"] for w in summary["per_window"]]
    # The tiny model's random weights give some windows an unusable field of view: those are rejected; the
    # first window that is usable defines the world.
    assert next(s for s in statuses if s != "rejected") == "initialized"
    assert summary["merged"] == sum(s != "rejected" for s in statuses)
    assert all(w["reason"] for w in summary["per_window"] if w["status"] == "rejected"), "every rejection says why"
    rows = [line.split() for line in (out / "trajectory.tum").read_text().splitlines() if not line.startswith("#")]
    assert rows and all(len(r) == 8 for r in rows)
    first = np.array(rows[0][1:], dtype=float)
    np.testing.assert_allclose(first, [0, 0, 0, 0, 0, 0, 1], atol=1e-9)  # the first image is the world origin
    import open3d as o3d

    cloud = o3d.io.read_point_cloud(str(out / "map.ply"))
    assert len(cloud.points) == summary["map_points"] > 0 and cloud.has_colors()


def test_the_incremental_run_writes_what_the_full_recompute_writes(tmp_path):
    common = ["--images", str(IMAGES), "--weights", str(TINY), "--device", "cpu", "--window-size", "3"]
    assert main([*common, "--out", str(tmp_path / "incremental")]) == 0
    assert main([*common, "--out", str(tmp_path / "full"), "--full-recompute"]) == 0
    summaries = [json.loads((tmp_path / run / "summary.json").read_text()) for run in ("incremental", "full")]
    assert [w["status"] for w in summaries[0]["per_window"]] == [w["status"] for w in summaries[1]["per_window"]]
    assert summaries[0]["map_points"] == summaries[1]["map_points"] > 0
    trajectories = [
        np.loadtxt(tmp_path / run / "trajectory.tum", comments="#", ndmin=2) for run in ("incremental", "full")
    ]
    assert trajectories[0].shape == trajectories[1].shape
    np.testing.assert_allclose(trajectories[0], trajectories[1], atol=1e-4)
    import open3d as o3d

    maps = [np.asarray(o3d.io.read_point_cloud(str(tmp_path / run / "map.ply")).points) for run in ("incremental", "full")]
    np.testing.assert_allclose(maps[0], maps[1], atol=1e-4)


def test_bad_folders_fail_with_a_clear_message(tmp_path, capsys):
    assert main(["--images", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--weights", str(TINY)]) == 1
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--images", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--weights", str(TINY)]) == 1
    assert "no images" in capsys.readouterr().err
    few = tmp_path / "few"
    few.mkdir()
    shutil.copy(IMAGES / "chelsea.png", few)
    assert main(["--images", str(few), "--out", str(tmp_path / "o"), "--weights", "/nonexistent/weights.pt",
                 "--device", "cpu"]) == 1
    assert "weights not found" in capsys.readouterr().err
