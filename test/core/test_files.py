# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Files written whole or not at all (`vggt_ros.files`), on a real filesystem that fills up (a small tmpfs)."""

import functools
import os

import pytest

from support.small_filesystem import digests, fill, small_filesystem
from vggt_ros.files import (
    SAVE_RECORD,
    STAGING_PREFIX,
    replace_atomically,
    saved_entries,
    staged_entries,
    write_bytes_atomically,
)


def test_a_full_disk_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    with small_filesystem(tmp_path / "disk", 64) as disk:
        path = disk / "data.bin"
        write_bytes_atomically(path, b"old" * 1000)
        fill(disk, leave_bytes=8192)
        with pytest.raises(OSError, match=f"could not write {path}: .*No space left on device"):
            write_bytes_atomically(path, b"new" * 100_000)
        assert path.read_bytes() == b"old" * 1000
        assert sorted(p.name for p in disk.iterdir()) == ["data.bin", "filler"]


def test_a_writer_that_fails_with_another_error_leaves_no_temporary_and_keeps_its_error(tmp_path):
    path = tmp_path / "sub" / "metadata.json"
    write_bytes_atomically(path, b"old contents")
    write_bytes_atomically(path, b"new")
    assert path.read_bytes() == b"new"
    with pytest.raises(TypeError):
        write_bytes_atomically(path, "not bytes")  # fails mid-write
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["metadata.json"]


