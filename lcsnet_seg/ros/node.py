"""The lcsnet_seg lifecycle node: camera images in, label mask / colour mask / overlay out.

    ros2 run lcsnet_seg segmentation_node --ros-args -r image:=/camera/image_raw

configure: validate parameters, load the model and backend, create the (lifecycle) publishers.
activate: subscribe and start processing. deactivate: stop. cleanup: free the backend.
Frames go from the subscription callback to one worker thread (ros/frame_worker.py), so the
newest frame is always the next one processed; the node itself is glue: parameters, lifecycle,
topics, messages <-> arrays.
"""

from __future__ import annotations

import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from lcsnet_seg.errors import ImageError, LcsnetError
from lcsnet_seg.image_messages import message_to_array
from lcsnet_seg.pipeline import build_segmenter
from lcsnet_seg.ros import params, qos
from lcsnet_seg.ros.diagnostics import NodeHealth, diagnostic_array
from lcsnet_seg.ros.frame_worker import LatestFrameWorker, PendingSettings
from lcsnet_seg.ros.input_watch import InputWatch
from lcsnet_seg.ros.names import NODE_NAME
from lcsnet_seg.ros.output_publishers import OutputPublishers
from lcsnet_seg.segmentation import FrameSegmenter
from lcsnet_seg.stats import Counters

# Run-time parameters that the Segmenter holds: applied by the worker between frames.
SEGMENTER_SETTINGS = ("overlay_alpha", "output_size")
# dropped: replaced by a newer frame before the worker took it; lost: never reached the node (sequence gaps,
# lost-message events)
COUNTERS = ("frames_received", "frames_processed", "frames_dropped", "frames_lost", "frames_bad", "frames_failed")


