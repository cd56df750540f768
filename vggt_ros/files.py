# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Files written whole or not at all: one file (`replace_atomically`) or a set of a folder's entries
(`staged_entries`).

What POSIX guarantees, and so what these functions promise (on one local filesystem):

* ``rename(2)`` of a file over another is atomic: a reader opening the path gets the old file or the new one,
  never a mix, never nothing. Renaming a folder over a non-empty folder is not possible, and nothing renames
  several entries at once.
* Data reaches the disk only when fsynced, and a rename only when its folder is fsynced: without both, a crash can
  leave a new name pointing at a short or empty file. A full disk makes ``write`` or ``fsync`` fail (with ENOSPC)
  and that is what turns into an error here; a writer that ignores its own write errors (Open3D's PLY writer does)
  cannot be made safe by this module.

`replace_atomically` writes a temporary file beside the target, fsyncs it, renames it over the target and fsyncs
the folder. `staged_entries` builds all of a save in a staging folder inside the target folder (so on the same
filesystem, even when the target is a mount point) and swaps the entries in only when everything was written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import os
import secrets
import shutil
import signal
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Collection, Iterator

# Entries of a target folder that `staged_entries` itself creates (its working folder); never a saved entry.
STAGING_PREFIX = ".vggt-save-"
# The record `staged_entries` keeps in a target folder of the entries its last save wrote (one name a line): the
# only entries a later save replaces or removes, so that a user's own entry of an owned name is never lost. A folder
# entry's files are listed too (``images/``, then ``images/a.png``, ...), so that a file the user put inside it
# (``colmap/database.db``) is never removed with the folder.
SAVE_RECORD = ".vggt-saved"
# The record's line naming the last save's writer (no entry name starts with "#").
_WRITER_PREFIX = "# saved by "
# The longest file name, in bytes, of the common filesystems (ext4, XFS, btrfs, tmpfs).
NAME_MAX = 255
# os.link's errors on filesystems without hard links (FAT, exFAT, some network and FUSE filesystems).
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}