def test_a_replaced_file_gets_the_permissions_of_a_new_file(tmp_path):
    path = tmp_path / "map.ply"
    replace_atomically(path, lambda temporary: temporary.write_bytes(b"x"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask

    def replacing_writer(temporary):  # as safetensors' save_file: its own owner-only file renamed over ours
        own = temporary.with_name("own")
        own.write_bytes(b"y")
        own.chmod(0o600)
        own.replace(temporary)

    replace_atomically(tmp_path / "w4a16.safetensors", replacing_writer)
    assert (tmp_path / "w4a16.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def _write_save(staging, version: str, frames: int, extra: bool = False) -> None:
    """What a save writes, through the atomic writer: two files and a folder of frames (``version`` in each)."""
    write_bytes_atomically(staging / "map.ply", f"map {version}\n".encode() * 1000)
    write_bytes_atomically(staging / "trajectory.tum", f"trajectory {version}\n".encode())
    for index in range(frames):
        write_bytes_atomically(staging / "images" / f"{index}.png", f"image {version} {index}\n".encode() * 2000)
    if extra:
        write_bytes_atomically(staging / "transforms.json", f"{{'version': '{version}'}}\n".encode())


OWNED = ("map.ply", "trajectory.tum", "images", "transforms.json")


def test_a_save_replaces_its_entries_at_once_and_touches_nothing_else(tmp_path):
    target = tmp_path / "saved"
    with staged_entries(target, OWNED) as staging:
        _write_save(staging, "1", frames=5, extra=True)
    (target / "notes.txt").write_text("the user's own file\n")
    with staged_entries(target, OWNED) as staging:
        _write_save(staging, "2", frames=2)
    assert (target / "map.ply").read_text().startswith("map 2")
    assert sorted(p.name for p in (target / "images").iterdir()) == ["0.png", "1.png"]  # no frame of save 1
    assert not (target / "transforms.json").exists()  # owned, not written by save 2: it described save 1
    assert (target / "notes.txt").read_text() == "the user's own file\n"
    assert sorted(p.name for p in target.iterdir()) == [
        SAVE_RECORD,
        "images",
        "map.ply",
        "notes.txt",
        "trajectory.tum",
    ]
    assert (target / SAVE_RECORD).read_text().splitlines() == [  # and the files of the folder it wrote
        "images",
        "images/",
        "images/0.png",
        "images/1.png",
        "map.ply",
        "trajectory.tum",
    ]


def test_a_save_that_fills_the_disk_part_way_keeps_every_previous_file_exactly(tmp_path):
    with small_filesystem(tmp_path / "disk", 400) as disk:
        target = disk / "saved"
        with staged_entries(target, OWNED) as staging:
            _write_save(staging, "1", frames=5, extra=True)
        before = digests(target)
        fill(disk, leave_bytes=60_000)  # room for the map and a few frames of the next save, not all of them
        with pytest.raises(OSError, match=f"could not write {target}/images/.*No space left on device"):
            with staged_entries(target, OWNED) as staging:
                _write_save(staging, "2", frames=5)
        assert digests(target) == before
        assert not [p for p in target.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_a_swap_that_fails_half_way_is_undone(tmp_path):
    """The entry swapped last is a mount point, which cannot be renamed (EBUSY): the entries swapped before it
    are put back."""
    target = tmp_path / "saved"
    with staged_entries(target, OWNED + ("zz",)) as staging:
        _write_save(staging, "1", frames=2, extra=True)
        (staging / "zz").mkdir()
    before = digests(target)
    with small_filesystem(target / "zz", 64):
        with pytest.raises(OSError, match="could not replace the saved files in .*the previous ones are kept"):
            with staged_entries(target, OWNED + ("zz",)) as staging:
                _write_save(staging, "2", frames=3)
                (staging / "zz").mkdir()
        assert digests(target) == before
        assert sorted(p.name for p in target.iterdir()) == [
            SAVE_RECORD,
            "images",
            "map.ply",
            "trajectory.tum",
            "transforms.json",
            "zz",
        ]


def test_a_save_with_fewer_owned_names_removes_what_earlier_saves_wrote_and_the_next_save_still_works(tmp_path):
    """Two cameras saved trajectory_rear.tum; a node relaunched with one camera owns no such name: its save left
    the file behind and out of the record, and a later two-camera save refused it as the user's own."""
    target = tmp_path / "saved"
    two_cameras, one_camera = ("trajectory.tum", "trajectory_rear.tum"), ("trajectory.tum",)
    for cameras in (two_cameras, one_camera, two_cameras):
        with staged_entries(target, (*cameras, "trajectory_*.tum")) as staging:  # owns every further camera's file
            for name in cameras:
                (staging / name).write_text(f"{len(cameras)} cameras\n")
        assert sorted(p.name for p in target.iterdir()) == sorted([SAVE_RECORD, *cameras])
        assert (target / SAVE_RECORD).read_text().splitlines() == list(cameras)


def test_a_save_keeps_what_another_commands_save_wrote_and_keeps_it_recorded(tmp_path):
    """An export into a run's folder deleted the run's map, trajectory, summary and images: every entry an earlier
    save recorded was removed, of names the export does not own too."""
    target = tmp_path / "project"
    with staged_entries(target, OWNED) as staging:  # a reconstruction's outputs
        _write_save(staging, "run", frames=2)
    run = digests(target)
    with staged_entries(target, EXPORT, keystone="manifest.json") as staging:
        _write_export(staging, "1", data_file=False)
    assert {name: digest for name, digest in digests(target).items() if name in run and name != SAVE_RECORD} == {
        name: digest for name, digest in run.items() if name != SAVE_RECORD
    }
    assert saved_entries(target) == {"aggregator.onnx", "manifest.json", "point_head.onnx", *OWNED[:3]}
    # The run's own next save still replaces them as its own (they were not taken for the user's).
    with staged_entries(target, OWNED) as staging:
        _write_save(staging, "run 2", frames=1)
    assert (target / "map.ply").read_text().startswith("map run 2") and (target / "manifest.json").read_text() == "1"


def test_a_save_killed_during_its_swap_leaves_a_record_of_every_entry_it_moved(tmp_path, monkeypatch):
    """A first export killed after two renames left two graphs that no record listed: every later save refused
    them as the user's own, for good."""
    target = tmp_path / "export"
    replace, moved = os.replace, []
    recorded_when_killed = []

    def killed_after_two_renames(source, destination):  # a test double of os.replace: SIGKILL, as seen on disk
        if os.path.dirname(destination) == str(target) and not os.path.basename(destination).startswith("."):
            if len(moved) == 2:
                recorded_when_killed.append(set((target / SAVE_RECORD).read_text().splitlines()))
                raise KeyboardInterrupt
            moved.append(destination)
        replace(source, destination)

    _interrupted_export(monkeypatch, target, killed_after_two_renames, "1", data_file=True)
    assert recorded_when_killed == [set(EXPORT)]  # on disk at that instant: each entry it could leave
    assert not target.exists()  # undone, the folder it made too (a kill would not undo: the record covers it)


def test_another_process_s_live_staging_folder_is_not_taken_for_a_killed_save_s(tmp_path):
    """Two nodes saving into one folder: the first save to end removed the other's staging folder as stale, and
    the other failed with "No such file or directory"."""
    target = tmp_path / "saved"
    with staged_entries(target, OWNED) as first:
        _write_save(first, "first", frames=1)
        with staged_entries(target, OWNED) as second:  # its lock is another open file: as another process's
            _write_save(second, "second", frames=1)
        assert first.is_dir(), "the live staging folder was removed"
        _write_save(first, "first", frames=2)
    assert (target / "map.ply").read_text().startswith("map first")
    assert sorted(p.name for p in (target / "images").iterdir()) == ["0.png", "1.png"]


def test_an_undecodable_record_names_nothing_and_a_record_that_is_a_folder_is_named(tmp_path):
    target = tmp_path / "saved"
    target.mkdir()
    (target / "map.ply").write_text("the user's")
    (target / SAVE_RECORD).write_bytes(b"\xffmap.ply\xfe\n")
    with pytest.raises(FileExistsError, match=r"holds \['map.ply'\], which no save wrote"):
        with staged_entries(target, OWNED) as staging:
            _write_save(staging, "1", frames=0)
    (target / SAVE_RECORD).unlink()
    (target / SAVE_RECORD).mkdir()
    with pytest.raises(OSError, match=f"could not read {target / SAVE_RECORD}, the record of what saves wrote there"):
        with staged_entries(target, OWNED) as staging:
            _write_save(staging, "1", frames=0)
    assert (target / "map.ply").read_text() == "the user's"


def test_a_save_removes_the_staging_folders_that_killed_saves_left(tmp_path):
    """A save killed (SIGKILL, power loss) while it wrote left its staging folder, a whole save's worth of data, for
    good."""
    target = tmp_path / "saved"
    with staged_entries(target, OWNED) as staging:
        _write_save(staging, "1", frames=2)
    killed = target / f"{STAGING_PREFIX}k1ll3d"
    (killed / "new" / "images").mkdir(parents=True)
    (killed / "new" / "images" / "0.png").write_bytes(b"half a save")
    with staged_entries(target, OWNED) as staging:
        _write_save(staging, "2", frames=2)
    assert not killed.exists()
    assert sorted(p.name for p in target.iterdir()) == [SAVE_RECORD, "images", "map.ply", "trajectory.tum"]


def test_a_save_may_only_write_the_entries_it_owns(tmp_path):
    target = tmp_path / "saved"
    with pytest.raises(ValueError, match=r"\['stray.txt'\], which are not among the entries it may replace"):
        with staged_entries(target, OWNED) as staging:
            (staging / "stray.txt").write_text("x")
    assert not target.exists()  # a failed save changes nothing, not even the folder


def test_a_users_own_entry_of_a_saved_name_is_never_replaced_or_removed(tmp_path):
    # A save_directory that already holds the user's images/ and transforms.json (a dataset of their own): before,
    # the first save replaced the one and removed the other.
    target = tmp_path / "project"
    (target / "images").mkdir(parents=True)
    (target / "images" / "holiday.jpg").write_bytes(b"the user's photo")
    (target / "transforms.json").write_text("the user's dataset")
    with staged_entries(target, OWNED) as staging:  # writes neither: the user's entries stay
        _write_save(staging, "1", frames=0)
    assert (target / "images" / "holiday.jpg").read_bytes() == b"the user's photo"
    assert (target / "transforms.json").read_text() == "the user's dataset"
    before = digests(target)
    with pytest.raises(FileExistsError, match=r"holds \['images', 'transforms.json'\], which no save wrote"):
        with staged_entries(target, OWNED) as staging:
            _write_save(staging, "2", frames=2, extra=True)
    assert digests(target) == before
    # Entries a save wrote are its own to replace: the map of save 1.
    with staged_entries(target, ("map.ply", "trajectory.tum")) as staging:
        _write_save(staging, "3", frames=0)
    assert (target / "map.ply").read_text().startswith("map 3")


def test_a_users_own_file_inside_a_saved_folder_is_never_removed_with_the_folder(tmp_path):
    """COLMAP's next steps write database.db, dense/ and a refined sparse/1 into the colmap/ a save wrote: the next
    save replaced the folder, and they went with it without a word."""
    target = tmp_path / "saved"
    with staged_entries(target, OWNED) as staging:
        _write_save(staging, "1", frames=2)
    (target / "images" / "notes.txt").write_text("the user's")
    (target / "images" / "mine").mkdir()
    (target / "images" / "mine" / "a.png").write_bytes(b"the user's photo")
    (target / "images" / "link.png").symlink_to(target / "images" / "mine" / "a.png")
    before = digests(target)
    for frames in (1, 0):  # a save that replaces images/, and one that writes none and would remove it
        with pytest.raises(FileExistsError) as err:
            with staged_entries(target, OWNED) as staging:
                _write_save(staging, "2", frames=frames)
        assert str(err.value) == (
            f"{target} holds images/link.png, images/mine/a.png, images/notes.txt inside entries this save replaces, "
            "which no save wrote; move them, or save into another folder"
        )
        assert digests(target) == before
    for path in ("notes.txt", "link.png", "mine/a.png", "mine"):
        (target / "images" / path).rmdir() if path == "mine" else (target / "images" / path).unlink()
    with staged_entries(target, OWNED) as staging:  # what the earlier save wrote is its own to replace
        _write_save(staging, "3", frames=1)
    assert sorted(p.name for p in (target / "images").iterdir()) == ["0.png"]
    (target / "images" / "notes.txt").write_text("the user's")
    with pytest.raises(FileExistsError, match="holds images/notes.txt inside entries this save replaces"):
        with staged_entries(target, OWNED) as staging:
            _write_save(staging, "4", frames=2)


@pytest.mark.parametrize("target", ["a_file", "a_file/below"])
def test_a_save_into_a_file_says_it_is_a_file(tmp_path, target):
    """It answered "[Errno 17] File exists" (or "Not a directory")."""
    (tmp_path / "a_file").write_text("the user's")
    with pytest.raises(OSError) as err:
        with staged_entries(tmp_path / target, ["map.ply"]) as staging:
            (staging / "map.ply").write_text("new")
    assert (
        str(err.value)
        == f"could not prepare a save in {tmp_path / target}: {tmp_path / 'a_file'} is a file, not a folder"
    )
    assert (tmp_path / "a_file").read_text() == "the user's"


def test_a_failed_save_leaves_none_of_the_folders_it_created(tmp_path):
    """Only the deepest one was removed: maps/ and maps/site_a/ stayed behind a save that failed."""
    (tmp_path / "maps").mkdir()
    target = tmp_path / "maps" / "site_a" / "run1"
    with pytest.raises(ValueError, match="the map is empty"):
        with staged_entries(target, OWNED):
            raise ValueError("the map is empty (a test's failure)")
    assert [p.name for p in tmp_path.rglob("*")] == ["maps"]  # the folder that was there before stays


EXPORT = ("aggregator.onnx", "manifest.json", "point_head.onnx", "point_head.onnx.data")


def _write_export(staging, version: str, data_file: bool) -> None:
    """An export's entries (``version`` in each): graphs on both sides of manifest.json in name order."""
    for name in EXPORT:
        if name != "point_head.onnx.data" or data_file:
            (staging / name).write_text(version)


def _interrupted_export(monkeypatch, target, replace_for_tests, version: str, data_file: bool) -> None:
    """An export into ``target`` with ``os.replace`` replaced by ``replace_for_tests`` (a test double that
    interrupts it), which must end in KeyboardInterrupt."""
    monkeypatch.setattr(os, "replace", replace_for_tests)
    try:
        with pytest.raises(KeyboardInterrupt):
            with staged_entries(target, EXPORT, keystone="manifest.json") as staging:
                _write_export(staging, version, data_file=data_file)
    finally:
        monkeypatch.undo()


def _every_entry_matches_the_keystone(target, keystone):
    """What a reader sees: a keystone, if present, only beside entries of its own version."""
    if not (target / keystone).exists():
        return True
    version = (target / keystone).read_text()
    return all((target / name).read_text() == version for name in EXPORT if (target / name).is_file())


@pytest.mark.parametrize("data_file", [True, False])
def test_a_keystone_goes_first_and_comes_last_so_a_reader_never_sees_it_beside_other_entries(
    tmp_path, monkeypatch, data_file
):
    """A manifest records its graphs' digests: swapped in name order, the new manifest stood beside the earlier
    point_head.onnx (and the earlier manifest beside the new aggregator.onnx), an export no reader may take."""
    target = tmp_path / "export"
    with staged_entries(target, EXPORT, keystone="manifest.json") as staging:
        _write_export(staging, "1", data_file=True)
    seen = []
    rename, replace = os.rename, os.replace

    def watched(real):  # a test double of os.rename / os.replace that looks at the folder after each call
        def call(*args, **kwargs):
            real(*args, **kwargs)
            seen.append(_every_entry_matches_the_keystone(target, "manifest.json"))

        return call

    monkeypatch.setattr(os, "rename", watched(rename))
    monkeypatch.setattr(os, "replace", watched(replace))
    with staged_entries(target, EXPORT, keystone="manifest.json") as staging:
        _write_export(staging, "2", data_file=data_file)
    monkeypatch.undo()
    assert len(seen) >= 4 and all(seen), seen
    assert (target / "manifest.json").read_text() == "2"
    assert (target / "point_head.onnx.data").exists() == data_file  # the earlier data file went with its export


def test_a_save_never_replaces_another_writers_and_a_command_s_save_replaces_any(tmp_path):
    """Two robots' nodes (/robot1/vggt, /robot2/vggt) launched from one directory share the default save folder:
    robot2's save replaced robot1's whole save, both answering success."""
    target = tmp_path / "vggt_map"
    with staged_entries(target, OWNED, writer="/robot1/vggt") as staging:
        _write_save(staging, "robot1", frames=2)
    before = digests(target)
    with pytest.raises(FileExistsError, match="holds the save of /robot1/vggt, which this save of /robot2/vggt would"):
        with staged_entries(target, OWNED, writer="/robot2/vggt") as staging:
            _write_save(staging, "robot2", frames=1)
    assert digests(target) == before
    with staged_entries(target, OWNED, writer="/robot1/vggt") as staging:  # its own next save
        _write_save(staging, "robot1 again", frames=1)
    with staged_entries(target, OWNED) as staging:  # a command's (no writer): as vggt-ros-reconstruct --overwrite
        _write_save(staging, "command", frames=1)
    assert (target / "map.ply").read_text().startswith("map command")
    assert not (target / SAVE_RECORD).read_text().startswith("#")  # the folder is no node's any more


def test_ctrl_c_twice_during_a_swap_leaves_one_whole_save_and_comes_after_it(tmp_path, monkeypatch):
    """A first Ctrl-C during the swap started its undo; a second one cut the undo short, and the earlier entries kept
    for it were deleted with the staging folder: the earlier export lost its manifest, the new one was half in."""
    import signal

    target = tmp_path / "export"
    with staged_entries(target, EXPORT, keystone="manifest.json") as staging:
        _write_export(staging, "1", data_file=True)
    replace, renames = os.replace, []

    def interrupted_twice(source, destination):  # a test double of os.replace: Ctrl-C at the 3rd and 4th rename
        renames.append(destination)
        if len(renames) in (3, 4):
            os.kill(os.getpid(), signal.SIGINT)
        replace(source, destination)

    _interrupted_export(monkeypatch, target, interrupted_twice, "2", data_file=False)
    versions = {path.read_text() for path in target.iterdir() if path.name in EXPORT}
    assert versions == {"2"} and sorted(p.name for p in target.iterdir()) == sorted(
        [SAVE_RECORD, "aggregator.onnx", "manifest.json", "point_head.onnx"]
    )  # the swap ended whole, then the interrupt came
    assert not [p for p in target.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_two_writers_saves_that_end_together_do_not_both_pass(tmp_path):
    """Two nodes saving at once into a fresh folder: both answered success, the second replaced the first's save,
    and the first's answer named files that were gone (the writer was checked only when each save began)."""
    target = tmp_path / "vggt_map"
    with pytest.raises(FileExistsError, match="holds the save of /robot2/vggt, which this save of /robot1/vggt would"):
        with staged_entries(target, OWNED, writer="/robot1/vggt") as first:
            _write_save(first, "robot1", frames=1)
            with staged_entries(target, OWNED, writer="/robot2/vggt") as second:  # begins later, ends first
                _write_save(second, "robot2", frames=2)
    assert (target / "map.ply").read_text().startswith("map robot2")
    assert sorted(p.name for p in (target / "images").iterdir()) == ["0.png", "1.png"]


def test_a_save_waits_for_another_process_s_swap_then_says_so(tmp_path, monkeypatch):
    """The checks and the swap run under the folder's flock: a save into a folder another process holds (a
    vggt-ros-reconstruct run holds its --out throughout) ends with an error naming it, and changes nothing."""
    import fcntl

    from vggt_ros import files

    target = tmp_path / "saved"
    target.mkdir()
    holder = os.open(target, os.O_RDONLY)  # another open file: as another process's lock
    fcntl.flock(holder, fcntl.LOCK_EX)
    monkeypatch.setattr(files, "_save_lock", functools.partial(files._save_lock, patience_s=0.3))
    try:
        with pytest.raises(OSError, match=f"could not save into {target}: another save .* for 0 s; try again"):
            with staged_entries(target, OWNED) as staging:
                _write_save(staging, "1", frames=1)
    finally:
        os.close(holder)
    assert sorted(p.name for p in target.iterdir()) == []
