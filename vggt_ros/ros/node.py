# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The `vggt` node: synchronised camera images -> sliding window -> VGGT -> one chained world -> cloud, depth,
CameraInfo, TF, path and map.

A thin layer over the ROS-free live logic (`vggt_ros.live`): `input.InputAssembly` turns messages into frame sets
(decoding, stamp rules, approximate-time sync, depth pairing), `reconstruction.LiveReconstruction` runs them
through the session (keyframes, window, network, Sim(3) chaining into the world of the very first image, the map)
and counts the outcomes, `robot.RobotPlacement` places the world among the robot's frames, `health` judges the
counters, `log_policy.LogPolicy` keeps the log to one line per problem. This file owns the ROS side: the lifecycle,
the publishers, the subscriptions and services, the timers and the worker thread.

Threads: the executor thread runs the subscription callbacks (conversion, sync, `session.add`: cheap), the
timers and the services; one worker thread runs each window (inference, then the world under its lock) and
publishes it; the map thread (`map_output.MapOutput`) builds the ~/map message, which the map timer publishes; the
save thread writes each ~/save (tens of seconds with the dataset's images), whose answer the executor sends when it
is done. The publishers are plain ones, not lifecycle publishers: the outputs are offered from configure
and only the camera subscriptions follow activation, so a deactivated node still answers ~/save and keeps its
latched map, as before lifecycle support. ~/save and ~/reset are offered in every state (unconfigured, they say
there is nothing to act on), so that an answer due is never sent through a service that cleanup destroyed.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
from typing import Optional

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockChange, ClockType, JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.task import Future
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from vggt_ros.live.health import HealthMonitor, HealthSnapshot, RobotState
from vggt_ros.live.input import InputAssembly
from vggt_ros.live.input_watchdog import TRANSPORTS_VARIABLE
from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.live.parameters import NodeParameters
from vggt_ros.live.reconstruction import LiveReconstruction, LoopUpdate
from vggt_ros.live.robot import OdometryOwner, RobotPlacement
from vggt_ros.live.saving import save_world
from vggt_ros.live.stamps import NANOSECONDS, ns_from_stamp
from vggt_ros.live.startup import StartupError, load_session
from vggt_ros.live.tf_watch import OwnTransformWatch
from vggt_ros.mapping import EmptyMapError, require_open3d
from vggt_ros.ros import diagnostics, messages, qos
from vggt_ros.ros.map_output import MapOutput
from vggt_ros.ros.outputs import (
    Output,
    StaticTransforms,
    loop_messages,
    map_message,
    map_odom_message,
    odometry_messages,
    publisher_specs,
    robot_tree_messages,
    topic,
    window_messages,
    world_frame_message,
    world_placement,
)
from vggt_ros.ros.params import declare_and_read, expected_type
from vggt_ros.ros.tf_listener import make_transform_buffer
from vggt_ros.session import WindowOutput
from vggt_ros.world.pose_graph import require_gtsam

NODE_NAME = "vggt"
DIAGNOSTICS_QOS = 10
# ROS' service default (reliable, volatile, keep last) with room for many requests at once.
SAVE_SERVICE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
__all__ = ["NODE_NAME", "TRANSPORTS_VARIABLE", "ReconstructionNode", "StartupError", "main"]


class ReconstructionNode(LifecycleNode):
    """Subscribes to ``image_topics`` and publishes VGGT's reconstruction of each window (see docs/node.md).

    A lifecycle node: configure loads the weights or engines and creates the outputs and services (the world
    starts empty); activate subscribes to the cameras; deactivate unsubscribes, keeping the world and the map;
    cleanup stops the worker and frees the pipeline (and the GPU memory torch cached). With ``autostart`` (the
    default) the constructor configures and activates, as a plain node would start.
    """

    def __init__(self, **node_kwargs) -> None:
        try:
            super().__init__(NODE_NAME, **node_kwargs)
        except ParameterException as err:
            # rclpy declares its own parameters (use_sim_time, start_type_description_service: both booleans) here
            raise StartupError(f"bad parameter: {err}. {expected_type(bool)}") from None
        self._worker: Optional[threading.Thread] = None
        self._map_output: Optional[MapOutput] = None
        self._configured = False
        self._image_subscriptions: list = []
        self._tf_watch = None  # the /tf subscription of `_watch_tf`, made by configure
        self._configure_error = ""
        self._autostarting = False
        self._static_transforms = StaticTransforms()  # what went out on /tf_static, resent with each message
        # map -> odom with robot frames and loop closure: set by the worker, sent by a timer (`_publish_map_odom`)
        self._map_from_odom: Optional[np.ndarray] = None
        self._placement_unsent = False  # a world was placed whose transform waits for its first published window
        self._clock_jumps = None
        self._log = LogPolicy(self.get_logger())
        try:
            self.params = declare_and_read(self)
        except ValueError as err:
            self._destroy()
            raise StartupError(f"bad parameter: {err}") from None
        # The CPU-side work (preprocessing and products on a CPU device, the world, message packing) uses this
        # many intra-op threads: OpenMP threads spin-wait on a sibling that another process descheduled.
        torch.set_num_threads(self.params.cpu_threads)
        params = self.params
        # One save at a time, off the executor, from configure to cleanup; the services live as long as the node
        # (see the module docstring).
        self._saves: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._last_save: Optional[concurrent.futures.Future] = None
        self.saves_in_flight = 0  # ~/save requests not answered yet (the entry point spins until they are)
        self.create_service(Trigger, "~/reset", self._on_reset)
        # A reentrant group of its own: the default group (every other callback) is mutually exclusive, and a save in
        # progress, awaiting its thread, would hold it; and every request is taken at once (the pool runs them in
        # order), so none waits in the service's queue, whose default keeps only the last 10 of those that arrive
        # together.
        self.create_service(
            Trigger, "~/save", self._on_save, qos_profile=SAVE_SERVICE_QOS, callback_group=ReentrantCallbackGroup()
        )
        # TF look-ups: the rig without configured transforms, the odometry scale, the robot's frames. They listen
        # from construction, whatever the state: a robot's /tf_static was published long before.
        self._transforms = make_transform_buffer(self) if params.reads_transforms else None
        # Time going back (a bag played in a loop under use_sim_time), as tf2_ros watches for it: any step back; and
        # forward by more than a timer period (the first /clock, a bag played from an offset).
        self._clock_jumps = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=Duration(seconds=1), min_backward=Duration(nanoseconds=-1), on_clock_change=True),
            post_callback=self._on_clock_jump,
        )
        self._robot = (
            RobotPlacement(self._transforms, params.odom_frame, params.robot_base_frame, _odometry_owner(params))
            if params.robot_frames
            else None
        )
        if not params.autostart:
            self.get_logger().info("waiting to be configured and activated (autostart is false)")
            return
        self._autostarting = True
        configured = self.trigger_configure()
        self._autostarting = False
        if configured != TransitionCallbackReturn.SUCCESS:
            self._destroy()
            raise StartupError(self._configure_error)
        self.trigger_activate()

    @property
    def counts(self):
        """The pipeline's counters (`vggt_ros.live.health.PipelineCounters`)."""
        return self._live.counters

    @property
    def images_received(self) -> int:
        return self._input.images_received

    # ------------------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as err:  # noqa: BLE001 - rclpy's lifecycle wrapper swallows what escapes, reason and all
            self._configure_error = str(err) if isinstance(err, StartupError) else _unforeseen(err)
            if not self._autostarting:  # autostart ends the process with this error as its one FATAL line
                self.get_logger().error(self._configure_error)
            self._release()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._subscribe()
        except Exception as err:  # noqa: BLE001 - see `_transition_failed`
            return self._transition_failed("activate", err)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._unsubscribe()
        except Exception as err:  # noqa: BLE001 - see `_transition_failed`
            return self._transition_failed("deactivate", err)
        dropped = self._live.drop_waiting()
        waiting = f"; the window waiting for inference was dropped ({dropped} new frame sets)" if dropped else ""
        self.get_logger().info(f"deactivated: not listening; the world and the map are kept{waiting}")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._release()
        except Exception as err:  # noqa: BLE001 - see `_transition_failed`
            return self._transition_failed("cleanup", err)
        self.get_logger().info("cleaned up: the pipeline and the world are released")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition failed (ERROR): rclpy moves the node to unconfigured, so it must hold nothing configure
        made. It kept its publishers, timers and threads, and the next configure made a second set of them."""
        try:
            self._unsubscribe()
        finally:
            self._release()
        self.get_logger().warning("the node released what configure made and is unconfigured: configure it again")
        return super().on_error(state)

    def _transition_failed(self, transition: str, err: Exception) -> TransitionCallbackReturn:
        """Log why ``transition`` failed (rclpy's lifecycle wrapper swallows what escapes, reason and all) and
        answer ERROR, which runs `on_error`."""
        self.get_logger().error(f"{transition} failed: {type(err).__name__}: {err}")
        return TransitionCallbackReturn.ERROR

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        """Load the pipeline and create everything but the camera subscriptions. Raises StartupError."""
        params = self.params
        self._log.clear(())  # a new configuration reports its state afresh (once-only warnings included)
        try:
            require_open3d()
            if params.loop_closure:
                require_gtsam()
            runtime = params.runtime_config()
        except (ImportError, RuntimeError, ValueError) as err:
            raise StartupError(str(err)) from None
        session = load_session(runtime, params.session_config(), self._transforms)
        self._live = LiveReconstruction(
            session, self._log, params.world_frame_id, params.save_dataset_frames, params.publish_path
        )
        self._configured = True
        # Made here and destroyed by _release, which also runs when configure fails before all of them are made.
        self._owned_timers: list = []
        self._output_publishers: dict[Output, object] = {}
        self._diagnostics_publisher = None
        self._create_outputs()
        # Another publisher of what the node sends on /tf (a localisation's map -> odom, a second node's frames).
        self._own_transforms = OwnTransformWatch()
        self._tf_watch = self.create_subscription(TFMessage, "/tf", self._watch_tf, qos.TF)
        # The resolved names (namespace, remapping) are the ones the ROS graph and the user's tools show.
        topics = self._image_topics() + [self.resolve_topic_name(t) for t in params.depth_topics]
        self._input = InputAssembly(
            params.input_config(tuple(topics), session.config.window.max_reorder_s), self._log, clock=self._now_s
        )
        self._worker = threading.Thread(target=self._work, name="vggt-inference", daemon=True)
        self._worker.start()
        self._saves = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vggt-save")
        self._health = self._new_health_monitor()
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, diagnostics.TOPIC, DIAGNOSTICS_QOS)
        self._owned_timers += [
            # Checking twice per timeout reports a quiet topic between 1 and 1.5 timeouts after it went quiet.
            self.create_timer(params.input_timeout_s / 2, self._check_inputs),
            self.create_timer(diagnostics.PERIOD_S, self._publish_diagnostics),
        ]
        # Under sim time the timers above wait for /clock: say so if it never comes. On a steady clock, and always
        # created, since use_sim_time can be set at run time.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._clock_at_check = (0, 0)  # (the node's clock in ns, images received) at the last clock check
        self._owned_timers.append(self.create_timer(params.input_timeout_s, self._check_clock, clock=steady))

    def _create_outputs(self) -> None:
        """One publisher per output the window builder can produce (vggt_ros.ros.outputs), keyed like its messages."""
        params = self.params
        for output, msg_type, profile in publisher_specs(params, robot_frames=self._robot is not None):
            self._add_publisher(output, msg_type, profile)
        if params.publish_tf and self._robot is None:  # with robot frames, once the world is placed
            self._publish([(Output("tf_static"), world_frame_message(params, self.get_clock().now().nanoseconds))])
        if params.publish_map:
            self._map_output = MapOutput(
                self._live,
                lambda points, colors, stamp_ns: map_message(params, points, colors, stamp_ns),
                params.map_publish_period_s,
                lambda err: self._log.every("error", ("map",), f"the map could not be built: {err}"),
            )
            self._owned_timers.append(self.create_timer(params.map_publish_period_s, self._publish_map))
        if params.publishes_map_odom:
            self._owned_timers.append(self.create_timer(params.map_odom_period_s, self._publish_map_odom))

    def _add_publisher(self, output: Output, msg_type: type, qos) -> None:
        self._output_publishers[output] = self.create_publisher(msg_type, topic(self.params, output), qos)

    def _subscribe(self) -> None:
        """Listen to the cameras (and depth): the active state."""
        params = self.params
        compressed = params.image_transport == "compressed"
        topics = self._image_topics()
        # A raw topic is subscribed by its name as given, which rcl remaps once (given resolved, it would be
        # remapped twice: a swap of two cameras' topics undone); a compressed one by the resolved name's transport
        # topic, as image_transport's subscribers do.
        subscribed = topics if compressed else params.image_topics
        self._image_subscriptions = [
            self.create_subscription(
                CompressedImage if compressed else Image,
                name,
                self._image_callback(index, compressed),
                qos_profile_sensor_data,
                event_callbacks=SubscriptionEventCallbacks(message_lost=self._lost_callback(index)),
            )
            for index, name in enumerate(subscribed)
        ]
        self._image_subscriptions += [
            self.create_subscription(Image, name, self._depth_callback(index), qos_profile_sensor_data)
            for index, name in enumerate(params.depth_topics)
        ]
        # Images can be lost silently (sensor-data QoS, see TRANSPORTS_VARIABLE): check that they arrive, from now.
        self._input.start_listening()
        # A namespace leaves frame ids as they are, and /tf is one tree: two robots' nodes would share frames.
        shared_frames = self.get_namespace() != "/" and not params.frame_prefix
        self.get_logger().info(
            f"listening to {topics} as {list(params.names)}; backend {params.backend} on "
            f"{params.device}, window {params.window_size} (stride {params.window_stride}), "
            f"publishing in '{params.world_frame_id}' under '{params.parent_frame}'"
            + (
                f" (frame ids are not namespaced: with several robots on one /tf, set frame_prefix, e.g. "
                f"'{self.get_namespace().strip('/')}/')"
                if shared_frames
                else ""
            )
        )

    def _image_topics(self) -> list[str]:
        """The topic each camera's images are read from, as the ROS graph names it: its image topic after namespace
        and remapping, then image_transport's suffix (so that remapping the image topic moves its transport topic
        too, as image_transport's subscribers do)."""
        suffix = "/compressed" if self.params.image_transport == "compressed" else ""
        return [self.resolve_topic_name(topic) + suffix for topic in self.params.image_topics]

    def _unsubscribe(self) -> None:
        """Stop listening (inactive): images in flight are dropped, a window being inferred still finishes (and is
        published), the one waiting for it is dropped (`on_deactivate`)."""
        for subscription in self._image_subscriptions:
            self.destroy_subscription(subscription)
        self._image_subscriptions = []
        if self._configured:
            self._input.stop_listening()

    def _release(self) -> None:
        """Stop the worker and free what configure made (the pipeline with it: torch frees its GPU memory)."""
        if not self._configured:
            return
        self._configured = False
        self._live.close()
        if self._map_output is not None:
            self._map_output.close()
            self._map_output = None
        if self._worker is not None:
            # Until the window in inference is done: the worker publishes it and then uses the session, which is
            # released below (minutes for VGGT-1B on a CPU; no pipeline may outlive cleanup).
            self._worker.join(timeout=1.0)
            if self._worker.is_alive():
                self.get_logger().info("waiting for the window in inference to finish")
                self._worker.join()
            self._worker = None
        if self._saves is not None:  # after every save asked for (they read the session): the last one
            if self._last_save is not None and not self._last_save.done():
                self.get_logger().info("waiting for the save in progress to finish")
            self._saves.shutdown(wait=True)
            self._saves, self._last_save = None, None
        unsaved = self._live.merged_windows - self._live.saved_windows
        if unsaved:
            self.get_logger().warning(
                f"the world is released with {unsaved} window(s) merged since the last ~/save, never saved (call "
                f"~/save before a cleanup or a shutdown to keep them in {self.params.save_folder})"
            )
        for timer in self._owned_timers:
            self.destroy_timer(timer)
        if self._tf_watch is not None:
            self.destroy_subscription(self._tf_watch)
            self._tf_watch = None
        for publisher in [*self._output_publishers.values(), self._diagnostics_publisher]:
            if publisher is not None:  # the diagnostics publisher is made last
                self.destroy_publisher(publisher)
        self._owned_timers, self._output_publishers = [], {}
        self._diagnostics_publisher = None
        self._static_transforms.clear()  # the next configure starts a new world
        self._map_from_odom = None
        self._placement_unsent = False
        self._live.session = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------------------- executor thread
    def _image_callback(self, camera: int, compressed: bool):
        def on_image(msg, info) -> None:
            gid = info.get("publisher_gid")
            self._input.count_missed(camera, gid["data"] if gid else None, info.get("publication_sequence_number"))
            stamp_ns = ns_from_stamp(msg.header.stamp)
            now_ns = self.get_clock().now().nanoseconds
            assembled = self._input.add_image(camera, msg, stamp_ns, now_ns, compressed)
            if assembled.restart:
                self._live.request_reset()
                if self._transforms is not None:  # a bag loop without use_sim_time: its odometry goes back too
                    self._transforms.clear()
            if assembled.frame_set is not None and self._live.offer(assembled.frame_set):
                self._input.keep_depth(assembled.frame_set)

        return on_image

    def _lost_callback(self, camera: int):
        transports = os.environ.get(TRANSPORTS_VARIABLE, "(unset)")
        return lambda info: self._input.images_lost(camera, info.total_count_change, transports)

    def _depth_callback(self, camera: int):
        return lambda msg: self._input.add_depth(
            camera, msg, ns_from_stamp(msg.header.stamp), self.get_clock().now().nanoseconds
        )

    def _check_inputs(self) -> None:
        """Warn, per image topic, when no image has arrived for input_timeout_s: the likely cause and its fix."""
        if not self._image_subscriptions:  # inactive: not listening, nothing to miss
            return
        config = self._input.config
        counts, other_types = {}, {}
        for name, expected in zip(config.topics, config.topic_types):
            types = [info.topic_type for info in self.get_publishers_info_by_topic(name)]
            counts[name] = types.count(expected)
            other_types[name] = sorted(set(types) - {expected})
        self._input.check_inputs(counts, os.environ.get(TRANSPORTS_VARIABLE, "(unset)"), other_types)

    def _publish_diagnostics(self) -> None:
        components = self._health.update(self._health_snapshot())
        stamp_ns = self.get_clock().now().nanoseconds
        self._diagnostics_publisher.publish(
            diagnostics.diagnostic_array(self.get_name(), self.get_fully_qualified_name(), components, stamp_ns)
        )

    def _health_snapshot(self) -> HealthSnapshot:
        params = self.params
        backend = (params.backend, params.device, params.precision, params.metric_scale_source)
        live, robot = self._live, self._robot
        placement = (
            None
            if robot is None
            else RobotState(
                robot.odom_frame,
                robot.base_frame,
                robot.odom_from_world is not None,
                robot.problem,
                robot.awaits_metric,
            )
        )
        return live.counters.snapshot(
            self._now_s(),
            self._input.camera_counts(),
            *backend,
            live.loop_state(),
            self._input.last_synced_s,
            placement,
            self._input.depth_dropped(),
        )

    def _new_health_monitor(self) -> HealthMonitor:
        """A monitor whose rates start now (configure, a clock jump)."""
        return HealthMonitor(self.params.health_thresholds(), diagnostics.PERIOD_S, self._health_snapshot())

    def _now_s(self) -> float:
        """Seconds on the node's clock: ROS time, the bag's /clock under use_sim_time, which the timers follow too;
        0 under use_sim_time until the first /clock."""
        return self.get_clock().now().nanoseconds / 1e9

    def _check_clock(self) -> None:
        clock = self.get_clock()
        now_ns, images = clock.now().nanoseconds, self._input.images_received
        last_ns, last_images = self._clock_at_check
        self._clock_at_check = (now_ns, images)
        if not clock.ros_time_is_active:
            return
        if now_ns == 0:
            self._log.every(
                "warning",
                ("clock",),
                "use_sim_time is true but no /clock has arrived: the map, /diagnostics and the input checks wait "
                "for it (the clouds do not). Fix: play the bag with --clock (ros2 bag play --clock), or set "
                "use_sim_time false",
            )
        elif now_ns == last_ns and images > last_images:
            # Images, but a clock that stands still: its /clock publisher stopped (a paused bag sends no images), or
            # use_sim_time was switched back on with none: the node's time stays at the last /clock heard.
            self._log.every(
                "warning",
                ("clock", "still"),
                f"use_sim_time is true and images arrive, but /clock has not moved for {self.params.input_timeout_s:g} "
                f"s (the node's time stands at {now_ns / 1e9:.3f} s, the last /clock heard): the map, /diagnostics and "
                "the input checks wait for it. Fix: play the bag with --clock, or set use_sim_time false",
            )

    def _on_clock_jump(self, jump: TimeJump) -> None:
        """The clock jumped: the input's and the health's times start over from now (a jump is no executor stall and
        no quiet camera). Where it went back or changed source, the transforms heard before are dropped too (tf2's
        rule: the new ones would be refused as too old)."""
        if self._configured:
            self._input.restart_clock()
            self._health = self._new_health_monitor()
        changed = jump.clock_change in (ClockChange.ROS_TIME_ACTIVATED, ClockChange.ROS_TIME_DEACTIVATED)
        if not changed and jump.delta.nanoseconds > 0:
            return
        if self._transforms is not None:
            self._transforms.clear()
        what = (
            "changed source (use_sim_time changed)"
            if changed
            else f"went back by {-jump.delta.nanoseconds / 1e9:.3f} s (a bag played in a loop?)"
        )
        self.get_logger().warning(f"the clock {what}: transforms and input times start over")

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self._configured:
            response.success, response.message = False, "nothing to reset: the node is not configured"
            return response
        self._input.reset()
        self._live.request_reset()
        self.get_logger().info("reset requested: the next window starts a new world and an empty map")
        response.success = True
        response.message = "the next window starts a new world; until then ~/save saves this one"
        return response

    async def _on_save(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Hand the save to the save thread and answer when it is done; the executor goes on meanwhile (a save of 50
        keyframes at 1280x720, mostly PNG encoding, stopped map -> odom, /diagnostics, the cameras' input and the
        lifecycle services for 20 s)."""
        not_configured = False, "nothing to save: the node is not configured"
        if self._saves is None:  # the save thread lives from configure to cleanup
            response.success, response.message = not_configured
            return response
        answer = Future(executor=self.executor)
        answer.add_done_callback(lambda _: None)  # the executor runs it as a task: that wakes it to resume here
        directory = self.params.save_folder
        try:
            job = self._last_save = self._saves.submit(self._save, self._live, directory)
        except RuntimeError:  # the pool shut down meanwhile (a cleanup, under a multi-threaded executor)
            response.success, response.message = not_configured
            return response
        job.add_done_callback(lambda finished: answer.set_result(_save_answer(finished)))
        self.saves_in_flight += 1
        try:
            response.success, response.message = await answer
        finally:
            self.saves_in_flight -= 1
        return response

    def _save(self, live: LiveReconstruction, directory) -> tuple[bool, str]:
        """The save thread's job: (success, message), logged."""
        logger = self.get_logger()
        try:
            placement = world_placement(self.params, self._robot)
            saved = save_world(live, directory, self.get_fully_qualified_name(), placement)
            message = saved.message()
        except EmptyMapError as err:  # nothing to save yet: an answer, not a failure of the node
            message = f"nothing saved to '{directory}' (nothing there changed): {err}"
            logger.warning(message)
            return False, message
        except Exception as err:  # noqa: BLE001 - the caller waits for an answer
            what = str(err) if isinstance(err, (OSError, ValueError)) else f"{type(err).__name__}: {err}"
            message = f"could not save to '{directory}' (nothing there changed): {what}"
            logger.error(message)
            return False, message
        (logger.warning if saved.dataset_poses_before_loops else logger.info)(message)
        return True, message

    def _publish_map(self) -> None:
        """Publish the map message the map thread built (`MapOutput`): the executor never reads the map itself."""
        message = self._map_output.take() if self._map_output is not None else None
        if message is not None:
            self._output_publishers[Output("map")].publish(messages.publishable(message))

    # --------------------------------------------------------------------------------- worker thread
    def _work(self) -> None:
        live = self._live
        while (window := live.next_window()) is not None:
            try:
                out, path = live.process(window, self._input.depth_lookup())
                if out.merged:
                    self._publish_window(out, path)
                    loop = live.close_loops(out)
                    if loop is not None:
                        self._publish_loop(loop, out.window.frame_sets[-1].stamps_ns[0])
            except Exception as err:  # noqa: BLE001 - one bad window must not stop the node
                live.failed(window, err)

    def _publish_window(self, out: WindowOutput, path: list) -> None:
        params = self.params
        if self._robot is not None:
            self._follow_robot(out)
        if out.waiting_for_scale:
            return
        if self._placement_unsent:
            # The world's transform goes out with the first window published in it: before, a listener's newest
            # camera TF would be the old world's (after a reset) hung under the new world's placement.
            correction = self._live.session.world_correction() if params.publishes_map_odom else None
            robot = self._robot
            self._publish(robot_tree_messages(params, robot.origin_stamp_ns, robot, correction))
            self._placement_unsent = False
        self._publish(window_messages(params, out, path))
        odometry = self._robot.odometry(out) if self._robot is not None else None
        if odometry is not None:
            self._publish(odometry_messages(params, odometry))
        now_ns = self.get_clock().now().nanoseconds
        latency_s = (now_ns - out.window.frame_sets[-1].stamps_ns[0]) / 1e9 if now_ns else None  # no clock yet
        self._live.counters.published(now_ns / 1e9, latency_s)

    def _follow_robot(self, out: WindowOutput) -> None:
        """REP 105 with each merged window: the world's placement among the robot's frames (sent with the first
        window published in it), and map -> odom where the node closes loops."""
        params, robot = self.params, self._robot
        placed = robot.follow(out, self._log) is not None
        if params.publishes_map_odom:
            robot.observe(out, self._log)
        if placed:
            self._placement_unsent = True
            where = (
                "at its first image"
                if robot.placed_at_ns == robot.origin_stamp_ns
                else f"at its image of {robot.placed_at_ns / 1e9:.3f} s (the robot's odometry did not reach back to "
                "the world's first image)"
            )
            self.get_logger().info(
                f"world '{params.world_frame_id}' placed in '{params.odom_frame}' where camera '{params.names[0]}' was "
                + where
            )
        if not params.publishes_map_odom or not (placed or robot.follows_robot_odometry):
            return
        # Loops closed while the world waited for its placement move it already. The correction costs a pass over
        # the keyframes once loops closed: only where it is used.
        first_in_configuration = self._map_from_odom is None
        correction = self._live.session.world_correction()
        self._update_map_from_odom(correction)
        if placed and first_in_configuration:
            # The timer's map -> odom is stamped ahead of the clock: this one covers what was stamped since the
            # world's first image (the first ~/odometry, a scan), which would otherwise precede map. (After a reset
            # the last world's timer samples cover that time.)
            at_origin = robot.map_from_odom_at_origin(correction)
            self._publish([(Output("tf"), map_odom_message(params, robot.origin_stamp_ns, at_origin))])

    def _publish_loop(self, loop: LoopUpdate, stamp_ns: int) -> None:
        """A closed loop moves the world under ``parent_frame`` (REP 105's map -> odom: the chained camera poses,
        like odometry, never jump); the corrected path goes out now, the corrected map with the next map timer."""
        if self._robot is None or self._robot.odom_from_world is not None:
            self._publish(loop_messages(self.params, stamp_ns, loop.correction, loop.path, self._robot))
        if self.params.publishes_map_odom:
            self._update_map_from_odom(loop.correction)

    def _update_map_from_odom(self, correction: np.ndarray) -> None:
        """The map -> odom that `_publish_map_odom` sends from now on, for the world's loop ``correction``. Until a
        new world is placed the last one stays, as the old world's map -> world does on /tf_static."""
        world = self._live.session.world
        map_from_odom = self._robot.map_from_odom(correction, world.segment, world.joined_to_current)
        if map_from_odom is not None:
            self._map_from_odom = map_from_odom

    def _publish_map_odom(self) -> None:
        """map -> odom on /tf, stamped ``map_odom_tolerance_s`` past the clock (as nav2's AMCL and slam_toolbox do):
        the robot's odometry runs ahead of the windows, and a look-up of its newest pose in map needs map -> odom
        at that time."""
        map_from_odom = self._map_from_odom
        now_ns = self.get_clock().now().nanoseconds
        if map_from_odom is None or now_ns == 0:  # not placed, or no /clock yet under sim time
            return
        stamp_ns = now_ns + round(self.params.map_odom_tolerance_s * NANOSECONDS)
        self._publish([(Output("tf"), map_odom_message(self.params, stamp_ns, map_from_odom))])

    def _publish(self, pairs) -> None:
        for output, message in pairs:
            if output == Output("tf_static"):  # latched for one message: it carries every static transform sent
                message = self._static_transforms.merged(message)
            elif output == Output("tf"):
                for transform in message.transforms:
                    self._own_transforms.sent(
                        transform.header.frame_id, transform.child_frame_id, ns_from_stamp(transform.header.stamp)
                    )
            self._output_publishers[output].publish(messages.publishable(message))

    def _watch_tf(self, msg: TFMessage) -> None:
        """Warn, once per link, when a transform the node sends on /tf comes from another publisher too."""
        params = self.params
        for transform in msg.transforms:
            parent, child = transform.header.frame_id, transform.child_frame_id
            if not self._own_transforms.first_foreign(parent, child, ns_from_stamp(transform.header.stamp)):
                continue
            if child == params.odom_frame:
                fix = "a localisation node (nav2's AMCL, slam_toolbox) owns map -> odom: set loop_closure false"
            elif child == params.robot_base_frame:
                fix = "the robot has odometry of its own: set publish_odom_tf false"
            else:
                fix = "a second vggt node? give each its frame_prefix"
            self._log.logger.warning(
                f"another node publishes {parent!r} -> {child!r} on /tf too (at a stamp this node never sent): a "
                f"frame has one source, and lookups jump between the two. Fix: {fix}"
            )

    # ------------------------------------------------------------------------------------- shutdown
    def destroy_node(self) -> None:
        self._release()  # the worker finishes its window and the save thread its save while the context is valid
        self._destroy()

    def _destroy(self) -> None:
        # rclpy's LifecycleNode keeps its state machine, which holds the node's handle, past destroy_node: the node
        # (and its /rosout publisher) would outlive it, and a later node of the same name would log into the void.
        if self._clock_jumps is not None:
            self._clock_jumps.unregister()
        self._state_machine.destroy_when_not_in_use()
        super().destroy_node()


def _save_answer(job: concurrent.futures.Future) -> tuple[bool, str]:
    """A save job's (success, message); one that raised anyway (its log line, say) answers too: the caller waits."""
    try:
        return job.result()
    except Exception as err:  # noqa: BLE001 - reported in the answer
        return False, f"the save failed: {type(err).__name__}: {err}"


def _odometry_owner(params: NodeParameters) -> OdometryOwner:
    """Who publishes odom -> base: the node with publish_odom_tf; the robot where its odometry sets the scale."""
    if params.publish_odom_tf:
        return OdometryOwner.NODE
    return OdometryOwner.ROBOT if params.metric_scale_source == "odometry" else OdometryOwner.EITHER


def _unforeseen(err: Exception) -> str:
    """A configure failure no StartupError foresaw, as one report: its type and text (rclpy's own, e.g. a topic name
    or a timer period it refuses)."""
    return f"configure failed: {type(err).__name__}: {err}"


if __name__ == "__main__":  # python -m vggt_ros.ros.node: the same entry point as reconstruct_node
    from vggt_ros.ros.main import main

    sys.exit(main())
