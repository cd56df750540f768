# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`vggt-ros-reconstruct` never loses a run (issues 18 and 19): inputs that change size, odd stamps, bad windows,
over-large or truncated inputs, failing exports, SIGTERM, a reused --out, and runs that read nothing. Everything
goes through the command, its outputs read back by pycolmap and strict JSON."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from PIL import Image
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

import vggt_ros
from conftest import IMAGES, TINY
from support.bags import damage_first_record_of_chunk, write_image_bag, write_raw_bag
from support.image_files import jpeg_claiming, png_claiming
from vggt_ros import offline as offline_module
from vggt_ros import session as session_module
from vggt_ros.dataset import writer as writer_module
from vggt_ros.files import SAVE_RECORD, STAGING_PREFIX
from vggt_ros.live import input as live_input
from vggt_ros.offline import main

FAST = ["--weights", str(TINY), "--device", "cpu", "--image-size", "154"]
START_NS = 1_000_000_000
PERIOD_NS = 100_000_000


def _strict_json(path):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _photos(count: int, size=(120, 160)) -> list[np.ndarray]:
    """``count`` camera-like frames: one photograph panned a few pixels per frame."""
    photo = np.asarray(Image.open(IMAGES / "chelsea.png").convert("RGB").resize((size[1] + 8 * count, size[0])))
    return [np.ascontiguousarray(photo[:, 8 * i : 8 * i + size[1]]) for i in range(count)]


def _stamped(frames, start_ns=START_NS):
    return [(start_ns + PERIOD_NS * i, frame) for i, frame in enumerate(frames)]


def _bag_run(tmp_path, bag, topics, *extra, out_name="out"):
    out = tmp_path / out_name
    status = main(["--bag", str(bag), "--topics", ",".join(topics), "--out", str(out), *FAST, *extra])
    return status, out


def _scratch_folders(out):
    """What a run left behind in ``out``: the COLMAP writer's scratch folders and the run's staging folder."""
    prefixes = (".colmap-scratch-", STAGING_PREFIX)
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.name.startswith(prefixes))


def _model_image_sizes(out) -> dict[str, tuple[int, int]]:
    model = pycolmap.Reconstruction(str(out / "colmap" / "sparse" / "0"))
    return {
        image.name: (model.cameras[image.camera_id].height, model.cameras[image.camera_id].width)
        for image in model.images.values()
    }


# ----------------------------------------------------------------------------------- 18.1: image sizes, exports
def test_a_bag_of_photographs_at_their_own_sizes_is_padded_to_one_model_size_and_exported(tmp_path):
    # 640x427, 451x300 and 600x300: at --image-size 154 the model images are 98 and 84 pixels high. (Photographs
    # the tiny model's random weights give usable cameras; others get a field of view of 0 and are rejected.)
    names = ("rocket.jpg", "chelsea.png", "coffee_2to1.png")
    photos = [np.asarray(Image.open(IMAGES / name).convert("RGB")) for name in names]
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam/image_raw", _stamped(photos))], compressed=True)
    status, out = _bag_run(tmp_path, bag, ["/cam/image_raw"])
    assert status == 0
    summary = _strict_json(out / "summary.json")
    assert summary["model_hw"] == [98, 154]  # the largest model image; the others are padded to it
    assert summary["frame_sets"] == len(photos) and summary["merged"] == 1 and not _scratch_folders(out)
    sizes = _model_image_sizes(out)  # every frame exported at its own size
    assert sizes == {f"camera0/{stamp_ns}.png": photo.shape[:2] for stamp_ns, photo in _stamped(photos)}
    for frame in _strict_json(out / "transforms.json")["frames"]:
        assert np.load(out / frame["depth_file_path"]).shape == (frame["h"], frame["w"])
    assert len(np.loadtxt(out / "trajectory.tum", comments="#", ndmin=2)) == len(photos)


def test_a_camera_whose_aspect_ratio_changes_mid_bag_runs_in_joint_mode(tmp_path):
    frames = _photos(6)
    frames[3:] = [np.ascontiguousarray(f[15:105]) for f in frames[3:]]  # 120x160 -> 90x160 from the fourth
    bag = write_image_bag(tmp_path / "bag", "sqlite3", [("/cam", _stamped(frames))])
    status, out = _bag_run(tmp_path, bag, ["/cam"])
    assert status == 0
    summary = _strict_json(out / "summary.json")
    assert summary["mode"] == "joint" and summary["merged"] == 1 and summary["exported_frames"] == 6
    sizes = _model_image_sizes(out)
    assert sorted(set(sizes.values())) == [(90, 160), (120, 160)]