def replace_atomically(path, write: Callable[[Path], None]) -> None:
    """Write a file through a temporary one beside it, then rename it over ``path``.

    ``write(temporary)`` writes the whole file; the temporary keeps ``path``'s suffix (for writers that choose the
    format by it). Then the file is fsynced, renamed over ``path`` and the folder fsynced (see the module docstring):
    a reader sees the old file or the new one, never a partial one, and a failed write (a full disk, a read-only
    folder) leaves the old file as it was and no temporary file.

    Raises:
        OSError naming ``path`` when anything fails; other exceptions of ``write`` as they are (after the clean-up).
    """
    path = Path(path)
    # A name of its own (two writers of one path never share a temporary), created with the permissions the umask
    # gives a new file (mkstemp's would be owner-only).
    temporary = path.with_name(_temporary_name(path.name, _token()))
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        mode = stat.S_IMODE(os.stat(temporary).st_mode)
    except OSError as err:
        raise OSError(f"could not write {path}: {err.strerror or err}") from None
    try:
        write(temporary)
        os.chmod(temporary, mode)  # a writer that replaced the file (safetensors does) made it owner-only
        _fsync(temporary)
        os.replace(temporary, path)
        _fsync(path.parent)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise OSError(f"could not write {path}: {err.strerror or err}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _token() -> str:
    """What makes a temporary name `replace_atomically` writes through its own (two writers never share one)."""
    return secrets.token_hex(6)


def _temporary_name(name: str, token: str) -> str:
    stem, suffix = os.path.splitext(name)
    return f".{stem}.{token}.tmp{suffix}"


def temporary_name_bytes(name: str) -> int:
    """The length in bytes of the temporary name `replace_atomically` writes a file named ``name`` through: a name
    whose temporary's is over `NAME_MAX` cannot be written, although it fits itself."""
    return len(_temporary_name(name, _token()).encode())


def temporary_glob(name: str) -> str:
    """Glob of the temporaries `replace_atomically` makes for a file named ``name`` (itself a glob or not): what a
    process killed while writing it leaves behind."""
    return _temporary_name(name, "*")


def write_bytes_atomically(path, data: bytes | memoryview) -> None:
    """`replace_atomically` of a file holding ``data``, creating its folder if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda temporary: temporary.write_bytes(data))


@contextmanager
def staged_entries(
    target,
    owned: Collection[str],
    keystone: str | None = None,
    writer: str | None = None,
    target_locked: bool = False,
) -> Iterator[Path]:
    """Save a set of ``target``'s entries all at once: yields a staging folder to write them into.

    When the ``with`` block ends normally, the entries named in ``owned`` (top-level names, files or folders; a
    name may be a glob, ``trajectory_*.tum``) become exactly those of the staging folder: each one written there
    replaces ``target``'s entry of that name, and an entry of an owned name that an earlier save wrote and the block
    did not is removed. Only entries an earlier save wrote are replaced or removed (`SAVE_RECORD` lists them): an
    entry of an owned name that no save wrote (the user's own ``images/``) makes the save fail, and other entries
    of ``target`` are never touched, those other commands' saves wrote included (an export's graphs beside a run's
    map), which stay recorded. When the block raises, or the swap fails, ``target`` keeps its previous entries
    exactly (a failed swap is undone; the folders the save created, ``target`` and any missing parents, are
    removed again) and the staging folder is deleted.

    What a concurrent reader sees: a file replaced by a file never disappears (the old one is kept for an undo by
    a hard link, and the new one renamed over it); a folder is renamed aside and the new one renamed in, so for the
    instant between the two renames it is missing, never partial. A crash (power loss, SIGKILL) during the swap,
    which is a few renames long, can leave some entries new and some old, with the rest in a
    ``.vggt-save-*`` folder inside ``target``, which the next successful save removes; the record lists the old and
    the new entries meanwhile, so that the next save may replace them all. A staging folder is locked while its save
    runs, so that another process's save into ``target`` does not take it for a killed one's.

    ``keystone``, one of ``owned``, names the entry that vouches for the others (an export's manifest, which
    records every file's digest): the earlier one goes before any other entry is swapped and the new one comes
    last, so a reader that finds a keystone finds the entries it describes, during the swap and after a crash.

    ``writer`` names who saves (a node's fully qualified name): a save never replaces another writer's, so that two
    nodes given one folder (two robots' ``/robot1/vggt`` and ``/robot2/vggt`` launched from one directory) do not
    overwrite each other's saves without a word. A save of no writer (a command's) replaces any. The checks against
    what ``target`` holds and the swap run under an flock of ``target`` (unless the caller holds it:
    ``target_locked``), so that two saves that end together do not both pass them.

    Raises:
        ValueError: the block wrote an entry that ``owned`` does not name. FileExistsError naming the entries when
        ``target`` holds some of the written names that no save wrote, or naming both writers when it holds another
        writer's save. OSError naming ``target`` when the staging folder cannot be made or the swap fails; an
        OSError of the block names its files by their final paths.
    """
    target = Path(target)
    _check_writer(target, writer)  # before any work
    created = missing_folders(target)
    not_folder = next((folder for folder in (target, *target.parents) if folder.exists() and not folder.is_dir()), None)
    if not_folder is not None:  # mkdir would only say "File exists" or "Not a directory"
        raise OSError(f"could not prepare a save in {target}: {not_folder} is a file, not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target))
        lock = os.open(work, os.O_RDONLY)
    except OSError as err:
        raise OSError(f"could not prepare a save in {target}: {err}") from None
    saved = False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a new folder: nobody else holds it
        staging, old = work / "new", work / "old"
        staging.mkdir()
        old.mkdir()
        try:
            yield staging
        except OSError as err:  # named where the user will look for the files, not in the staging folder
            raise OSError(str(err).replace(str(staging), str(target))) from None
        written = sorted(entry.name for entry in staging.iterdir())
        unknown = [name for name in written if not _owned(name, owned)]
        if unknown:
            raise ValueError(f"the save wrote {unknown}, which are not among the entries it may replace {owned}")
        with contextlib.nullcontext() if target_locked else _save_lock(target):
            _check_writer(target, writer)  # again: another save may have ended since the start
            recorded = _recorded_lines(target)
            earlier = {line for line in recorded if _entry_name(line)}
            # Every entry of an owned name an earlier save wrote and this one does not (a camera the node no longer
            # runs: trajectory_*.tum); the entries other saves wrote stay, and stay recorded.
            removed = sorted(name for name in earlier - set(written) if _owned(name, owned))
            foreign, inside = _unrecorded(target, [*written, *removed], set(recorded))
            if foreign:
                raise FileExistsError(
                    f"{target} holds {foreign}, which no save wrote and this one would replace; move them, or save "
                    "into another folder"
                )
            if inside:
                raise FileExistsError(
                    f"{target} holds {listed(inside)} inside entries this save replaces, which no save wrote; move "
                    "them, or save into another folder"
                )
            others = sorted(name for name in earlier - set(written) - set(removed) if os.path.lexists(target / name))
            listings = [line for name in written for line in _folder_listing(staging, name)]
            kept_listings = [line for line in recorded if "/" in line and line.split("/", 1)[0] in others]
            write_save_record(staging, sorted([*written, *listings, *others, *kept_listings]), writer)
            previous_record = _contents(target / SAVE_RECORD)
            with _signals_deferred():  # a swap, or its undo, cut short by Ctrl-C would leave part of each save
                # What a crash mid-swap leaves: the old and the new entries, and the files of both.
                write_save_record(target, sorted(set(recorded) | set(written) | set(listings)), writer)
                try:
                    _swap(target, staging, old, [*written, SAVE_RECORD], removed, keystone)
                except BaseException:
                    _restore(target / SAVE_RECORD, previous_record)
                    raise
                saved = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
        os.close(lock)
        if not saved:
            remove_empty_folders(created)  # left as it was: none of the folders the save made
    for leftover in target.glob(f"{STAGING_PREFIX}*"):  # of a save killed while it wrote: stale now
        if leftover.is_dir() and not leftover.is_symlink() and _abandoned(leftover):
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Within, SIGINT and SIGTERM wait, and the first is delivered after. Only in the main thread, where Python runs
    signal handlers (a save in another thread is never interrupted by one), and only where the handlers in place
    were set from Python (so that they can be put back)."""
    signals = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or None in map(signal.getsignal, signals):
        yield
        return
    pending: list[int] = []
    previous = {number: signal.signal(number, lambda received, frame: pending.append(received)) for number in signals}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if pending:
            signal.raise_signal(pending[0])


def _check_writer(target: Path, writer: str | None) -> None:
    """FileExistsError, naming both, when ``target`` holds the save of another writer than ``writer``."""
    earlier = save_writer(target) if target.is_dir() else None
    if writer is not None and earlier not in (None, writer):
        raise FileExistsError(
            f"{target} holds the save of {earlier}, which this save of {writer} would replace; give each its own "
            "folder (save_directory), or remove that save first"
        )


def _save_lock(target: Path, patience_s: float = 10.0) -> contextlib.ExitStack:
    """`folder_locked` for a save's checks and swap, held until the returned stack closes; OSError in a save's words
    when another process holds ``target`` for ``patience_s`` (a vggt-ros-reconstruct run holds its --out for the
    whole run)."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(folder_locked(target, patience_s))
    except FolderBusy:
        raise OSError(
            f"could not save into {target}: another save (or a vggt-ros-reconstruct run) has been writing into it for "
            f"{patience_s:.0f} s; try again when it is done"
        ) from None
    return stack


class FolderBusy(OSError):
    """Another open file of a folder holds its lock (`folder_locked`)."""


@contextmanager
def folder_locked(folder: Path, patience_s: float = 0.0) -> Iterator[None]:
    """An exclusive flock of ``folder`` for the block. `FolderBusy` when another open file of it (another process's,
    or this one's) holds the lock for ``patience_s`` seconds (0: at once)."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + patience_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FolderBusy(errno.EWOULDBLOCK, f"{folder} is locked by another writer") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(handle)  # releases the lock


def _owned(name: str, owned: Collection[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in owned)


def _abandoned(staging: Path) -> bool:
    """A staging folder no save holds any more (its save was killed): `staged_entries` locks its own."""
    try:
        with folder_locked(staging):
            return True
    except OSError:  # FolderBusy: a live save's; or gone
        return False


def _contents(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _restore(path: Path, contents: bytes | None) -> None:
    """Put ``path`` back as it was (``contents``; None: missing)."""
    if contents is None:
        path.unlink(missing_ok=True)
    else:
        write_bytes_atomically(path, contents)


def _entry_name(name: str) -> bool:
    """A plain top-level entry name (a damaged record cannot make a save remove anything outside its folder)."""
    return name not in ("", ".", "..", SAVE_RECORD) and "/" not in name and os.sep not in name


def missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first: what creating it would make."""
    return [folder for folder in (path, *path.parents) if not folder.exists()]


def remove_empty_folders(folders: Collection[Path]) -> None:
    """Remove those of ``folders`` (deepest first, as `missing_folders` lists them) that are empty."""
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty (or gone): kept
            folder.rmdir()


def write_save_record(folder: Path, names: Collection[str], writer: str | None = None) -> None:
    """Record ``names`` as the entries of ``folder`` that saves wrote (`SAVE_RECORD`), and the ``writer`` of the
    last save if it has one, atomically."""
    lines = [*([f"{_WRITER_PREFIX}{writer}"] if writer is not None else []), *names]
    write_bytes_atomically(Path(folder) / SAVE_RECORD, "".join(f"{line}\n" for line in lines).encode())


def record_unrecorded_save(folder: Path, names: Collection[str]) -> None:
    """Record those of ``names`` that ``folder`` holds as a save's entries, unless a record is there already: what an
    earlier vggt_ros wrote without one is then replaced as a recorded save's."""
    if not (Path(folder) / SAVE_RECORD).exists():
        write_save_record(folder, [name for name in names if os.path.lexists(folder / name)])


def add_to_save_record(folder: Path, name: str) -> None:
    """Record ``name`` too, written into ``folder`` outside a save (its writer stays)."""
    write_save_record(folder, sorted(set(_recorded_lines(folder)) | {name}), save_writer(folder))


def unrecorded_paths(target: Path, names: Collection[str]) -> tuple[list[str], list[str]]:
    """What a save of ``names`` into ``target`` would replace or remove although no save wrote it (the user's own):
    the entries of those names, and the files and links inside those of them that are folders an earlier save wrote
    (``colmap/database.db``); paths relative to ``target``. A folder recorded without its files (by a vggt_ros before
    the record listed them) is taken as the save's whole."""
    target = Path(target)
    return _unrecorded(target, names, set(_recorded_lines(target)))


def _unrecorded(target: Path, names: Collection[str], recorded: set[str]) -> tuple[list[str], list[str]]:
    """`unrecorded_paths` against the record's lines ``recorded``."""
    entries = [name for name in names if os.path.lexists(target / name) and name not in recorded]
    inside = [
        line
        for name in names
        if f"{name}/" in recorded
        for line in _folder_listing(target, name)[1:]
        if line not in recorded
    ]
    return entries, sorted(inside)


def _folder_listing(parent: Path, name: str) -> list[str]:
    """The record's lines for ``parent``'s entry ``name`` when it is a folder: ``name/``, then every file and link in
    it, at any depth (``name/sparse/0/cameras.bin``); none for a file or a link."""
    folder = parent / name
    if folder.is_symlink() or not folder.is_dir():
        return []
    lines = [f"{name}/"]
    for root, folders, files in os.walk(folder):  # links to folders are listed in `folders`, and not followed
        where = Path(root).relative_to(parent)
        lines += [f"{where / entry}" for entry in files]
        lines += [f"{where / entry}" for entry in folders if os.path.islink(os.path.join(root, entry))]
    return lines


def listed(paths: list[str], limit: int = 5) -> str:
    """``paths`` for a message: the first ``limit`` of them, and how many more."""
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def saved_entries(target: Path) -> set[str]:
    """The top-level entries the saves into ``target`` wrote (`SAVE_RECORD`); none before the first."""
    return {line for line in _recorded_lines(target) if "/" not in line}


def _recorded_lines(target: Path) -> list[str]:
    """The record's entries and its folders' files (`SAVE_RECORD`), without the writer line."""
    return [line for line in _record_lines(target) if not line.startswith("#")]


def save_writer(target: Path) -> str | None:
    """Who made the last save into ``target`` (`staged_entries`' ``writer``); None: a command, or no save."""
    writers = (line.removeprefix(_WRITER_PREFIX) for line in _record_lines(target) if line.startswith(_WRITER_PREFIX))
    return next(writers, None)


def _record_lines(target: Path) -> list[str]:
    path = Path(target) / SAVE_RECORD
    try:
        # A damaged record's undecodable bytes name no entry: nothing of its is replaced as a save's.
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise OSError(f"could not read {path}, the record of what saves wrote there: {err.strerror or err}") from None


def _swap(target: Path, staging: Path, old: Path, written: list[str], removed: list[str], keystone: str | None) -> None:
    """Move ``written`` from ``staging`` into ``target`` and ``removed`` out of it, the ``keystone``'s earlier entry
    out first and its new one in last; undo everything on failure."""
    done: list[tuple[str, str, bool]] = []  # (name, how the old entry was kept: "", "link" or "move", new placed)
    try:
        if keystone in (*written, *removed) and os.path.lexists(target / keystone):
            done.append((keystone, _keep(target / keystone, old / keystone, link=False), False))
        for name in [*written, *removed]:
            if name == keystone:
                continue
            entry, new = target / name, staging / name
            kept = ""
            if os.path.lexists(entry):
                kept = _keep(entry, old / name, link=name in written and _is_file(new))
            done.append((name, kept, False))
            if name in written:
                os.replace(new, entry)
                done[-1] = (name, kept, True)
        if keystone in written:
            _fsync(target)  # the entries it vouches for are in place before it is
            os.replace(staging / keystone, target / keystone)
            done.append((keystone, "", True))
        _fsync(target)
    except BaseException as err:  # an OSError, or anything else that stops the swap halfway: undone either way
        for name, kept, placed in reversed(done):
            entry = target / name
            if placed and kept != "link":
                os.rename(entry, staging / name)
            if kept:
                os.replace(old / name, entry)
        if not isinstance(err, OSError):
            raise
        raise OSError(f"could not replace the saved files in {target} (the previous ones are kept): {err}") from None


def _keep(entry: Path, aside: Path, link: bool) -> str:
    """Keep ``entry`` at ``aside`` for an undo: a file that a file replaces stays in place (a hard link), so that
    it never disappears; anything else is moved. Returns "link" or "move"."""
    if link and _is_file(entry):
        try:
            os.link(entry, aside, follow_symlinks=False)
            return "link"
        except OSError as err:
            if err.errno not in _NO_HARD_LINKS:
                raise
    os.rename(entry, aside)
    return "move"


def _is_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _fsync(path: Path) -> None:
    """fsync a file or a folder (a folder: so that the names renamed into it survive a crash)."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    except OSError as err:
        if err.errno != errno.EINVAL:  # a filesystem that cannot sync this kind of file has nothing to sync
            raise
    finally:
        os.close(handle)
