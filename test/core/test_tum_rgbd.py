# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""TUM RGB-D sequences: the published layout read exactly (vggt_ros.recording.tum_rgbd), the ATE that
bench/tum_rgbd.py reports (evo's reader, association and alignment) on answers known in closed form, and the
offline command's ``--tum`` run scored against the ground truth."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from evo.tools import file_interface
from PIL import Image

from conftest import TINY
from support.photos import panned_photographs
from support.tum_rgbd import trajectory_ate, write_tum_sequence
from vggt_ros.dataset.tum import write_tum_trajectory
from vggt_ros.offline import main
from vggt_ros.recording.tum_rgbd import ListedImage, TumRgbdSequence, associate_nearest, parse_stamp_ns

FAST = ["--weights", str(TINY), "--device", "cpu", "--image-size", "154"]


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    return write_tum_sequence(tmp_path_factory.mktemp("tum") / "rgbd_dataset_synthetic")


def test_the_published_layout_is_read_with_exact_stamps_and_metric_depth(sequence):
    tum = TumRgbdSequence(sequence.folder, depth=True)
    # Six-decimal stamps as integer nanoseconds, exactly (no float on the way).
    assert [image.stamp_ns for image in tum.rgb] == [int(s.replace(".", "")) * 1000 for s in sequence.rgb_stamps]
    assert parse_stamp_ns("1305031102.175304") == 1_305_031_102_175_304_000
    frame_sets = list(tum.frame_sets())
    assert [f.frame_set.stamps_ns[0] for f in frame_sets] == [image.stamp_ns for image in tum.rgb]
    assert all(np.array_equal(f.frame_set.images[0], rgb) for f, rgb in zip(frame_sets, sequence.rgb))
    assert frame_sets[0].names == (f"{sequence.rgb_stamps[0]}.png",)
    # Each colour image gets the depth image stamped 8 ms after it, in metres (5000 units per metre), NaN in holes.
    for image, truth in zip(tum.rgb, sequence.depth_m):
        depth = tum.depth_lookup(0, image.stamp_ns)
        assert np.isnan(depth[:4, :4]).all()
        expected = np.round(truth * 5000.0) / 5000.0
        np.testing.assert_allclose(depth[4:], expected[4:], rtol=1e-6)
    assert tum.depth_lookup(0, tum.rgb[0].stamp_ns + 1) is None


def test_a_malformed_sequence_names_the_file_line_and_fix(tmp_path, sequence):
    with pytest.raises(ValueError, match="rgb.txt not found"):
        TumRgbdSequence(tmp_path)
    lines = (sequence.folder / "rgb.txt").read_text().splitlines()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "rgb.txt").write_text("\n".join([*lines[:4], "1305031102.0143", *lines[5:]]) + "\n")
    with pytest.raises(ValueError, match=r"rgb.txt:5: expected 'timestamp filename'"):
        TumRgbdSequence(bad)
    (bad / "rgb.txt").write_text("\n".join([*lines[:3], lines[4], lines[3]]) + "\n")
    with pytest.raises(ValueError, match=r"rgb.txt:5: stamp .* is before the previous line's; sort the file"):
        TumRgbdSequence(bad)
    # A repeated stamp: sorting would not fix it (the message said to sort).
    (bad / "rgb.txt").write_text("\n".join([*lines[:4], lines[3]]) + "\n")
    with pytest.raises(ValueError, match=r"rgb.txt:5: stamp .* repeats the previous line's.*; remove one"):
        TumRgbdSequence(bad)
    # Two listed images of one file name (in two folders) would share one name in the exports: refused up front.
    shutil.copytree(sequence.folder / "rgb", bad / "rgb")
    shutil.copytree(sequence.folder / "rgb", bad / "again")
    first, second = lines[3].split()[1], lines[4].split()[1]
    (bad / "rgb.txt").write_text("\n".join([*lines[:4], lines[4].replace(second, f"again/{first.split('/')[-1]}")]))
    with pytest.raises(ValueError, match=r"cannot write: 2 images are named .* in other folders"):
        TumRgbdSequence(bad)
    (bad / "rgb.txt").write_text("\n".join(lines[:4]) + "\n")
    (bad / "depth.txt").write_text("# depth maps\n1305031102.016666 depth/a.png\n")
    (bad / "depth").mkdir()
    with Image.open(sequence.folder / lines[3].split()[1]) as colour:
        Image.fromarray(np.zeros(colour.size[::-1], np.uint8)).save(bad / "depth" / "a.png")
    tum = TumRgbdSequence(bad, depth=True)
    assert tum.depth_lookup(0, tum.rgb[0].stamp_ns) is None  # skipped with the reason, the run goes on
    assert "is L, not a 16-bit PNG" in tum.skipped["depth/a.png"]
    with pytest.raises(SystemExit):  # argparse: a folder of images has no depth images
        main(["--images", str(bad / "rgb"), "--metric-depth", "--out", str(tmp_path / "out")])