def test_a_failing_export_keeps_the_map_trajectory_and_summary_and_names_the_file(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(_photos(6)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    write_frame_files = writer_module.write_frame_files

    def disk_full_at_the_fourth_frame(out_dir, frame, *args):  # a test double of a disk that fills up
        if frame.name == "frame_003.png":
            raise OSError(28, "No space left on device", str(out_dir / "depth" / "frame_003.npy"))
        return write_frame_files(out_dir, frame, *args)

    monkeypatch.setattr(writer_module, "write_frame_files", disk_full_at_the_fourth_frame)
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "frame_003.npy" in err and "No space left on device" in err
    summary = _strict_json(out / "summary.json")
    assert summary["merged"] == 1 and summary["map_points"] > 0
    assert any("frame_003.npy" in problem for problem in summary["output_errors"])
    assert (out / "map.ply").is_file()
    assert len(np.loadtxt(out / "trajectory.tum", comments="#", ndmin=2)) == 6
    assert sorted(p.stem for p in (out / "confidence").iterdir()) == [f"frame_{i:03d}" for i in range(3)]
    assert not (out / "transforms.json").exists() and not _scratch_folders(out)


def test_a_disk_that_fills_while_an_input_image_is_copied_leaves_no_part_of_it_and_names_the_copy(
    tmp_path, monkeypatch, capsys
):
    """The copy of a folder's image into images/ was written in place: a full disk left a truncated image there,
    and the error named the input file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(_photos(4)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    copyfile = shutil.copyfile

    def disk_full_half_way(source, target):  # a test double of a disk that fills during the second image's copy
        if Path(source).name != "frame_001.png":
            return copyfile(source, target)
        Path(target).write_bytes(Path(source).read_bytes()[:1000])
        raise OSError(28, "No space left on device", str(source))

    monkeypatch.setattr(shutil, "copyfile", disk_full_half_way)
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert f"could not write {out / 'images' / 'frame_001.png'}: No space left on device" in err
    assert sorted(p.name for p in (out / "images").iterdir()) == ["frame_000.png"]  # no part, no temporary
    assert (out / "map.ply").is_file() and (out / "summary.json").is_file()


def test_an_export_error_that_names_no_file_names_the_output_folder(tmp_path, monkeypatch, capsys):
    """A buffered write (the COLMAP scratch files) fails on a full disk with an error that names no file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(_photos(3)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")

    def disk_full(*args):  # a test double of a buffered write on a full disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer_module, "write_frame_files", disk_full)
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 1
    assert f"No space left on device, writing into {out})" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- 18.4: a reused --out
def test_a_non_empty_out_is_refused_and_overwrite_replaces_only_the_outputs(tmp_path, capsys):
    frames = _photos(3)
    folders = {}
    for count in (3, 2):
        folders[count] = tmp_path / f"photos{count}"
        folders[count].mkdir()
        for index, frame in enumerate(frames[:count]):
            Image.fromarray(frame).save(folders[count] / f"frame_{index:03d}.png")
    out = tmp_path / "out"
    assert main(["--images", str(folders[3]), "--out", str(out), *FAST]) == 0
    (out / "notes.txt").write_text("the user's own file")
    (out / ".notes.0123456789ab.tmp.txt").write_text("the user's own hidden file")
    ground_truth = "1.0 0 0 0 0 0 0 1\n"  # the user's, for evo: its name matches the trajectories' pattern
    (out / "trajectory_groundtruth.tum").write_text(ground_truth)
    # What a run killed while it wrote leaves: its staging folder (`vggt_ros.files.staged_entries`).
    killed = out / f"{STAGING_PREFIX}k1ll3d"
    (killed / "new" / "images").mkdir(parents=True)
    (killed / "new" / "map.ply").write_text("partial")
    assert main(["--images", str(folders[2]), "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "not empty" in err and "--overwrite" in err
    assert _strict_json(out / "summary.json")["images"] == 3  # refused before touching anything
    assert main(["--images", str(folders[2]), "--out", str(out), "--overwrite", *FAST]) == 0
    assert _strict_json(out / "summary.json")["images"] == 2
    for sub in ("images", "depth", "confidence"):
        assert not [p for p in (out / sub).iterdir() if p.stem == "frame_002"], sub
    assert sorted(i.name for i in pycolmap.Reconstruction(str(out / "colmap" / "sparse" / "0")).images.values()) == [
        "frame_000.png",
        "frame_001.png",
    ]
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert (out / ".notes.0123456789ab.tmp.txt").is_file()
    assert (out / "trajectory_groundtruth.tum").read_text() == ground_truth
    assert not killed.exists(), "a killed run's staging folder outlived --overwrite"


def test_an_overwrite_run_that_fails_to_start_leaves_the_earlier_run_whole(tmp_path, capsys):
    """--overwrite removed the earlier run's outputs first, and a typo that stopped the run a moment later (weights
    not found, a wrong --camera-names) lost them."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(_photos(2)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    failing = ["--images", str(folder), "--out", str(out), "--overwrite", *FAST, "--weights", str(tmp_path / "none")]
    assert main(failing) == 1
    assert "none" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert _strict_json(out / "summary.json")["images"] == 2


def _good_run(tmp_path, count: int = 2):
    """A finished run into tmp_path/out of ``count`` photos, and the folder's entries then (path -> bytes)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(_photos(count)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 0
    return folder, out, _contents(out)


def _contents(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_an_overwrite_run_that_reconstructs_nothing_keeps_the_earlier_run(tmp_path, capsys):
    """--overwrite removed the earlier run's outputs once the model had loaded: the wrong bag (here one whose every
    image is corrupt) then left only a summary saying that nothing was reconstructed."""
    _, out, before = _good_run(tmp_path)
    frames = _stamped(_photos(2))
    wrong = write_image_bag(tmp_path / "wrong", "mcap", [("/cam", frames)], compressed=True, corrupt={(0, 0), (0, 1)})
    assert main(["--bag", str(wrong), "--topics", "/cam", "--out", str(out), "--overwrite", *FAST]) == 1
    err = capsys.readouterr().err
    assert "nothing was reconstructed" in err and "Traceback" not in err
    assert _contents(out) == before


def test_overwrite_refuses_a_users_own_entry_of_an_outputs_name_before_any_work(tmp_path, capsys):
    """A folder that never held a run, with the user's own images/ and map.ply, and a mocap trajectory_right.tum
    where camera 'right' runs: --overwrite deleted the first two, since they share a name with an output, and the
    run overwrote the third."""
    frames = _stamped(_photos(2))
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/left", frames), ("/right", frames)])
    project = tmp_path / "project"
    (project / "images").mkdir(parents=True)
    (project / "images" / "IMG_0001.jpg").write_bytes(b"the user's photo")
    (project / "map.ply").write_text("the user's map")
    (project / "trajectory_right.tum").write_text("1.0 0 0 0 0 0 0 1\n")
    before = _contents(project)
    command = ["--bag", str(bag), "--topics", "/left,/right", "--camera-names", "left,right", "--out", str(project)]
    assert main([*command, "--overwrite", *FAST, "--weights", str(tmp_path / "x")]) == 1  # weights never looked at
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: --out {project} holds map.ply, trajectory_right.tum, images, which no earlier run recorded writing"
    )
    assert _contents(project) == before


def test_overwrite_refuses_a_users_files_inside_the_runs_folders_before_any_work(tmp_path, capsys):
    """COLMAP's usual next steps write database.db, dense/ and a refined model sparse/1 into the run's colmap/:
    --overwrite deleted them with the folder, exit 0 and not a word."""
    _, out, _ = _good_run(tmp_path)
    (out / "colmap" / "database.db").write_bytes(b"the user's features")
    (out / "colmap" / "sparse" / "1").mkdir()
    (out / "colmap" / "sparse" / "1" / "cameras.bin").write_bytes(b"the user's refined model")
    (out / "images" / "notes.txt").write_text("the user's notes")
    before = _contents(out)
    photos = tmp_path / "photos"
    assert (
        main(["--images", str(photos), "--out", str(out), "--overwrite", *FAST, "--weights", str(tmp_path / "x")]) == 1
    )
    err = capsys.readouterr().err
    assert err == (
        f"error: --out {out} holds colmap/database.db, colmap/sparse/1/cameras.bin, images/notes.txt, which no "
        "earlier run wrote, inside folders this run replaces: move them, or choose another --out\n"
    )
    assert _contents(out) == before
    for path in ("colmap/database.db", "colmap/sparse/1/cameras.bin", "images/notes.txt"):
        (out / path).unlink()
    assert main(["--images", str(photos), "--out", str(out), "--overwrite", *FAST]) == 0


def test_inputs_that_link_into_out_are_refused_and_nothing_is_removed(tmp_path, capsys):
    """--images of links to project/images/ with --out project: --overwrite removed the photos the links named."""
    _, out, before = _good_run(tmp_path)
    selection = tmp_path / "selection"
    selection.mkdir()
    for photo in sorted((out / "images").iterdir()):
        (selection / photo.name).symlink_to(photo)
    assert main(["--images", str(selection), "--out", str(out), "--overwrite", *FAST]) == 1
    err = capsys.readouterr().err
    assert f"lies inside --out {out} (it links to {out / 'images'}" in err and "Traceback" not in err
    assert _contents(out) == before


def test_a_second_run_into_a_folder_another_run_writes_is_refused(tmp_path, capsys):
    """Two runs into one new folder both went ahead, and their images/ and depth/ files mixed."""
    import fcntl

    folder, out, before = _good_run(tmp_path)
    handle = os.open(out, os.O_RDONLY)  # a test double of a run in progress: its lock on the folder
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["--images", str(folder), "--out", str(out), "--overwrite", *FAST]) == 1
    finally:
        os.close(handle)
    err = capsys.readouterr().err
    assert f"another vggt-ros-reconstruct run is writing into --out {out}" in err
    assert _contents(out) == before


def test_a_run_holds_its_folder_from_its_first_check_so_a_second_one_cannot_slip_in(tmp_path, monkeypatch, capsys):
    """A run into a new folder, and a second one that finished there while the first loaded its model: the first
    then replaced it without --overwrite. The lock was taken only after the model had loaded."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(_photos(2)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    out = tmp_path / "out"
    create_pipeline = offline_module.create_pipeline
    second = []

    def another_run_while_loading(config):  # a test double of a slow model load, during which a run starts
        second.append(main(["--images", str(folder), "--out", str(out), *FAST]))
        return create_pipeline(config)

    monkeypatch.setattr(offline_module, "create_pipeline", another_run_while_loading)
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 0
    assert second == [1]
    assert f"another vggt-ros-reconstruct run is writing into --out {out}" in capsys.readouterr().err
    assert _strict_json(out / "summary.json")["images"] == 2


def test_a_signal_while_the_results_are_swapped_in_waits_for_the_swap(tmp_path, monkeypatch):
    """Two SIGTERMs between the renames of an --overwrite swap: the second raised there, so the earlier run's
    images/ and the new one were both lost, the record named a folder that no longer existed, and the message said
    that no results were written."""
    import signal as signals

    from vggt_ros import files as files_module

    folder, out, _ = _good_run(tmp_path)
    swap = files_module._swap

    def signalled_swap(*args):  # a test double of a user pressing Ctrl-C twice at that moment
        os.kill(os.getpid(), signals.SIGTERM)
        os.kill(os.getpid(), signals.SIGTERM)
        return swap(*args)

    monkeypatch.setattr(files_module, "_swap", signalled_swap)
    assert (
        main(
            ["--images", str(folder), "--out", str(out), "--overwrite", "--sliding-window", "--window-size", "2", *FAST]
        )
        == 143
    )
    recorded = set((out / SAVE_RECORD).read_text().split())
    assert recorded and all((out / name).exists() for name in recorded)
    named = sorted(frame["file_path"] for frame in _strict_json(out / "transforms.json")["frames"])
    assert named and named == sorted(f"images/{p.name}" for p in (out / "images").iterdir())
    assert _strict_json(out / "summary.json")["mode"] == "sliding window"  # the new run's, whole
    assert not _scratch_folders(out)


def test_overwrite_takes_over_a_run_an_earlier_version_wrote_without_a_record(tmp_path):
    folder, out, _ = _good_run(tmp_path)
    (out / SAVE_RECORD).unlink()  # as vggt_ros wrote a run before it recorded its entries
    (out / "notes.txt").write_text("the user's")
    assert (
        main(
            ["--images", str(folder), "--out", str(out), "--overwrite", "--sliding-window", "--window-size", "2", *FAST]
        )
        == 0
    )
    assert _strict_json(out / "summary.json")["mode"] == "sliding window"
    assert (out / "notes.txt").read_text() == "the user's"


def test_an_out_bag_in_an_output_of_out_is_refused_before_the_model_loads(tmp_path, capsys):
    folder, out, _ = _good_run(tmp_path, count=1)
    bag = out / "images" / "run_bag"
    arguments = ["--images", str(folder), "--out", str(out), "--overwrite", "--out-bag", str(bag), *FAST]
    assert main([*arguments, "--weights", str(tmp_path / "none")]) == 1
    assert f"--out-bag {bag} lies in --out's images, which the run writes" in capsys.readouterr().err


def test_an_out_bag_that_is_out_is_refused_before_the_model_loads(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_photos(1)[0]).save(folder / "frame_000.png")
    out = tmp_path / "out"
    arguments = ["--images", str(folder), "--out", str(out), "--out-bag", str(out), *FAST]
    assert main([*arguments, "--weights", str(tmp_path / "none")]) == 1
    assert f"--out-bag {out} is --out; the bag is a folder of its own" in capsys.readouterr().err
    assert not out.exists()


# ----------------------------------------------------------------------------------- 19.4: stamps
def test_a_restart_whose_world_merges_nothing_keeps_the_world_before_it(tmp_path, monkeypatch, caplog):
    """Three good frames, then the driver restarted at the end of the recording (two frames whose stamps go back:
    the second confirms the jump, and its world's window of one frame is rejected): map.ply and the trajectory were
    not written, with "no window merged into the world" in the log and exit 0."""
    decode = session_module.decode_window
    calls = []

    def unusable_after_the_first_window(*args):  # a test double of the network's field of view out of range
        calls.append(args)
        if len(calls) > 1:
            raise ValueError("frame 0's predicted field of view fov_w = 0.0 rad is outside (0, pi) (test double)")
        return decode(*args)

    monkeypatch.setattr(session_module, "decode_window", unusable_after_the_first_window)
    frames = _photos(5)
    before = _stamped(frames[:3])
    after = [(PERIOD_NS * (i + 1), frame) for i, frame in enumerate(frames[3:])]  # stamped before START_NS
    records = [("/cam", START_NS + PERIOD_NS * i, stamp, frame) for i, (stamp, frame) in enumerate(before + after)]
    bag = write_raw_bag(tmp_path / "bag", records)  # received in order
    status, out = _bag_run(tmp_path, bag, ["/cam"])
    assert status == 0
    summary = _strict_json(out / "summary.json")
    assert summary["merged"] >= 1 and summary["map"] == str(out / "map.ply") and summary["map_points"] > 0
    header, _, _ = (out / "map.ply").read_bytes().partition(b"end_header\n")
    assert f"element vertex {summary['map_points']}".encode() in header
    poses = [line for line in (out / "trajectory.tum").read_text().splitlines() if not line.startswith("#")]
    assert [int(round(float(line.split()[0]) * 1e9)) for line in poses] == [stamp for stamp, _ in before]
    assert "map.ply and the trajectories hold the world before it" in caplog.text


def test_a_failure_writing_a_world_the_next_one_replaces_is_no_output_error(tmp_path, monkeypatch):
    """At a restart the world so far is written (in case the next merges nothing); that write failing was reported
    in output_errors, with exit 1, although the next world's map.ply replaced it."""
    from vggt_ros import mapping

    save_ply = mapping.GrowingMap.save_ply
    calls = []

    def failing_first(self, path):  # a test double of a disk that was full for a moment
        calls.append(path)
        if len(calls) == 1:
            raise OSError(28, "No space left on device", str(path))
        return save_ply(self, path)

    monkeypatch.setattr(mapping.GrowingMap, "save_ply", failing_first)
    frames = _photos(6)
    stamps = [START_NS + PERIOD_NS * i for i in range(3)] + [PERIOD_NS * (i + 1) for i in range(3)]  # then back
    records = [("/cam", START_NS + PERIOD_NS * i, stamp, frame) for i, (stamp, frame) in enumerate(zip(stamps, frames))]
    status, out = _bag_run(tmp_path, write_raw_bag(tmp_path / "bag", records), ["/cam"])
    summary = _strict_json(out / "summary.json")
    assert len(calls) == 2 and summary["output_errors"] == [] and status == 0
    poses = [line for line in (out / "trajectory.tum").read_text().splitlines() if not line.startswith("#")]
    assert [round(float(line.split()[0]) * 1e9) for line in poses] == stamps[4:]  # the last world's (one stale)


def test_zero_header_stamps_take_the_log_time(tmp_path):
    frames = _photos(5)
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", _stamped(frames))], zero_header_stamps=True)
    status, out = _bag_run(tmp_path, bag, ["/cam"])
    assert status == 0
    summary = _strict_json(out / "summary.json")
    assert summary["substituted_stamps"] == {"/cam": 5} and summary["frame_sets"] == 5
    names = sorted(_model_image_sizes(out))
    assert names == sorted(f"camera0/{stamp_ns}.png" for stamp_ns, _ in _stamped(frames))  # log times


def test_a_simulation_s_first_image_stamped_zero_stays_in_the_simulation_s_clock(tmp_path):
    """Header stamps 0.0 ... 0.5 s recorded at wall-clock log times: the zero stamp took the log time (1.7e9 s), the
    next image was dropped as stale and the one after it split the run into two worlds."""
    frames = _photos(6)
    log_start_ns = 1_700_000_000 * 10**9
    records = [("/cam", log_start_ns + PERIOD_NS * i, PERIOD_NS * i, frame) for i, frame in enumerate(frames)]
    status, out = _bag_run(tmp_path, write_raw_bag(tmp_path / "bag", records), ["/cam"])
    summary = _strict_json(out / "summary.json")
    assert status == 0 and summary["skipped_inputs"] == {} and summary["substituted_stamps"] == {"/cam": 1}
    assert summary["frame_sets"] == 6 and summary["exported_frames"] == 6 and summary["dataset_parts"] == 1
    poses = [line for line in (out / "trajectory.tum").read_text().splitlines() if not line.startswith("#")]
    assert [round(float(line.split()[0]) * 1e9) for line in poses] == [PERIOD_NS * i for i in range(6)]


def test_repeated_stamps_are_dropped_and_counted(tmp_path):
    frames = _photos(5)
    sent_twice = [item for item in _stamped(frames) for _ in range(2)]
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", sent_twice)])
    status, out = _bag_run(tmp_path, bag, ["/cam"])
    assert status == 0
    summary = _strict_json(out / "summary.json")
    assert summary["skipped_inputs"] == {"/cam": {"duplicate_stamp": 5}}
    assert summary["frame_sets"] == 5 and summary["exported_frames"] == 5


# ----------------------------------------------------------------------------------- 19.5: bad windows, frame sets
def test_cameras_of_different_resolutions_run_in_the_sliding_window(tmp_path):
    frames = _photos(5)
    small = [np.asarray(Image.fromarray(f).resize((120, 90))) for f in frames]
    cameras = [("/left", _stamped(frames)), ("/right", _stamped(small, START_NS + 2_000_000))]
    bag = write_image_bag(tmp_path / "bag", "mcap", cameras)
    status, out = _bag_run(tmp_path, bag, ["/left", "/right"], "--sliding-window", "--window-size", "3")
    summary = _strict_json(out / "summary.json")
    assert summary["skipped_frame_sets"] == {} and summary["windows"] == 5
    assert status == 0 and summary["merged"] >= 1
    sizes = _model_image_sizes(out)
    assert {hw for name, hw in sizes.items() if name.startswith("camera1/")} == {(90, 120)}


def test_the_smallest_sliding_window_runs_with_the_overlap_clamped(tmp_path):
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", _stamped(_photos(4)))])
    status, out = _bag_run(tmp_path, bag, ["/cam"], "--sliding-window", "--window-size", "2")
    summary = _strict_json(out / "summary.json")
    assert status == 0 and summary["windows"] == 4 and summary["failed_windows"] == 0
    assert summary["per_window"][0]["status"] == "initialized"


def test_a_window_that_fails_is_skipped_counted_and_named(tmp_path, monkeypatch):
    infer = session_module.ReconstructionSession.infer

    def failing_on_the_second_window(self, window, *args):  # a test double of one window the network fails on
        if window.sequence == 1:
            raise RuntimeError("CUDA out of memory (test double)")
        return infer(self, window, *args)

    monkeypatch.setattr(session_module.ReconstructionSession, "infer", failing_on_the_second_window)
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", _stamped(_photos(5)))])
    status, out = _bag_run(tmp_path, bag, ["/cam"], "--sliding-window", "--window-size", "3")
    assert status == 0
    summary = _strict_json(out / "summary.json")
    assert summary["failed_windows"] == 1 and summary["windows"] == 5
    failed = [w for w in summary["per_window"] if w["status"] == "failed"]
    assert failed[0]["window"] == 1 and "out of memory" in failed[0]["reason"]
    assert failed[0]["last_image"] == f"camera0/{START_NS + PERIOD_NS}.png"


# ----------------------------------------------------------------------------------- 19.6: SIGTERM, scratch
# The command runs in its own process: without the handler, SIGTERM ends the process (and would end pytest's).
_TERMINATED_ON_THE_THIRD_WINDOW = """
import os, signal, sys
from vggt_ros import session
integrate = session.ReconstructionSession.integrate
calls = []
def terminated_on_the_third_window(self, inference):  # a test double of `timeout` sending SIGTERM mid-run
    calls.append(1)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGTERM)
    return integrate(self, inference)
session.ReconstructionSession.integrate = terminated_on_the_third_window
from vggt_ros.offline import main
status = main(sys.argv[1:])
assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler does not outlive the command
sys.exit(status)
"""
# A test double of `timeout` sending SIGTERM (once, or twice: argv[1]) while the map is written.
_TERMINATED_WHILE_WRITING = """
import os, signal, sys
from vggt_ros import mapping
save_ply = mapping.GrowingMap.save_ply
def terminated_while_writing(self, path):
    for _ in range(int(sys.argv[1])):
        os.kill(os.getpid(), signal.SIGTERM)
    return save_ply(self, path)
mapping.GrowingMap.save_ply = terminated_while_writing
from vggt_ros.offline import main
sys.exit(main(sys.argv[2:]))
"""


def _run_terminated(tmp_path, script: str, *arguments: str) -> tuple[subprocess.CompletedProcess, Path]:
    """The offline command on 6 photographs (windows of 3) in its own process under ``script``."""
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", _stamped(_photos(6)))])
    out = tmp_path / "out"
    command = [
        "--bag",
        str(bag),
        "--topics",
        "/cam",
        "--out",
        str(out),
        *FAST,
        "--sliding-window",
        "--window-size",
        "3",
    ]
    root = Path(vggt_ros.__file__).parents[1]  # the code under test, whichever checkout it is
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    finished = subprocess.run(
        [sys.executable, "-c", script, *arguments, *command], env=env, capture_output=True, timeout=300
    )
    return finished, out


def test_sigterm_finishes_the_window_in_progress_writes_what_was_reconstructed_and_exits_143(tmp_path):
    """The signal came inside the third window's integration: it used to raise there, anywhere in the world's
    or the map's update (a map reset and not yet refilled was written as the whole map)."""
    finished, out = _run_terminated(tmp_path, _TERMINATED_ON_THE_THIRD_WINDOW)
    assert finished.returncode == 143, finished.stderr.decode()[-2000:]
    summary = _strict_json(out / "summary.json")
    assert summary["interrupted"] and summary["signal"] == "SIGTERM" and summary["windows"] == 3
    assert summary["per_window"][2]["status"] != "failed"
    assert "stops after the step in progress" in finished.stderr.decode()
    assert (out / "map.ply").is_file() and (out / "transforms.json").is_file()
    assert not _scratch_folders(out)


def test_sigterm_while_the_results_are_written_lets_them_finish(tmp_path):
    """The writing phase had no protection: map.ply and the trajectory were on disk, the COLMAP model,
    transforms.json and summary.json were not, and the message said nothing had been written."""
    finished, out = _run_terminated(tmp_path, _TERMINATED_WHILE_WRITING, "1")
    assert finished.returncode == 143, finished.stderr.decode()[-2000:]
    summary = _strict_json(out / "summary.json")
    assert not summary["interrupted"] and summary["windows"] == 6  # every input was read before the signal
    assert (out / "transforms.json").is_file() and (out / "colmap" / "sparse" / "0").is_dir()
    assert (out / "map.ply").is_file() and not _scratch_folders(out)


def test_a_second_sigterm_aborts_and_writes_nothing_of_the_run(tmp_path):
    finished, out = _run_terminated(tmp_path, _TERMINATED_WHILE_WRITING, "2")
    assert finished.returncode == 143
    assert f"aborted by a second SIGTERM: nothing of this run was written into {out}" in finished.stderr.decode()
    assert not out.exists()  # the run made the folder, and removed it again, empty


def test_a_summary_that_cannot_be_written_costs_only_itself(tmp_path, monkeypatch, capsys):
    def unwritable_summary(path, document):  # a test double of a failure of the last output
        raise OSError(5, "Input/output error", str(path))

    monkeypatch.setattr("vggt_ros.offline.strict_json.write", unwritable_summary)
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", _stamped(_photos(4)))])
    status, out = _bag_run(tmp_path, bag, ["/cam"])
    assert status == 1 and f"error: summary: [Errno 5] Input/output error: '{out / 'summary.json'}'" in (
        capsys.readouterr().err
    )
    assert (out / "map.ply").is_file() and (out / "trajectory.tum").is_file() and not (out / "summary.json").exists()
    assert not _scratch_folders(out)


# ----------------------------------------------------------------------------------- 19.9: over-large images


def test_an_image_file_claiming_30000x30000_is_skipped_and_named(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(_photos(4)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    (folder / "frame_001b.png").write_bytes(png_claiming(30000, 30000))
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 0
    summary = _strict_json(out / "summary.json")
    assert list(summary["skipped_inputs"]) == ["frame_001b.png"]
    assert "max_image_pixels" in summary["skipped_inputs"]["frame_001b.png"] and summary["images"] == 4
    assert "--max-image-pixels" in summary["skipped_inputs"]["frame_001b.png"]  # the option that raises it here


def test_a_compressed_message_over_max_image_pixels_is_skipped_before_decoding(tmp_path, monkeypatch):
    frames = _photos(4)
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", _stamped(frames))], compressed=True)
    huge = jpeg_claiming(12000, 12000)  # 144 MP claimed by a file of a few hundred bytes
    assert Image.open(io.BytesIO(huge)).size == (12000, 12000)
    decode = live_input.decode_compressed  # the input assembly's decoder, which the bag input runs through
    decoded = []

    def recording_decoder(data, format):  # a test double that records what reaches the decoder
        decoded.append(len(data))
        return decode(data, format)

    monkeypatch.setattr(live_input, "decode_compressed", recording_decoder)
    rewritten = _rewrite_one_message(tmp_path, bag, index=2, data=huge)
    status, out = _bag_run(tmp_path, rewritten, ["/cam"])
    summary = _strict_json(out / "summary.json")
    assert summary["skipped_inputs"] == {"/cam": {"too_large": 1}} and summary["frame_sets"] == 3
    # The three others, and the first again: the model size counts a size once an image of it decodes.
    assert len(huge) not in decoded and len(decoded) == 4 and decoded[0] == decoded[1]
    assert status == 0


def test_a_recording_whose_damage_ends_the_input_writes_what_was_read_and_exits_1(tmp_path, capsys):
    """A damaged zstd chunk ended the input part way: the frames before it were reconstructed and written, and the
    run exited 0, so a script that checks the exit status took a fraction of the recording for all of it."""
    from test_bag_reader import _chunk_data_offsets, _zstd_chunked_bag

    bag = _zstd_chunked_bag(tmp_path / "bag", _photos(40))  # 57.6 kB raw images: about 18 to a 1 MiB chunk
    (mcap,) = bag.glob("*.mcap")
    data = bytearray(mcap.read_bytes())
    offsets = _chunk_data_offsets(bytes(data))
    assert len(offsets) >= 3
    data[offsets[1] : offsets[1] + 16] = b"\xff" * 16  # the second chunk's zstd frame header
    mcap.write_bytes(bytes(data))

    status, out = _bag_run(tmp_path, bag, ["/cam"])

    summary = _strict_json(out / "summary.json")
    assert "ZstdError" in summary["input_error"] and 0 < summary["frame_sets"] < 40
    assert summary["merged"] >= 1 and summary["exported_frames"] == summary["frame_sets"]
    assert status == 1
    assert capsys.readouterr().err.startswith(f"error: the input ended early ({summary['input_error']}): ")


def _rewrite_one_message(tmp_path, bag, index: int, data: bytes):
    """A copy of the one-topic CompressedImage ``bag`` whose message ``index`` carries ``data``."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    target = tmp_path / "rewritten"
    with (
        AnyReader([bag], default_typestore=typestore) as reader,
        Writer(target, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer,
    ):
        (connection,) = reader.connections
        out = writer.add_connection(connection.topic, connection.msgtype, typestore=typestore)
        for position, (_, log_ns, raw) in enumerate(reader.messages()):
            if position == index:
                message = reader.deserialize(raw, connection.msgtype)
                message.data = np.frombuffer(data, np.uint8)
                raw = typestore.serialize_cdr(message, connection.msgtype)
            writer.write(out, log_ns, raw)
    return target


# ----------------------------------------------------------------------------------- 19.11: nothing read
def _two_cameras(tmp_path, right_offset_ns=2_000_000, corrupt=(), right_start_ns=START_NS):
    frames = _photos(4)
    cameras = [("/left", _stamped(frames)), ("/right", _stamped(frames, right_start_ns + right_offset_ns))]
    return write_image_bag(tmp_path / "bag", "mcap", cameras, compressed=True, corrupt=corrupt)


@pytest.mark.parametrize(
    "case, extra, expected",
    [
        ("never pair", (), "never paired"),
        ("undecodable", (), "every message was skipped"),
        ("one camera undecodable", (), "every message of /right was skipped as unreadable, so no frame set formed"),
        ("topic empty in range", ("--stop", "0.35"), "topic /right has no messages in the --start/--stop range"),
        ("start past the end", ("--start", "100"), "past the bag's end"),
        # was blamed on the cameras' stamps ("never paired")
        ("cut off", (), "no image of /left, /right could be read from the cut-off bag ("),
    ],
)
def test_a_run_that_reads_no_image_says_why_and_fails(tmp_path, capsys, caplog, case, extra, expected):
    caplog.set_level(logging.INFO, logger="vggt_ros.offline")
    if case == "never pair":
        bag = _two_cameras(tmp_path, right_offset_ns=50_000_000)  # 50 ms apart, --slop 20 ms
    elif case == "undecodable":
        bag = _two_cameras(tmp_path, corrupt=[(c, i) for c in (0, 1) for i in range(4)])
    elif case == "one camera undecodable":  # was blamed on the cameras' stamps ("never paired")
        bag = _two_cameras(tmp_path, corrupt=[(1, i) for i in range(4)])
    elif case == "cut off":  # a crash before the writer's first 1 MiB chunk was complete
        frames = _stamped(_photos(4, size=(240, 320)))  # raw, 230 kB each
        bag = write_image_bag(tmp_path / "bag", "mcap", [("/left", frames), ("/right", frames)])
        (mcap,) = bag.glob("*.mcap")
        mcap.write_bytes(mcap.read_bytes()[:700_000])
    else:
        bag = _two_cameras(tmp_path, right_start_ns=START_NS + 1_000_000_000)  # /right starts 1 s later
    status, out = _bag_run(tmp_path, bag, ["/left", "/right"], *extra)
    assert status == 1
    assert expected in capsys.readouterr().err
    assert not any("all 0 images" in r.getMessage() for r in caplog.records)  # "in one forward pass", it said
    summary = _strict_json(out / "summary.json")
    assert summary["frame_sets"] == 0 and expected in summary["no_result"]


# ----------------------------------------------------------------------------------- 19.17: a truncated mcap
def test_a_truncated_mcap_is_read_up_to_its_last_complete_chunk(tmp_path):
    frames = _photos(12, size=(240, 320))  # raw, 230 kB each: the writer's 1 MiB chunks hold 4 or 5
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", _stamped(frames))])
    (mcap,) = bag.glob("*.mcap")
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.6)])  # cut off in the middle of a chunk, no summary, no footer
    status, out = _bag_run(tmp_path, bag, ["/cam"])
    summary = _strict_json(out / "summary.json")
    assert summary["truncated_input"] and "cut off" in summary["truncated_input"][0]
    assert 0 < summary["frame_sets"] < 12
    assert summary["exported_frames"] == summary["frame_sets"] and status == 0


def test_a_message_lost_inside_an_mcap_chunk_is_counted_in_the_summary(tmp_path):
    """A damaged record inside a chunk cost a frame with exit 0 and nothing in the summary."""
    frames = _photos(8, size=(480, 640))  # raw, 920 kB each: the writer's 1 MiB chunks hold 2
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", _stamped(frames))])
    (mcap,) = bag.glob("*.mcap")
    damage_first_record_of_chunk(mcap, 1)
    status, out = _bag_run(tmp_path, bag, ["/cam"])
    summary = _strict_json(out / "summary.json")
    assert summary["skipped_inputs"] == {"/cam": {"lost": 1}} and summary["frame_sets"] == 7
    assert summary["exported_frames"] == 7 and status == 0


def test_topics_with_spaces_are_read_and_a_bad_time_range_names_the_options(tmp_path, capsys):
    """ "/left, /right" looked for a topic " /right"; a bad range named the reader's start_s and stop_s."""
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", _stamped(_photos(3)))])
    status, out = _bag_run(tmp_path, bag, [" /cam "])
    assert status == 0 and _strict_json(out / "summary.json")["frame_sets"] == 3
    for extra, message in (
        (["--start", "-1"], "--start must be a finite number of seconds >= 0 after the bag's start, got -1.0"),
        (["--start", "0.3", "--stop", "0.2"], "--stop (0.2) must be later than --start (0.3)"),
        (["--stop", "0"], "--stop (0) must be later than the bag's start (0): the time range is empty"),  # was read
    ):
        with pytest.raises(SystemExit):
            _bag_run(tmp_path, bag, ["/cam"], *extra, out_name="refused")
        assert message in capsys.readouterr().err


def test_a_camera_at_twice_the_rate_of_the_other_does_not_push_the_run_into_chunks(tmp_path):
    """6 left and 3 right images form 3 frame sets (6 images), within --max-frames 6; the estimate from all
    messages (9 // 2 = 4 sets, 8 images) chose chunks and said so in the log and the summary."""
    frames = _photos(6)
    left = _stamped(frames)
    right = [(stamp + 5_000_000, frame) for stamp, frame in left[::2]]  # half the rate, 5 ms after its pair
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/left", left), ("/right", right)])
    status, out = _bag_run(tmp_path, bag, ["/left", "/right"], "--max-frames", "6")
    summary = _strict_json(out / "summary.json")
    assert summary["mode"] == "joint" and summary["frame_sets"] == 3, summary["mode"]
