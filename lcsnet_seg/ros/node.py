"""The lcsnet_seg lifecycle node: camera images in, label mask / colour mask / overlay out.

    ros2 run lcsnet_seg segmentation_node --ros-args -r image:=/camera/image_raw

configure: the parameters read once into a NodeConfig (ros/config.py), the Segmenter built, the cameras'
lifecycle publishers created (ros/cameras.py). activate: subscribe, process. deactivate: stop. cleanup: free.
Frames go from the subscription callbacks to one worker thread (ros/frame_worker.py): the newest frames are
always the next processed. The node is glue: parameters, lifecycle, topics, messages <-> arrays.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import replace

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.timer import Timer

from lcsnet_seg.errors import LcsnetError
from lcsnet_seg.ros import params, qos
from lcsnet_seg.ros.cameras import Camera
from lcsnet_seg.ros.config import SEGMENTER_SETTINGS, NodeConfig, node_config
from lcsnet_seg.ros.diagnostics import COUNTERS, NodeHealth, diagnostic_array
from lcsnet_seg.ros.frame_worker import LatestFrameWorker, PendingSettings
from lcsnet_seg.ros.names import NODE_NAME
from lcsnet_seg.ros.ticks import LastFrames, process_tick
from lcsnet_seg.segmenter import FrameSegmenter, build_segmenter
from lcsnet_seg.stats import Counters


class SegmentationNode(LifecycleNode):
    """LCSNet semantic segmentation as a ROS 2 managed (lifecycle) node."""

    STOP_TIMEOUT_S = 10.0  # how long deactivate waits for the frame in progress

    def __init__(self, **kwargs) -> None:
        # every override becomes a parameter first, so that a misspelt name can be told (public API only)
        super().__init__(NODE_NAME, automatically_declare_parameters_from_overrides=True, **kwargs)
        for error in params.declare_all(self):
            self.get_logger().error(error)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._state = "unconfigured"
        self._config: NodeConfig | None = None
        self._segmenter: FrameSegmenter | None = None
        self._cameras: list[Camera] = []
        self._last_frames = LastFrames()  # the worker's, reset at each activation
        self._diagnostics_pub: Publisher | None = None
        self._diag_timer: Timer | None = None
        self._settings = PendingSettings(SEGMENTER_SETTINGS, {"overlay_alpha": float})
        self._counters = Counters(*COUNTERS, "qos_incompatible_events")
        self._health = NodeHealth(self._counters)
        self._worker = LatestFrameWorker(
            self.process,
            on_drop=lambda camera: self._health.count(camera, "frames_dropped"),
            before_frame=lambda: self._settings.apply_to(self._segmenter),
        )

    def param(self, name: str):
        """A parameter's value; None for an unset (model-default) one."""
        value = params.plain_value(self.get_parameter(name).value)
        return None if value is None or (isinstance(value, (list, tuple)) and len(value) == 0) else value

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        values = {p.name: params.plain_value(p.value) for p in changes}
        why = params.check_changes(list(values.items()), self._state)
        if why:
            return SetParametersResult(successful=False, reason=why)
        self._settings.queue(values)
        if self._config is not None and any(k in values for k in params.OUTPUT_PARAMETERS):
            settings = self._config.outputs.with_changes(values)
            self._config = replace(self._config, outputs=settings)
            for camera in self._cameras:
                camera.apply(settings)
        return SetParametersResult(successful=True)

    def on_configure(self, state) -> TransitionCallbackReturn:
        started = time.monotonic()
        values, why = params.configure_values(self.param)
        if why:
            self.get_logger().error(f"configure failed: parameter {why}")
            return TransitionCallbackReturn.FAILURE
        self._settings.clear()  # the Segmenter is built with the current values
        try:
            config = node_config(values)
            self._segmenter, why = build_segmenter(config.model_path, config.segmenter)
            self._config, segmenter = config, self._segmenter
            for name in config.cameras or ("",):  # one by one: a failure part-way releases those made
                self._cameras.append(Camera(self, name, config, len(self._cameras)))
            self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        except Exception as exc:  # ours are one line already; a backend library's own gets its type: the node stays up
            self.release()  # whatever was built before the failure (the Segmenter, publishers)
            text = str(exc) if isinstance(exc, LcsnetError) else f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: {text}")
            return TransitionCallbackReturn.FAILURE
        info = segmenter.info
        self.get_logger().info(
            f"configured in {time.monotonic() - started:.1f} s: backend {segmenter.backend.name} on "
            f"{segmenter.backend.device} ({why}); model {config.model_path}; input {info.input_size[1]}x"
            f"{info.input_size[0]}, {info.num_classes} classes; decoder {self._decoder_description()}"
        )
        self._state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        assert self._config is not None  # configured
        for camera in self._cameras:
            camera.subscribe(self._on_image, self._on_incompatible_qos_sub, self._on_message_lost)
        self._worker.gather_s = self._config.batch_wait_ms / 1e3 if len(self._cameras) > 1 else 0.0
        self._last_frames.clear()
        self._worker.start()
        self._diag_timer = self.create_timer(self._config.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(f"active: segmenting {', '.join(c.topic for c in self._cameras)}")
        result = super().on_activate(state)
        self._state = "active"
        self._publish_diagnostics()  # what runs, at once: a short run still learns the backend
        return result

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.stop_processing()
        totals = self._counters.totals()
        self.get_logger().info(
            f"inactive: stopped segmenting {', '.join(c.topic for c in self._cameras)} "
            f"({totals['frames_processed']} of {totals['frames_received']} frames received so far segmented)"
        )
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self.release()
        self.get_logger().info("unconfigured: backend released; configure-time parameters may change now")
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        return self._stop_and_release("finalized", "finalized: shut down, backend released")

    def on_error(self, state) -> TransitionCallbackReturn:
        return self._stop_and_release("unconfigured", "a transition raised an error; resources released")

    def _stop_and_release(self, state: str, line: str) -> TransitionCallbackReturn:
        self.stop_processing()
        self.release()
        self.get_logger().info(line)
        self._state = state
        return TransitionCallbackReturn.SUCCESS

    def stop_processing(self) -> None:
        """Stop the worker (after the frame in progress) and the subscriptions and timers."""
        if not self._worker.stop(timeout=self.STOP_TIMEOUT_S):
            self.get_logger().error(
                f"the frame worker did not stop within {self.STOP_TIMEOUT_S:g} s; continuing without it"
            )
        for camera in self._cameras:
            camera.unsubscribe()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None

    def release(self) -> None:
        """Free the publishers and the Segmenter (idempotent). A worker that did not stop is told first: it
        finds no Segmenter from here on, so it cannot use a closed one."""
        cameras, self._cameras = self._cameras, []
        for camera in cameras:
            camera.destroy()
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        segmenter, self._segmenter = self._segmenter, None
        if segmenter is not None:
            segmenter.close()
        self._config = None
        self._health.forget()

    def _on_image(self, camera: Camera, msg, message_info) -> None:
        self._health.received(camera)
        lost = camera.watch.arrived(message_info)
        if lost:
            self._health.count(camera, "frames_lost", lost)
        self._worker.offer(camera, msg)

    def process(self, batch: list) -> None:
        """Segment one tick's frames (``[(camera, message, received_at), ...]``) in one batch and publish
        (ros/ticks.py). Never raises."""
        process_tick(self._segmenter, batch, self._health, self.get_logger(), self._last_frames)

    def _on_incompatible_qos_sub(self, camera: Camera, info) -> None:
        self._counters.add("qos_incompatible_events")
        config = camera.config
        self.get_logger().error(qos.input_mismatch(camera.topic, info, config.qos_reliability, config.qos_depth))

    def on_incompatible_output_qos(self, info) -> None:
        self._counters.add("qos_incompatible_events")
        self.get_logger().error(qos.output_mismatch(info, self._config.output_qos_reliability if self._config else "?"))

    def _on_message_lost(self, camera: Camera, info) -> None:
        counted = camera.watch.lost_events(int(getattr(info, "total_count_change", 1)))
        if counted:  # else the publisher's sequence gaps have counted these frames already
            self._health.count(camera, "frames_lost", counted)

    def _publish_diagnostics(self) -> None:
        if self._diagnostics_pub is None:
            return
        try:
            model = self._config.model_path if self._config else ""
            seg = self._segmenter
            backend = (seg.backend.name, seg.device) if seg is not None else ("none", "none")
            extra = {"decoder": self._decoder_description(), "cameras": str(len(self._cameras))}
            statuses = self._health.report(self, self._cameras, backend, model, self._state == "active", extra)
            self._diagnostics_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), statuses))
        except Exception as exc:  # noqa: BLE001 - a status report must never take the node down
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.get_logger().error(
                f"diagnostics failed: {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})",
                throttle_duration_sec=30.0,
            )

    def _decoder_description(self) -> str:
        """Which decoder runs (diagnostics, the configure line)."""
        if self._config is None or not self._config.compressed:
            return "none (raw images)"
        seg = self._segmenter
        if seg is not None and seg.jpeg_decoder is not None:
            return "gpu (nvImageCodec; PNG and refused frames on the CPU)"
        note = getattr(seg, "decoder_note", None)
        return f"cpu (OpenCV){'; ' + note if note else ''}"

    @property
    def counters(self) -> dict[str, int]:
        return self._counters.totals()