def test_list_files_as_editors_save_them_and_negative_stamps(tmp_path, sequence):
    """A byte-order mark (as Windows Notepad saves) made the header comment a malformed image line; a Latin-1 byte
    in a comment gave "'utf-8' codec can't decode byte 0xe9", naming no file; a negative stamp was taken, and the
    run lost its dataset export after the inference, naming a frame that is no input file."""
    bad = tmp_path / "bad"
    shutil.copytree(sequence.folder, bad)
    text = (sequence.folder / "rgb.txt").read_text()
    (bad / "rgb.txt").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert [image.stamp_ns for image in TumRgbdSequence(bad).rgb] == [
        image.stamp_ns for image in TumRgbdSequence(sequence.folder).rgb
    ]
    (bad / "rgb.txt").write_bytes(b"# timestamps\n# cam\xe9ra 1\n" + text.encode())
    with pytest.raises(ValueError) as err:
        TumRgbdSequence(bad)
    assert str(err.value) == f"{bad / 'rgb.txt'}:2: not UTF-8 text (invalid continuation byte); save the file as UTF-8"
    first = next(line for line in text.splitlines() if not line.startswith("#"))
    (bad / "rgb.txt").write_text(text.replace(first, f"-0.5 {first.split()[1]}"))
    with pytest.raises(ValueError, match=r"rgb.txt:\d+: stamp -0.5 is negative; stamps are seconds >= 0"):
        TumRgbdSequence(bad)


def _groundtruth_at_images(sequence):
    """The ground truth as evo reads it, at the rows the colour images were rendered at: ``(N, 4, 4)``."""
    groundtruth = file_interface.read_tum_trajectory_file(sequence.folder / "groundtruth.txt")
    return np.stack([groundtruth.poses_se3[row] for row in sequence.groundtruth_rows])


def _write_estimate(path, sequence, world_from_camera):
    stamps_ns = [int(s.replace(".", "")) * 1000 for s in sequence.rgb_stamps]
    write_tum_trajectory(path, stamps_ns, world_from_camera)


def _similarity(scale, angle, translation):
    c, s = np.cos(angle), np.sin(angle)
    transform = np.eye(4)
    transform[:3, :3] = scale * np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    transform[:3, 3] = translation
    return transform


def _moved(transform, poses):
    """``poses`` ``(N, 4, 4)`` under a similarity: rotated, scaled and shifted, still rigid poses."""
    scale = np.cbrt(np.linalg.det(transform[:3, :3]))
    moved = transform @ poses
    moved[:, :3, :3] /= scale
    return moved


