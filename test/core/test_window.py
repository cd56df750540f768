# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""SlidingWindow (size, stride, keyframes, reset on time going back), joint-reconstruction chunks and the
latest-only LatestSlot."""

import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import IMAGES
from vggt_ros.window import (
    ChunkWindows,
    FrameSet,
    KeyframePolicy,
    LatestSlot,
    SlidingWindow,
    WindowConfig,
    anchor_window,
    grey_thumbnail,
    motion_between,
)

MS = 1_000_000


def _flat(value: int, cameras: int = 1, stamp_ns: int = 0) -> FrameSet:
    image = np.full((30, 40, 3), value, dtype=np.uint8)
    return FrameSet(stamps_ns=(stamp_ns,) * cameras, images=(image,) * cameras)


def _window(size=3, stride=1, interval=0.0, motion=0.0) -> SlidingWindow:
    return SlidingWindow(WindowConfig(size, stride, KeyframePolicy(min_interval_s=interval, min_motion=motion)))


def test_window_grows_then_slides_and_stays_bounded():
    window = _window(size=3, stride=1)
    contents = []
    for k in range(50):
        update = window.add(_flat(k, stamp_ns=k * 100 * MS))
        assert update.is_keyframe and not update.reset
        contents.append([int(fs.images[0][0, 0, 0]) for fs in update.window.frame_sets])
        assert len(window) <= 3
    assert contents[:4] == [[0], [0, 1], [0, 1, 2], [1, 2, 3]]
    assert contents[-1] == [47, 48, 49]


def test_a_frame_set_delivered_twice_is_not_used_and_no_window_holds_a_stamp_twice():
    """A repeated stamp (a frame set sent twice, a frozen clock) went into the window: the world refused each of the
    next window_size - 1 windows ("a window's frame ids must be distinct")."""
    window = _window(size=3, stride=1)
    stamps = [0, 100, 100, 100, 200, 300]  # the second frame set three times
    windows = [window.add(_flat(k, stamp_ns=stamp * MS)).window for k, stamp in enumerate(stamps)]
    assert [w is None for w in windows] == [False, False, True, True, False, False]
    for emitted in filter(None, windows):
        held = [fs.stamp_ns for fs in emitted.frame_sets]
        assert len(held) == len(set(held)), held
    assert [int(fs.images[0][0, 0, 0]) for fs in windows[-1].frame_sets] == [1, 4, 5]


def test_stride_emits_every_nth_keyframe_with_the_new_ones_counted():
    window = _window(size=4, stride=2)
    emitted = {}
    for k in range(7):
        update = window.add(_flat(k, stamp_ns=k * MS))
        if update.window is not None:
            emitted[k] = ([int(fs.images[0][0, 0, 0]) for fs in update.window.frame_sets], update.window.new_count)
    # The first keyframe emits at once; then every second one.
    assert emitted == {0: ([0], 1), 2: ([0, 1, 2], 2), 4: ([1, 2, 3, 4], 2), 6: ([3, 4, 5, 6], 2)}


def test_minimum_interval_between_keyframes():
    window = _window(size=10, interval=0.25)
    kept = [k for k in range(10) if window.add(_flat(k, stamp_ns=k * 100 * MS)).is_keyframe]
    assert kept == [0, 3, 6, 9]


def test_minimum_motion_known_grey_change():
    # Flat grey 0 -> 51 is a change of exactly 51/255 = 0.2 of the grey range.
    assert motion_between(
        (grey_thumbnail(_flat(0).images[0]),), (grey_thumbnail(_flat(51).images[0]),)
    ) == pytest.approx(0.2)
    window = _window(size=5, motion=0.15)
    assert window.add(_flat(0, stamp_ns=0)).is_keyframe
    assert not window.add(_flat(30, stamp_ns=1 * MS)).is_keyframe  # 0.118 < 0.15 against keyframe 0
    assert window.add(_flat(51, stamp_ns=2 * MS)).is_keyframe  # 0.2 against keyframe 0
    assert not window.add(_flat(80, stamp_ns=3 * MS)).is_keyframe  # 0.114 against keyframe 51


def test_a_thumbnail_is_the_block_mean_of_evenly_spaced_samples_of_any_view():
    """Flat blocks give their grey exactly; a decoder's views (bgr8's reversed channels, mono8 broadcast to three)
    give the thumbnail of their copy."""
    tiles = np.kron(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20, np.ones((160, 160), dtype=np.uint8))
    flat = np.repeat(tiles[..., None], 3, axis=2)  # 480 x 640, tiles of 160 px: 2 x 2 samples of 5 px stride
    thumbnail = grey_thumbnail(flat)
    assert thumbnail.shape == (48, 64)
    assert np.array_equal(thumbnail[::16, ::16], tiles[::160, ::160] / np.float32(255.0))
    photo = np.asarray(Image.open(IMAGES / "astronaut.png").convert("RGB"))
    for view in (photo[:, ::-1], photo[..., ::-1], np.broadcast_to(photo[..., :1], photo.shape)):
        assert np.array_equal(grey_thumbnail(view), grey_thumbnail(np.ascontiguousarray(view)))


def test_motion_on_a_real_photograph_rejects_a_still_camera_and_accepts_a_pan():
    photo = np.asarray(Image.open(IMAGES / "astronaut.png").convert("RGB"))
    view = lambda x: photo[50:450, x : x + 400]  # noqa: E731 - a camera panning over the photo
    window = _window(size=5, motion=0.02)
    assert window.add(FrameSet((0,), (view(0),))).is_keyframe
    assert not window.add(FrameSet((1 * MS,), (view(0).copy(),))).is_keyframe
    assert window.add(FrameSet((2 * MS,), (view(60),))).is_keyframe


def test_sensor_noise_on_a_still_camera_makes_no_keyframes_while_a_small_pan_does():
    """A still camera in a dark room (luma noise of 12 grey levels, high gain) made every frame set a keyframe at
    min_motion 0.05: the thumbnail took one pixel in every 7 x 7 block, with the full noise. Block means average it
    away; a pan of 5 % of the image still counts."""
    photo = np.asarray(Image.open(IMAGES / "astronaut.png").convert("RGB")).astype(np.float32)
    view = lambda x: photo[50:450, x : x + 400]  # noqa: E731 - a camera panning over the photo
    rng = np.random.default_rng(0)

    def exposed(x):
        noise = rng.normal(0.0, 12.0, view(x).shape[:2])[..., None]
        return np.clip(view(x) + noise, 0, 255).astype(np.uint8)

    window = _window(size=5, motion=0.05)
    still = [window.add(FrameSet((k * MS,), (exposed(0),))).is_keyframe for k in range(40)]
    assert still == [True] + [False] * 39
    assert window.add(FrameSet((40 * MS,), (exposed(20),))).is_keyframe


def test_both_policies_must_pass():
    window = _window(size=5, interval=0.25, motion=0.1)
    assert window.add(_flat(0, stamp_ns=0)).is_keyframe
    assert not window.add(_flat(100, stamp_ns=100 * MS)).is_keyframe  # moved, but too soon
    assert not window.add(_flat(0, stamp_ns=300 * MS)).is_keyframe  # late enough, but no motion
    assert window.add(_flat(100, stamp_ns=400 * MS)).is_keyframe


def test_time_going_backwards_resets_the_window():
    window = _window(size=3)
    for k in range(5):
        window.add(_flat(k, stamp_ns=(10 + k) * 1000 * MS))
    update = window.add(_flat(99, stamp_ns=1000 * MS))  # a bag loop: 13 s back
    assert update.reset and update.is_keyframe
    assert [int(fs.images[0][0, 0, 0]) for fs in update.window.frame_sets] == [99]
    assert update.window.sequence == 0
    following = window.add(_flat(100, stamp_ns=2000 * MS))
    assert not following.reset and len(following.window.frame_sets) == 2


def test_a_frame_set_slightly_out_of_order_is_skipped_and_the_window_kept():
    window = _window(size=3)
    for k in range(3):
        window.add(_flat(k, stamp_ns=(100 + k) * MS))
    late = window.add(_flat(50, stamp_ns=101 * MS))  # 1 ms before the newest: reordered on the way
    assert not late.reset and not late.is_keyframe and late.window is None
    following = window.add(_flat(7, stamp_ns=103 * MS))
    assert not following.reset
    assert [int(fs.images[0][0, 0, 0]) for fs in following.window.frame_sets] == [1, 2, 7]


def test_multi_camera_window_lists_images_in_model_order():
    window = _window(size=2)
    a = FrameSet((1 * MS, 2 * MS), (np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)))
    b = FrameSet((11 * MS, 12 * MS), (np.full((4, 4, 3), 2, np.uint8), np.full((4, 4, 3), 3, np.uint8)))
    window.add(a)
    result = window.add(b).window
    assert result.num_cameras == 2
    assert [int(image[0, 0, 0]) for image in result.images] == [0, 1, 2, 3]
    assert result.stamps_ns == [1 * MS, 2 * MS, 11 * MS, 12 * MS]
    assert b.stamp_ns == 12 * MS


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: WindowConfig(window_size=0), "window_size"),
        (lambda: WindowConfig(window_size=1), "shares no keyframe"),  # only the first window ever joined the world
        (lambda: WindowConfig(window_size=3, window_stride=4), "window_stride"),
        (lambda: KeyframePolicy(min_interval_s=-1.0), "min_interval_s"),
        (lambda: KeyframePolicy(min_motion=2.0), "min_motion"),
        (lambda: FrameSet((1, 2), (np.zeros((2, 2, 3), np.uint8),)), "one stamp per image"),
    ],
)
def test_bad_configuration_is_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_latest_slot_keeps_only_the_newest_item():
    slot: LatestSlot[str] = LatestSlot()
    assert slot.put("a") is None
    assert slot.put("b") == "a"
    assert slot.put("c") == "b"
    assert slot.take(timeout=0.0) == "c"
    assert slot.take(timeout=0.01) is None


def test_latest_slot_wakes_a_waiting_consumer_and_close_releases_it():
    slot: LatestSlot[int] = LatestSlot()
    received = []
    consumer = threading.Thread(target=lambda: received.extend([slot.take(timeout=5.0), slot.take(timeout=5.0)]))
    consumer.start()
    time.sleep(0.05)
    slot.put(7)
    time.sleep(0.05)
    started = time.monotonic()
    slot.close()
    consumer.join(timeout=5.0)
    assert not consumer.is_alive()
    assert received == [7, None]
    assert time.monotonic() - started < 1.0


def test_anchor_window_restores_overlap_after_dropped_windows():
    window = _window(size=3)
    windows = [window.add(_flat(v, stamp_ns=v)).window for v in range(6)]
    processed, skipped_to = windows[2], windows[5]  # windows 3 and 4 were dropped while inference lagged
    anchor = processed.frame_sets[-1]
    assert not {s.stamps_ns for s in skipped_to.frame_sets} & {anchor.stamps_ns}
    anchored = anchor_window(skipped_to, anchor)
    assert [s.stamps_ns[0] for s in anchored.frame_sets] == [2, 4, 5]
    assert anchored.new_count == 1 and anchored.sequence == skipped_to.sequence
    # a window that already overlaps, no anchor yet, or a one-set window stay as they are
    assert anchor_window(windows[3], anchor) is windows[3]
    assert anchor_window(skipped_to, None) is skipped_to
    single = _window(size=2).add(_flat(9, stamp_ns=9)).window  # the first, before the window fills
    assert anchor_window(single, anchor) is single


def _frame_set(index: int) -> FrameSet:
    return FrameSet(stamps_ns=(index * 1000,), images=(np.zeros((4, 4, 3), np.uint8),))


def test_chunks_cover_every_frame_set_once_as_new_and_share_the_overlap():
    chunks = ChunkWindows(chunk_size=5, overlap=2)
    windows = [w for w in (chunks.add(_frame_set(i)) for i in range(12)) if w is not None]
    last = chunks.finish()
    assert last is not None and chunks.finish() is None
    windows.append(last)
    stamps = [[s.stamp_ns // 1000 for s in w.frame_sets] for w in windows]
    assert stamps == [[0, 1, 2, 3, 4], [3, 4, 5, 6, 7], [6, 7, 8, 9, 10], [9, 10, 11]]
    assert [w.new_count for w in windows] == [5, 3, 3, 1]
    assert [w.sequence for w in windows] == [0, 1, 2, 3]
    new = [s for w in windows for s in stamps[w.sequence][len(stamps[w.sequence]) - w.new_count :]]
    assert new == list(range(12))


def test_one_joint_chunk_when_everything_fits():
    chunks = ChunkWindows(chunk_size=20, overlap=4)
    assert all(chunks.add(_frame_set(i)) is None for i in range(7))
    window = chunks.finish()
    assert len(window.frame_sets) == 7 and window.new_count == 7
    assert chunks.finish() is None


@pytest.mark.parametrize("size, overlap", [(1, 0), (4, 0), (4, 4)])
def test_chunk_settings_are_checked(size, overlap):
    with pytest.raises(ValueError, match="chunk"):
        ChunkWindows(size, overlap)
