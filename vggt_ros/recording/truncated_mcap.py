# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Reading an mcap recording that was cut off (the recorder crashed or lost power): every complete record.

An mcap file ends with a summary section, a footer and a closing magic; a recording cut off mid-write has none
of them, and rosbags refuses it ("File end magic is invalid"). Its data section is still a plain sequence of
records (opcode, uint64 length, body), each message or chunk complete in itself, so the file reads up to the
last record whose bytes are all there, the way mcap's own streaming reader does: rosbags' reader is asked to
scan that prefix instead of trusting an index. What follows the last complete record (a half-written chunk or
message) is lost and reported in `TruncatedMcapReader.truncation`.

`open_reader` opens a bag path with rosbags' `AnyReader` whose mcap files are read this way; an intact file
reads exactly as with rosbags alone (its index is used).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Optional

from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import ReaderError
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.typesys.store import Typestore

_DATA_END, _FOOTER = 0x0F, 0x02  # opcodes that end the data section
_LAST_OPCODE = 0x10  # mcap 0.x defines opcodes 0x01..0x10; anything else (a zero-filled tail) is not a record
_RECORD_HEAD = 9  # opcode (1) + length (8)
_END_ERRORS = ("File end magic is invalid.", "Invalid MCAP footer.", "Invalid MCAP summary offset.")


class TruncatedMcapReader(McapReader):
    """rosbags' mcap storage reader, which also reads a file without its end (see the module docstring).

    Attributes:
        truncation: None for a complete file, else what was lost ("kept N of M bytes ...").
    """

    truncation: Optional[str] = None

    def _open(self) -> None:
        try:
            super()._open()
            return
        except ReaderError as err:
            if str(err) not in _END_ERRORS:
                raise
        size = os.fstat(self.bio.fileno()).st_size
        self.data_end = _complete_records_end(self.bio, self.data_start, size)
        self.schemas.clear()
        self.channels.clear()
        self.chunks.clear()
        self.connections.clear()
        self.meta_scan()  # schemas, channels and message counts of the complete records
        stats = self.statistics
        self.connections = [c._replace(msgcount=stats.channel_message_counts.get(c.id, 0)) for c in self.connections]
        count = stats.message_count
        self.metadata = self.metadata._replace(
            duration=stats.end_time - stats.start_time + 1 if count else 0,
            start_time=stats.start_time if count else 2**63 - 1,
            end_time=stats.end_time + 1 if count else 0,
            message_count=count,
        )
        self.truncation = (
            f"'{self.path}' ends without its summary (a recording cut off): read the {count} messages of its "
            f"first {self.data_end} of {size} bytes, the complete records; the rest is lost"
        )


def _complete_records_end(bio, data_start: int, size: int) -> int:
    """Offset just past the last complete record of the data section that starts at ``data_start``."""
    position = data_start
    while position + _RECORD_HEAD <= size:
        bio.seek(position)
        opcode, length = struct.unpack("<BQ", bio.read(_RECORD_HEAD))
        if opcode in (_DATA_END, _FOOTER) or not 0 < opcode <= _LAST_OPCODE or position + _RECORD_HEAD + length > size:
            break
        position += _RECORD_HEAD + length
    return position


class _TolerantDirectoryReader(DirectoryReader):
    STORAGE_PLUGINS = {**DirectoryReader.STORAGE_PLUGINS, "mcap": TruncatedMcapReader}


def open_reader(paths: list[Path], default_typestore: Typestore) -> AnyReader:
    """An unopened `AnyReader` of ``paths`` (a rosbag2 folder, its storage files, or a ROS 1 bag), reading cut-off
    mcap files."""
    reader = AnyReader(paths, default_typestore=default_typestore)
    if not reader.is2:  # ROS 1 bags: no rosbag2 storage
        return reader
    for bag in reader.readers:
        if isinstance(bag.storage, McapReader):
            bag.storage = TruncatedMcapReader(bag.storage.path)
        elif isinstance(bag.storage, DirectoryReader):
            bag.storage = _TolerantDirectoryReader(bag.storage.path)
    return reader


def truncations(reader: AnyReader) -> list[str]:
    """What the opened ``reader`` lost to cut-off mcap files (empty when every file was complete)."""
    storages = []
    for bag in reader.readers if reader.is2 else ():
        storages.extend(getattr(bag.storage, "storages", [bag.storage]))
    return [s.truncation for s in storages if isinstance(s, TruncatedMcapReader) and s.truncation]