def test_ate_is_zero_for_the_ground_truth_under_a_similarity_and_exact_for_a_known_perturbation(tmp_path, sequence):
    truth = _groundtruth_at_images(sequence)
    groundtruth = sequence.folder / "groundtruth.txt"
    estimate = tmp_path / "estimate.tum"
    # The ground truth in another frame at another scale (a VGGT world): Sim(3) alignment brings it back exactly.
    _write_estimate(estimate, sequence, _moved(_similarity(0.37, 1.1, [3.0, -1.0, 0.5]), truth))
    result = trajectory_ate(groundtruth, estimate, correct_scale=True)
    assert result["associated_poses"] == len(truth) and result["rmse_m"] < 1e-6
    assert result["scale"] == pytest.approx(1 / 0.37, rel=1e-6)

    # A perturbation e with zero mean and uncorrelated with the true positions g (columns orthogonal to 1, g_x,
    # g_y, g_z) leaves the best rotation and translation as they are. SE(3): the error is |e_i| itself. Sim(3):
    # Umeyama's scale becomes s = var(g) / (var(g) + var(e)), and the error (s - 1)(g_i - mean g) + s e_i.
    positions = truth[:, :3, 3]
    basis = np.column_stack((np.ones(len(truth)), positions))
    e = np.random.default_rng(5).normal(scale=0.05, size=positions.shape)
    e -= basis @ np.linalg.lstsq(basis, e, rcond=None)[0]
    perturbed = truth.copy()
    perturbed[:, :3, 3] += e
    norms = np.linalg.norm(e, axis=1)
    expected_se3 = {"rmse_m": np.sqrt(np.mean(norms**2)), "mean_m": norms.mean(), "median_m": np.median(norms)}
    centred = positions - positions.mean(axis=0)
    scale = (centred**2).sum() / ((centred**2).sum() + (e**2).sum())
    errors = np.linalg.norm((scale - 1) * centred + scale * e, axis=1)
    expected_sim3 = {"rmse_m": np.sqrt(np.mean(errors**2)), "mean_m": errors.mean(), "median_m": np.median(errors)}

    _write_estimate(estimate, sequence, _moved(_similarity(1.0, -0.4, [0.2, 0.3, -2.0]), perturbed))
    result = trajectory_ate(groundtruth, estimate, correct_scale=False)
    assert result["associated_poses"] == len(truth)
    for key, value in expected_se3.items():
        assert result[key] == pytest.approx(value, rel=1e-6), key
    _write_estimate(estimate, sequence, _moved(_similarity(2.5, 0.7, [1.0, 0.0, 4.0]), perturbed))
    result = trajectory_ate(groundtruth, estimate, correct_scale=True)
    for key, value in expected_sim3.items():
        assert result[key] == pytest.approx(value, rel=1e-6), key
    assert expected_sim3["rmse_m"] < expected_se3["rmse_m"]  # the scale absorbs part of the perturbation


