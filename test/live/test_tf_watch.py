# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`OwnTransformWatch`: a transform heard on a link the node sends, at a stamp it never sent, is another
publisher's; reported once per link; the node's own transforms, and links it does not send, never are."""

from vggt_ros.live.tf_watch import OwnTransformWatch


def test_another_publisher_of_an_own_link_is_reported_once():
    watch = OwnTransformWatch(remembered=3)
    assert not watch.first_foreign("map", "odom", 5)  # a link the node has not sent (yet): not its business
    for stamp in (10, 20, 30):
        watch.sent("map", "odom", stamp)
    assert not any(watch.first_foreign("map", "odom", stamp) for stamp in (10, 20, 30))  # its own, heard back
    assert not watch.first_foreign("odom", "base_link", 25)  # another link
    assert watch.first_foreign("map", "odom", 25)  # a localisation node's map -> odom
    assert not watch.first_foreign("map", "odom", 26)  # once per link


def test_the_remembered_stamps_are_bounded():
    watch = OwnTransformWatch(remembered=2)
    for stamp in (1, 2, 3):
        watch.sent("a", "b", stamp)
    assert watch.first_foreign("a", "b", 1)  # forgotten: three sends later, heard back long ago in practice