class SegmentationNode(LifecycleNode):
    """LCSNet semantic segmentation as a ROS 2 managed (lifecycle) node."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in params.PARAMETERS:
            self.declare_parameter(spec.name, params.declared_value(spec), params.descriptor(spec))
        self._report_unknown_overrides()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # from build_segmenter at configure; used by the worker thread only while active
        self._segmenter: FrameSegmenter | None = None
        self._outputs: OutputPublishers | None = None
        self._diagnostics_pub: Publisher | None = None
        self._input_subs: list[Subscription] = []
        self._image_sub: Subscription | None = None
        self._diag_timer: Timer | None = None
        self._camera_info: CameraInfo | None = None
        self._settings = PendingSettings(SEGMENTER_SETTINGS, {"overlay_alpha": float})
        self._worker = LatestFrameWorker(
            self.process,
            on_drop=lambda: self._counters.add("frames_dropped"),
            before_frame=lambda: self._settings.apply_to(self._segmenter),
        )
        self._counters = Counters(*COUNTERS, "qos_incompatible_events")
        self._health = NodeHealth(self._counters)
        self._model_path = ""
        self._backend_desc = ("none", "none")
        self._topic = "image"
        self._input_watch = InputWatch(self._topic)

    def param(self, name: str):
        """A parameter's value; None for an unset (model-default) one."""
        value = params.plain_value(self.get_parameter(name).value)
        return None if value is None or (isinstance(value, (list, tuple)) and len(value) == 0) else value

    @property
    def autostart(self) -> bool:
        return bool(self.param("autostart"))

    def _report_unknown_overrides(self) -> None:
        """A misspelt name in a parameter file is otherwise ignored in silence."""
        for error in params.unknown_overrides(getattr(self, "_parameter_overrides", {}) or {}, self.get_name()):
            self.get_logger().error(error)

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        state = {State.PRIMARY_STATE_UNCONFIGURED: "unconfigured", State.PRIMARY_STATE_INACTIVE: "inactive"}.get(
            self._state_id(), "active"
        )
        why = params.check_changes([(p.name, p.value) for p in changes], state)
        if why:
            return SetParametersResult(successful=False, reason=why)
        self._settings.queue({p.name: p.value for p in changes})
        return SetParametersResult(successful=True)

    def _state_id(self) -> int:
        machine = getattr(self, "_state_machine", None)
        return machine.current_state[0] if machine is not None else State.PRIMARY_STATE_UNCONFIGURED

    def on_configure(self, state) -> TransitionCallbackReturn:
        why = next(filter(None, (params.check_value(s, self.param(s.name)) for s in params.PARAMETERS)), None)
        if why:
            self.get_logger().error(f"configure failed: parameter {why}")
            return TransitionCallbackReturn.FAILURE
        started = time.monotonic()
        self._settings.clear()  # the Segmenter is built with the current values
        try:
            model_path, arguments = params.segmenter_arguments(self.param)
            segmenter, why = build_segmenter(model_path, **arguments)
        except LcsnetError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # a backend library's own error: still one line, the node stays up
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._segmenter = segmenter
        self._model_path = model_path
        backend = segmenter.backend
        self._backend_desc = (backend.name, segmenter.device)
        self._outputs = OutputPublishers(
            self,
            qos.profile(self.param("output_qos_reliability"), 1),
            qos.PublisherEventCallbacks(incompatible_qos=self._on_incompatible_qos_pub),
            camera_info=bool(self.param("use_camera_info")),
        )
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        info = segmenter.info
        self.get_logger().info(
            f"configured in {time.monotonic() - started:.1f} s: backend {backend.name} on "
            f"{backend.device} ({why}); model {model_path}; input {info.input_size[1]}x"
            f"{info.input_size[0]}, {info.num_classes} classes"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        compressed = self.param("input_transport") == "compressed"
        name = "image/compressed" if compressed else "image"
        self._topic = qos.resolved(self, name)
        events = qos.SubscriptionEventCallbacks(
            incompatible_qos=self._on_incompatible_qos_sub, message_lost=self._on_message_lost
        )
        profile = qos.profile(self.param("qos_reliability"), self.param("qos_depth"))
        kind = CompressedImage if compressed else Image
        self._image_sub = self.create_subscription(kind, name, self._on_image, profile, event_callbacks=events)
        self._input_subs.append(self._image_sub)
        if self.param("use_camera_info"):
            self._input_subs.append(self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, profile))
        self._input_watch = InputWatch(self._topic)
        self._worker.start()
        self._diag_timer = self.create_timer(self.param("diagnostics_period"), self._publish_diagnostics)
        self.get_logger().info(f"active: segmenting {self._topic}")
        result = super().on_activate(state)
        self._publish_diagnostics()  # what runs, at once: a short run still learns the backend
        return result

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.stop_processing()
        totals = self._counters.totals()
        self.get_logger().info(
            f"inactive: stopped segmenting {self._topic} ({totals['frames_processed']} of "
            f"{totals['frames_received']} frames received so far segmented)"
        )
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self.release()
        self.get_logger().info("unconfigured: backend released; configure-time parameters may change now")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        result = self._stop_and_release()
        self.get_logger().info("finalized: shut down, backend released")
        return result

    def on_error(self, state) -> TransitionCallbackReturn:
        self.get_logger().error("a transition raised an error; releasing resources, the node returns to unconfigured")
        return self._stop_and_release()

    def _stop_and_release(self) -> TransitionCallbackReturn:
        self.stop_processing()
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def stop_processing(self) -> None:
        """Stop the worker (after the frame in progress) and the subscriptions and timers."""
        if not self._worker.stop(timeout=10.0):
            self.get_logger().error("the frame worker did not stop within 10 s; continuing without it")
        for sub in self._input_subs:
            self.destroy_subscription(sub)
        self._input_subs.clear()
        self._image_sub = None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None

    def release(self) -> None:
        """Free the publishers and the backend (idempotent)."""
        if self._outputs is not None:
            self._outputs.destroy()
            self._outputs = None
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        segmenter, self._segmenter = self._segmenter, None
        if segmenter is not None:
            segmenter.close()
        self._camera_info = None
        self._health.stats.clear()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_image(self, msg, message_info) -> None:
        """A frame from the subscription (rclpy passes its MessageInfo: a second parameter asks for it)."""
        self._counters.add("frames_received")
        self._health.input_rate.tick()
        lost = self._input_watch.arrived(message_info)
        if lost:
            self._counters.add("frames_lost", lost)
        self._worker.offer(msg)

    def process(self, msg, received_at: float) -> None:
        """Segment one message and publish the requested outputs. Never raises."""
        segmenter, outputs = self._segmenter, self._outputs
        if segmenter is None or outputs is None:
            return
        wanted = outputs.wanted(self.param, bool(self.param("force_outputs")))
        if not wanted:  # decided before decoding: nobody wants this frame's outputs
            return
        t0 = time.perf_counter()
        try:
            image, encoding = message_to_array(msg)
        except ImageError as exc:
            self._count_bad_image(exc)
            return
        t1 = time.perf_counter()
        try:
            result = segmenter(image, encoding, outputs=tuple(o.field for o in wanted))
            t2 = time.perf_counter()
            outputs.publish(msg.header, wanted, result, self._camera_info)
        except ImageError as exc:
            self._count_bad_image(exc)
            return
        except Exception as exc:  # noqa: BLE001 - a frame must never take the node down
            failed = self._counters.add("frames_failed")
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.get_logger().error(
                f"frame failed: {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno}; {failed} so far)",
                throttle_duration_sec=5.0,
            )
            return
        t3 = time.perf_counter()
        self._counters.add("frames_processed")
        self._health.output_rate.tick()
        self._health.stats.add_frame((t1 - t0) * 1e3, result.timings_ms, (t3 - t2) * 1e3, (t3 - received_at) * 1e3)

    def _count_bad_image(self, exc: ImageError) -> None:
        bad = self._counters.add("frames_bad")
        self.get_logger().warning(
            f"dropped a bad image on {self._topic}: {exc} ({bad} so far)", throttle_duration_sec=5.0
        )

    def _on_incompatible_qos_sub(self, info) -> None:
        self._counters.add("qos_incompatible_events")
        self.get_logger().error(
            qos.input_mismatch(self._topic, info, self.param("qos_reliability"), self.param("qos_depth"))
        )

    def _on_incompatible_qos_pub(self, info) -> None:
        self._counters.add("qos_incompatible_events")
        self.get_logger().error(qos.output_mismatch(info, self.param("output_qos_reliability")))

    def _on_message_lost(self, info) -> None:
        counted = self._input_watch.lost_events(int(getattr(info, "total_count_change", 1)))
        if counted:  # else the publisher's sequence gaps have counted these frames already
            self._counters.add("frames_lost", counted)

    def _publish_diagnostics(self) -> None:
        if self._diagnostics_pub is None:
            return
        try:
            self._diagnostics_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), self._status()))
        except Exception as exc:  # noqa: BLE001 - a status report must never take the node down
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.get_logger().error(
                f"diagnostics failed: {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})",
                throttle_duration_sec=30.0,
            )

    def _status(self):
        sub = self._image_sub
        problem = (
            None
            if sub is None
            else self._input_watch.problem(
                publishers=self.count_publishers(self._topic),
                matched=sub.get_publisher_count(),
                reliability=self.param("qos_reliability"),
            )
        )
        if problem:
            self.get_logger().warning(problem, throttle_duration_sec=30.0)
        outputs = self._outputs
        idle = (
            sub is not None
            and outputs is not None
            and not outputs.wanted(self.param, bool(self.param("force_outputs")))
        )
        return self._health.status(
            self.get_name(), self._topic, self._backend_desc, self._model_path, problem, idle=idle
        )

    @property
    def counters(self) -> dict[str, int]:
        return self._counters.totals()