def test_the_offline_command_runs_a_tum_folder_at_its_stamps_with_its_depth(tmp_path):
    sequence = write_tum_sequence(tmp_path / "sequence", photographs=np.stack(panned_photographs(8)))
    out = tmp_path / "out"
    assert main(["--tum", str(sequence.folder), "--metric-depth", "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "joint" and summary["merged"] == 1
    assert summary["units"] == "metres"  # the depth images set the scale
    lines = (out / "trajectory.tum").read_text().splitlines()
    assert "# units: metres" in lines  # the file says what its unit is
    rows = [line.split() for line in lines if not line.startswith("#")]
    assert [row[0] for row in rows] == [f"{s}000" for s in sequence.rgb_stamps]  # the listed stamps, exactly
    result = trajectory_ate(sequence.folder / "groundtruth.txt", out / "trajectory.tum", correct_scale=False)
    assert result["associated_poses"] == len(sequence.rgb_stamps)
    assert np.isfinite(result["rmse_m"])


@pytest.mark.parametrize("damage", ["missing", "8-bit", "truncated", "half size"])
def test_one_bad_depth_image_costs_its_frame_only(tmp_path, damage):
    # Before: a missing, 8-bit or truncated depth image failed the whole window (in joint mode, the whole run), and
    # one of another size voided the window's measurement, so the run waited for a scale it never got.
    sequence = write_tum_sequence(tmp_path / "sequence", photographs=np.stack(panned_photographs(6)))
    bad = sorted((sequence.folder / "depth").iterdir())[2]
    if damage == "missing":
        bad.unlink()
    elif damage == "8-bit":
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(bad)
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:200])
    else:
        with Image.open(bad) as image:
            image.resize((image.width // 2, image.height // 2)).save(bad)
    out = tmp_path / "out"
    assert main(["--tum", str(sequence.folder), "--metric-depth", "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["merged"] == 1 and summary["units"] == "metres" and summary["map"] is not None
    assert summary["exported_frames"] == 6
    if damage != "half size":  # unreadable: skipped like a colour image, with the reason
        assert list(summary["skipped_inputs"]) == [f"depth/{bad.name}"]


def _blank_depth(sequence) -> None:
    """Every depth image measures nothing (0 everywhere, as a sensor facing the sky): no window gets a scale."""
    for path in (sequence.folder / "depth").iterdir():
        with Image.open(path) as image:
            size = image.size
        Image.fromarray(np.zeros(size[::-1], np.uint16)).save(path)


def test_depth_of_another_size_than_its_colour_image_is_left_out_before_any_work(tmp_path, capsys):
    """Depth at half the colour image's size (not registered to it) gave no scale, which the run found only after
    the inference, and said "1 windows merged but none was written" with the live node's advice to publish a topic."""
    sequence = write_tum_sequence(tmp_path / "sequence", photographs=np.stack(panned_photographs(4)))
    depth = sorted((sequence.folder / "depth").iterdir())
    for path in depth[:2]:
        with Image.open(path) as image:
            image.resize((image.width // 2, image.height // 2)).save(path)
    tum = TumRgbdSequence(sequence.folder, depth=True)
    assert len(tum.depth) == 2 and sorted(tum.skipped) == [f"depth/{path.name}" for path in depth[:2]]
    assert tum.skipped[f"depth/{depth[0].name}"] == (
        f"depth image is 80x60 (WxH) but its colour image {tum.rgb[0].path.name} is 160x120; --metric-depth needs "
        "depth registered to the colour images"
    )
    for path in depth[2:]:
        with Image.open(path) as image:
            image.resize((image.width // 2, image.height // 2)).save(path)
    arguments = ["--tum", str(sequence.folder), "--metric-depth", "--out", str(tmp_path / "out")]
    assert main([*arguments, *FAST[2:], "--weights", str(tmp_path / "none")]) == 1  # weights never looked at
    assert capsys.readouterr().err.endswith(
        "has its colour image's size; --metric-depth needs depth registered to the colour images, pixel for pixel, "
        "as TUM RGB-D's depth/ is (see the warnings)\n"
    )
    assert not (tmp_path / "out").exists()


def test_a_run_that_never_measures_its_metric_scale_writes_nothing_in_an_unknown_unit(tmp_path):
    # No depth image measures anything: no window ever gets a scale. Before, the run said "merged 1" and exit 0
    # with no map, and --out-bag held the window's path in VGGT's unit, which the node never publishes.
    sequence = write_tum_sequence(tmp_path / "sequence", photographs=np.stack(panned_photographs(6)))
    _blank_depth(sequence)
    out, bag = tmp_path / "out", tmp_path / "bag"
    assert main(["--tum", str(sequence.folder), "--metric-depth", "--out", str(out), "--out-bag", str(bag), *FAST]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["merged"] == 0 and summary["map"] is None and summary["exported_frames"] == 0
    # Nor the trajectory, in VGGT's unit (it was written, and --overwrite put it in place of a metric run's).
    assert summary["trajectory"] is None and not list(out.glob("trajectory*.tum"))
    assert [window["status"] for window in summary["per_window"]] == ["waiting_for_scale"]
    assert summary["no_result"].startswith("1 window(s) waited for the metric scale and none was written: ")
    assert "every reading was 0 or NaN" in summary["no_result"]
    assert summary["bag"] is None and not bag.exists()  # nothing in metres to play


def test_the_tum_benchmark_records_a_run_without_result_as_ate_null(tmp_path):
    """bench/tum_rgbd.py stopped at the offline command's exit status 1 and wrote no JSON, so its documented
    "ate_m": null with the reasons could never be written."""
    sequence = write_tum_sequence(tmp_path / "sequence", photographs=np.stack(panned_photographs(4)))
    _blank_depth(sequence)
    figures = tmp_path / "tum.json"
    arguments = ["--sequence", str(sequence.folder), "--weights", str(TINY), "--device", "cpu", "--image-size", "154"]
    bench = Path(__file__).resolve().parents[2] / "bench" / "tum_rgbd.py"
    done = subprocess.run(
        [sys.executable, str(bench), *arguments, "--metric-depth", "--json", str(figures)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(figures.read_text())
    assert result["ate_m"] is None and result["estimated_poses"] == 0
    assert "metric scale" in result["no_result"] and result["reasons"]


def test_frames_merged_before_the_metric_scale_are_counted_and_said(tmp_path, caplog):
    """Depth only from the fifth image on, sliding windows: the first windows merge but wait for the scale, and their
    frames never reach the exports (nothing is written in an unknown unit). That was said nowhere: the trajectory
    held more frames than the dataset, and only per_window's statuses told why."""
    sequence = write_tum_sequence(tmp_path / "sequence", photographs=np.stack(panned_photographs(8)))
    for path in sorted((sequence.folder / "depth").iterdir())[:4]:
        with Image.open(path) as image:
            image.resize((image.width // 2, image.height // 2)).save(path)  # unusable: not the colour image's size
    out = tmp_path / "out"
    arguments = ["--tum", str(sequence.folder), "--metric-depth", "--out", str(out), "--no-loop-closure"]
    with caplog.at_level("WARNING", logger="vggt_ros.offline"):
        assert main([*arguments, "--sliding-window", "--window-size", "3", *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    waiting = [w["window"] for w in summary["per_window"] if w["status"] == "waiting_for_scale"]
    assert waiting and summary["held_back_frames"] > 0
    in_metres = [w["window"] for w in summary["per_window"] if w["status"] in ("merged", "new_segment")]
    assert summary["metric_from_window"] == min(w for w in in_metres if w > waiting[-1])
    rows = [line for line in (out / "trajectory.tum").read_text().splitlines() if not line.startswith("#")]
    assert len(rows) == summary["exported_frames"] + summary["held_back_frames"]
    assert f"the {summary['held_back_frames']} frames merged while it awaited its scale" in caplog.text


def test_colour_images_of_other_sizes_are_padded_and_odd_ones_skipped_as_in_a_folder(tmp_path):
    """Images 4 and 5 at another size crashed the run after the inference, writing nothing; a 2000x10 image failed
    its whole window; --max-image-pixels was not applied. A folder's images had each of these rules already."""
    sequence = write_tum_sequence(tmp_path / "sequence", photographs=np.stack(panned_photographs(8)))
    rgb = sorted((sequence.folder / "rgb").iterdir())
    for path in rgb[4:6]:
        with Image.open(path) as image:
            image.resize((image.width * 5 // 4, image.height)).save(path)
    Image.fromarray(np.zeros((10, 2000, 3), np.uint8)).save(rgb[7])
    out = tmp_path / "out"
    assert main(["--tum", str(sequence.folder), "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (
        list(summary["skipped_inputs"]) == [rgb[7].name] and "too elongated" in summary["skipped_inputs"][rgb[7].name]
    )
    assert summary["exported_frames"] == 7 and summary["model_hw"] is not None
    exported = json.loads((out / "transforms.json").read_text())["frames"]
    assert {(frame["h"], frame["w"]) for frame in exported} == {(120, 160), (120, 200)}  # each at its own size
    # Over --max-image-pixels: listed, never decoded.
    big = ["--out", str(tmp_path / "big"), "--max-image-pixels", str(120 * 160)]
    assert main(["--tum", str(sequence.folder), *big, *FAST]) == 0
    skipped = json.loads((tmp_path / "big" / "summary.json").read_text())["skipped_inputs"]
    assert set(skipped) == {path.name for path in (*rgb[4:6], rgb[7])}
    assert all("over max_image_pixels" in skipped[path.name] for path in rgb[4:6])


def test_depth_is_paired_as_associate_py_pairs_it():
    """associate.py looks at every pair closer than the limit; only the two nearest depth images were looked at, so
    a colour image whose nearest depth its neighbour took got none, although another lay within 0.02 s."""
    ms = 1_000_000
    colour = [ListedImage(0, Path("rgb/0.png")), ListedImage(4 * ms, Path("rgb/4.png"))]
    depth = [ListedImage(3 * ms, Path("depth/3.png")), ListedImage(19 * ms, Path("depth/19.png"))]
    assert associate_nearest(colour, depth, 20 * ms) == {4 * ms: Path("depth/3.png"), 0: Path("depth/19.png")}
    # closer than the limit, strictly, as associate.py's abs(a - b) < max_difference
    assert associate_nearest(colour[:1], depth[1:], 19 * ms) == {}
