# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""A transform tree with history, for looking up robot frames where tf2_ros is not installed.

`TransformBuffer` is a small stand-in for ``tf2_ros.Buffer`` with the same method names and meaning, on plain
values: frames are strings, stamps are integer nanoseconds and transforms are ``(4, 4)`` rigid matrices
``parent_from_child`` (they map points in the child frame into the parent frame, metres). The node uses tf2_ros
where it exists (`vggt_ros.ros.tf_listener`), this buffer where it does not, and both present the same interface
(`TransformLookup`) and the same errors (`TransformLookupError` and its subclasses), so callers never care which.

Semantics follow tf2:

* Frames form a tree: each child has one parent. Static links hold at all times; a dynamic link keeps the
  transforms it was given, and a look-up between two of its stamps interpolates (translation linearly, rotation
  by slerp, as tf2's TimeCache does); outside its stamps it raises `ExtrapolationError`.
* ``lookup_transform(target, source, stamp_ns)`` composes the links from ``source`` up to the lowest common
  ancestor and back down to ``target``. Stamp 0 means the newest time every dynamic link of that chain has
  (tf2's ``Time(0)``).
* Each dynamic link keeps ``cache_time_s`` of history behind its newest stamp (tf2's default 10 s); older entries
  are pruned on insertion and data older than that window is refused, so memory stays bounded.
* A second transform with an existing stamp replaces the first (tf2 inserts it in front, so look-ups see the
  newer one; replacing keeps memory bounded under a publisher that repeats its stamp).

Two simplifications, both outside what this project does with robot frames: tf2 remembers each stamp's parent,
so a child re-parented at time t still resolves through its old parent before t; here a new parent (or a change
between static and dynamic) replaces the link and its history. And the errors carry their facts only in the
message, because tf2's exceptions carry nothing else and both implementations must raise the same things.

The buffer takes a lock around every call: ROS subscriptions fill it on the executor's thread while the node's
worker thread reads it.
"""

from __future__ import annotations

import bisect
import math
import numbers
import threading
from typing import NamedTuple, Optional, Protocol, Sequence, Union

import numpy as np

from vggt_ros.geometry import compose_poses, invert_pose, quaternion_to_rotation_matrix, rotation_matrix_to_quaternion

NANOSECONDS = 1_000_000_000
DEFAULT_CACHE_TIME_S = 10.0
# Tolerance on R^T R = I and on the bottom row: float64 poses built from float32 network outputs stay far inside it.
_RIGID_ATOL = 1e-6
_BOTTOM_ROW = np.array([0.0, 0.0, 0.0, 1.0])
_IDENTITY_3 = np.eye(3)
# Above this cosine the two rotations are within ~1e-4 rad, where slerp's division by sin(angle) loses digits and
# normalised linear interpolation agrees with slerp to ~1e-14.
_SLERP_LINEAR_ABOVE = 1.0 - 1e-9
# How many known frames an unknown-frame error lists (a typo is usually visible among the first few).
_FRAMES_LISTED = 20


class TransformLookupError(LookupError):
    """A transform cannot be looked up; the subclasses say why (the same classes whichever buffer is used)."""


class UnknownFrameError(TransformLookupError):
    """A frame no transform has named, as parent or child (tf2's LookupException)."""


class NoConnectionError(TransformLookupError):
    """Both frames are known but lie in different trees (tf2's ConnectivityException)."""


class ExtrapolationError(TransformLookupError):
    """The stamp is outside a dynamic link's buffered span (tf2's ExtrapolationException)."""


class ParentLink(NamedTuple):
    """One step up a frame's tree: the parent, and whether the link to it is dynamic (/tf: odometry, joints) or
    static (/tf_static: the robot's build)."""

    parent: str
    moving: bool


class TransformLookup(Protocol):
    """What the metric code needs from a transform buffer: `TransformBuffer` or the tf2_ros adapter."""

    def lookup_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> np.ndarray:
        """``(4, 4)`` float64 target_from_source (metres) at ``stamp_ns`` (0: the newest common time)."""
        ...

    def can_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> bool: ...

    def ancestors(self, frame: str) -> list["ParentLink"]:
        """``frame``'s parent, its parent's, ... up to the root of its tree (empty: no parent, or unknown)."""
        ...

    def clear(self) -> None:
        """Forget the dynamic transforms' history, keeping the static ones (time went back)."""
        ...


def as_rigid_transform(name: str, value: object) -> np.ndarray:
    """``value`` as a ``(4, 4)`` float64 rigid transform [[R, t], [0, 0, 0, 1]], or ValueError saying what is wrong.

    A similarity (VGGT's unit-less scale not yet removed) fails here rather than distorting robot frames.
    """
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"{name} must be a (4, 4) rigid transform [[R, t], [0, 0, 0, 1]], got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} has non-finite entries: {matrix.tolist()}")
    # Plain max-abs tests rather than np.allclose: this runs on every transform a /tf subscription receives.
    if np.abs(matrix[3] - _BOTTOM_ROW).max() > _RIGID_ATOL:
        raise ValueError(f"{name} must have the bottom row [0, 0, 0, 1], got {matrix[3].tolist()}")
    rotation = matrix[:3, :3]
    if np.abs(rotation.T @ rotation - _IDENTITY_3).max() > _RIGID_ATOL or np.linalg.det(rotation) < 0:
        singular_values = np.linalg.svd(rotation, compute_uv=False)
        raise ValueError(
            f"{name} must be rigid (metres): its 3x3 block is not a rotation (singular values "
            f"{singular_values.round(6).tolist()}, determinant {np.linalg.det(rotation):.6g}); remove any scale "
            "before passing it"
        )
    return matrix


def _seconds(stamp_ns: int) -> str:
    return f"{stamp_ns / NANOSECONDS:.9f} s"


def _check_stamp(stamp_ns: object) -> int:
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, numbers.Integral):
        raise TypeError(f"stamp_ns must be an int (nanoseconds), got {type(stamp_ns).__name__}")
    if stamp_ns < 0:
        raise ValueError(f"stamp_ns must be >= 0 nanoseconds, got {stamp_ns}")
    return int(stamp_ns)


def _check_frame(role: str, frame: object) -> None:
    if not isinstance(frame, str) or not frame:
        raise ValueError(f"{role} must be a non-empty frame id string, got {frame!r}")
    if frame.startswith("/"):
        raise ValueError(f"{role} {frame!r} starts with '/': ROS 2 frame ids have no leading slash; drop it")


def _slerp(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    """Unit quaternion ``(4,)`` a ``fraction`` of the way from ``start`` to ``end`` along the shorter arc."""
    cosine = float(start @ end)
    if cosine < 0.0:  # q and -q are the same rotation; the other sign is the shorter way round
        end, cosine = -end, -cosine
    if cosine > _SLERP_LINEAR_ABOVE:
        blended = start + fraction * (end - start)
    else:
        angle = math.acos(cosine)
        blended = (math.sin((1.0 - fraction) * angle) * start + math.sin(fraction * angle) * end) / math.sin(angle)
    return blended / np.linalg.norm(blended)


class _StaticLink:
    def __init__(self, parent: str, parent_from_child: np.ndarray) -> None:
        self.parent = parent
        self.parent_from_child = parent_from_child

    def newest_ns(self) -> Optional[int]:
        return None  # valid at all times: it never limits the newest common time

    def at(self, stamp_ns: int) -> np.ndarray:
        return self.parent_from_child


class _DynamicLink:
    """Stamped transforms of one link, oldest first, covering at most ``cache_ns`` behind the newest."""

    def __init__(self, parent: str, child: str, cache_ns: int) -> None:
        self.parent = parent
        self.child = child
        self.cache_ns = cache_ns
        self.stamps_ns: list[int] = []
        self.transforms: list[np.ndarray] = []

    def newest_ns(self) -> Optional[int]:
        return self.stamps_ns[-1]

    def insert(self, stamp_ns: int, parent_from_child: np.ndarray) -> bool:
        if self.stamps_ns and stamp_ns < self.stamps_ns[-1] - self.cache_ns:
            return False
        index = bisect.bisect_left(self.stamps_ns, stamp_ns)
        if index < len(self.stamps_ns) and self.stamps_ns[index] == stamp_ns:
            self.transforms[index] = parent_from_child
            return True
        self.stamps_ns.insert(index, stamp_ns)
        self.transforms.insert(index, parent_from_child)
        expired = bisect.bisect_left(self.stamps_ns, self.stamps_ns[-1] - self.cache_ns)
        del self.stamps_ns[:expired], self.transforms[:expired]
        return True

    def at(self, stamp_ns: int) -> np.ndarray:
        oldest, newest = self.stamps_ns[0], self.stamps_ns[-1]
        if not oldest <= stamp_ns <= newest:
            if stamp_ns > newest:
                direction, gap_ns = "into the future", stamp_ns - newest
            else:
                direction, gap_ns = "into the past", oldest - stamp_ns
            raise ExtrapolationError(
                f"link {self.parent!r} -> {self.child!r} at {_seconds(stamp_ns)} would need extrapolation {direction} "
                f"by {gap_ns / NANOSECONDS:.9f} s: its buffered data spans {_seconds(oldest)} .. {_seconds(newest)}"
            )
        after = bisect.bisect_left(self.stamps_ns, stamp_ns)
        if self.stamps_ns[after] == stamp_ns:
            return self.transforms[after]
        before_ns, after_ns = self.stamps_ns[after - 1], self.stamps_ns[after]
        fraction = (stamp_ns - before_ns) / (after_ns - before_ns)
        first, second = self.transforms[after - 1], self.transforms[after]
        quaternions = rotation_matrix_to_quaternion(np.stack((first[:3, :3], second[:3, :3])))
        result = np.eye(4)
        result[:3, :3] = quaternion_to_rotation_matrix(_slerp(quaternions[0], quaternions[1], fraction))
        result[:3, 3] = first[:3, 3] + fraction * (second[:3, 3] - first[:3, 3])
        return result


_Link = Union[_StaticLink, _DynamicLink]


class TransformBuffer:
    """A tf2-style transform tree with ``cache_time_s`` seconds of history per dynamic link (see the module)."""

    def __init__(self, cache_time_s: float = DEFAULT_CACHE_TIME_S) -> None:
        if isinstance(cache_time_s, bool) or not isinstance(cache_time_s, numbers.Real):
            raise TypeError(f"cache_time_s must be a number of seconds, got {type(cache_time_s).__name__}")
        if not math.isfinite(cache_time_s) or cache_time_s <= 0:
            raise ValueError(f"cache_time_s must be finite and > 0 seconds (tf2's default is 10), got {cache_time_s}")
        self.cache_time_s = float(cache_time_s)
        self._cache_ns = round(self.cache_time_s * NANOSECONDS)
        self._links: dict[str, _Link] = {}  # keyed by child frame
        self._frames: set[str] = set()  # every frame ever named; tf2 never forgets a frame id either
        self._lock = threading.Lock()

    def set_transform(self, parent: str, child: str, stamp_ns: int, parent_from_child: np.ndarray) -> bool:
        """Add the dynamic link ``parent`` -> ``child`` at ``stamp_ns``: ``(4, 4)`` rigid, child to parent, metres.

        Returns False (and stores nothing) when the stamp is older than the link's newest minus ``cache_time_s``,
        as tf2 drops such data; raises ValueError for a bad frame id, a non-rigid matrix or a link that would
        close a loop.
        """
        stamp_ns = _check_stamp(stamp_ns)
        matrix = as_rigid_transform(f"transform {parent!r} -> {child!r}", parent_from_child)
        with self._lock:
            link = self._checked_link(parent, child)
            if not (isinstance(link, _DynamicLink) and link.parent == parent):
                link = self._links[child] = _DynamicLink(parent, child, self._cache_ns)
            return link.insert(stamp_ns, matrix)

    def clear(self) -> None:
        """Forget every dynamic link's history, keeping the static links: tf2's rule when time goes back (a bag
        played in a loop), where the old history would reject the new transforms as too old, or lie between them."""
        with self._lock:
            self._links = {child: link for child, link in self._links.items() if isinstance(link, _StaticLink)}

    def set_transform_static(self, parent: str, child: str, parent_from_child: np.ndarray) -> None:
        """Set the static link ``parent`` -> ``child`` (valid at all times); ``(4, 4)`` rigid, child to parent."""
        matrix = as_rigid_transform(f"transform {parent!r} -> {child!r}", parent_from_child)
        with self._lock:
            self._checked_link(parent, child)
            self._links[child] = _StaticLink(parent, matrix)

    def lookup_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> np.ndarray:
        """``(4, 4)`` float64 target_from_source: maps points in ``source_frame`` into ``target_frame`` (metres).

        ``stamp_ns`` 0 means the newest time all dynamic links of the chain have. Raises `UnknownFrameError`,
        `NoConnectionError` or `ExtrapolationError` (all `TransformLookupError`), naming the frames.
        """
        stamp_ns = _check_stamp(stamp_ns)
        with self._lock:
            return self._lookup(target_frame, source_frame, stamp_ns)

    def can_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> bool:
        """Whether `lookup_transform` would succeed now."""
        try:
            self.lookup_transform(target_frame, source_frame, stamp_ns)
        except TransformLookupError:
            return False
        return True

    def ancestors(self, frame: str) -> list[ParentLink]:
        """``frame``'s parent, its parent's, ... up to the root of its tree (empty: no parent, or unknown)."""
        with self._lock:
            links = (self._links[child] for child in self._chain_to_root(frame)[:-1])
            return [ParentLink(link.parent, isinstance(link, _DynamicLink)) for link in links]

    def _checked_link(self, parent: str, child: str) -> Optional[_Link]:
        """The current link of ``child`` (None if it has none) once the new link is known valid; records the ids."""
        _check_frame("parent frame", parent)
        _check_frame("child frame", child)
        if parent == child:
            raise ValueError(f"a transform from frame {parent!r} to itself is meaningless; check the frame ids")
        ancestor = parent
        while ancestor in self._links:
            ancestor = self._links[ancestor].parent
            if ancestor == child:
                raise ValueError(
                    f"link {parent!r} -> {child!r} would close a loop: {child!r} is already an ancestor of {parent!r}"
                )
        self._frames.update((parent, child))
        return self._links.get(child)

    def _lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> np.ndarray:
        for role, frame in (("target_frame", target_frame), ("source_frame", source_frame)):
            if frame not in self._frames:
                known = sorted(self._frames)
                listed = ", ".join(map(repr, known[:_FRAMES_LISTED])) + (" ..." if len(known) > _FRAMES_LISTED else "")
                raise UnknownFrameError(
                    f"{role} {frame!r} does not exist: no transform has named it yet (known frames: {listed or 'none'})"
                )
        source_chain, target_chain = self._chain_to_root(source_frame), self._chain_to_root(target_frame)
        in_target_chain = set(target_chain)
        common = next((frame for frame in source_chain if frame in in_target_chain), None)
        if common is None:
            raise NoConnectionError(
                f"frames {target_frame!r} and {source_frame!r} are not connected: {target_frame!r} belongs to the tree "
                f"rooted at {target_chain[-1]!r}, {source_frame!r} to the one rooted at {source_chain[-1]!r}; a "
                "transform linking the two trees is missing"
            )
        source_links = source_chain[: source_chain.index(common)]  # the children whose links are on the path
        target_links = target_chain[: target_chain.index(common)]
        if stamp_ns == 0:
            newest = (self._links[child].newest_ns() for child in source_links + target_links)
            stamp_ns = min((stamp for stamp in newest if stamp is not None), default=0)
        try:
            common_from_source = self._compose_up(source_links, stamp_ns)
            common_from_target = self._compose_up(target_links, stamp_ns)
        except ExtrapolationError as error:
            raise ExtrapolationError(f"lookup of {target_frame!r} <- {source_frame!r}: {error}") from None
        return compose_poses(invert_pose(common_from_target), common_from_source)

    def _chain_to_root(self, frame: str) -> list[str]:
        """``[frame, its parent, ..., root]``."""
        chain = [frame]
        while chain[-1] in self._links:
            chain.append(self._links[chain[-1]].parent)
        return chain

    def _compose_up(self, children: Sequence[str], stamp_ns: int) -> np.ndarray:
        """common_from_first ``(4, 4)`` through the links above each of ``children`` (lowest first)."""
        common_from_first = np.eye(4)
        for child in children:
            common_from_first = self._links[child].at(stamp_ns) @ common_from_first
        return common_from_first
