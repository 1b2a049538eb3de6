"""The lcsnet_seg lifecycle node: camera images in, label mask / colour mask / overlay out.

    ros2 run lcsnet_seg segmentation_node --ros-args -r image:=/camera/image_raw

configure: validate parameters, load the model and backend, create the (lifecycle) publishers.
activate: subscribe and start processing. deactivate: stop. cleanup: free the backend.
Frames are handed from the subscription callback to one worker thread through a one-slot
mailbox, so the newest frame is always the next one processed. A frame that arrives while an
older one still waits replaces it and is counted as dropped.
"""

from __future__ import annotations

import difflib
import threading
import time
import traceback

import rclpy
from lifecycle_msgs.msg import State
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

try:  # Iron and newer
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

from diagnostic_msgs.msg import DiagnosticArray

from lcsnet_seg.backends import create_backend
from lcsnet_seg.errors import ImageError, LcsnetError
from lcsnet_seg.model import DEMO_ONNX
from lcsnet_seg.pipeline import make_segmenter
from lcsnet_seg.ros.diagnostics import build_status, diagnostic_array
from lcsnet_seg.image_messages import compressed_to_array, image_to_array
from lcsnet_seg.ros.image_codec import array_to_image
from lcsnet_seg.ros.params import BY_NAME, PARAMETERS, ParamSpec, check_value
from lcsnet_seg.stats import RateMeter, RollingStats

NODE_NAME = "lcsnet_seg"
# output topic -> (Segmenter output, enabling parameter)
OUTPUTS = {"label_mask": ("labels", "publish_label_mask"), "color_mask": ("color_mask", "publish_color_mask"),
           "overlay": ("overlay", "publish_overlay"), "confidence": ("confidence", "publish_confidence")}
_TYPES = {"bool": ParameterType.PARAMETER_BOOL, "int": ParameterType.PARAMETER_INTEGER,
          "float": ParameterType.PARAMETER_DOUBLE, "str": ParameterType.PARAMETER_STRING,
          "int[]": ParameterType.PARAMETER_INTEGER_ARRAY, "float[]": ParameterType.PARAMETER_DOUBLE_ARRAY}
_PARAM_TYPES = {"int[]": Parameter.Type.INTEGER_ARRAY, "float[]": Parameter.Type.DOUBLE_ARRAY}


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(name=spec.name, type=_TYPES[spec.kind], description=spec.description,
                            read_only=spec.name == "autostart")
    notes = []
    if spec.choices:
        notes.append("one of: " + ", ".join(spec.choices))
    if spec.reconfigure and spec.name != "autostart":
        notes.append("changes only while unconfigured (cleanup, set, configure)")
    d.additional_constraints = "; ".join(notes)
    if spec.float_range:
        d.floating_point_range = [FloatingPointRange(from_value=spec.float_range[0], to_value=spec.float_range[1])]
    if spec.int_range:
        d.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)]
    return d


class SegmentationNode(LifecycleNode):
    """LCSNet semantic segmentation as a ROS 2 managed (lifecycle) node."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMETERS:
            value = _PARAM_TYPES[spec.kind] if spec.default is None else spec.default
            self.declare_parameter(spec.name, value, _descriptor(spec))
        self._report_unknown_overrides()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._segmenter = None  # Segmenter or GpuSegmenter, from make_segmenter at configure
        self._output_pubs: dict[str, object] = {}
        self._camera_info_pub = None
        self._diagnostics_pub = None
        self._input_subs: list = []
        self._diag_timer = None
        self._camera_info: CameraInfo | None = None
        self._mailbox = None
        self._mailbox_cv = threading.Condition()
        self._worker: threading.Thread | None = None
        self._running = False
        self._stats = RollingStats()
        self._input_rate, self._output_rate = RateMeter(), RateMeter()
        self._counters = dict(frames_received=0, frames_processed=0, frames_dropped=0, frames_bad=0,
                              frames_failed=0, qos_incompatible_events=0)
        self._recent = dict(frames_bad_recent=0, frames_failed_recent=0)
        self._model_path = ""
        self._backend_desc = ("none", "none")
        self._topic = "image"

    # ------------------------------------------------------------------ parameters
    def param(self, name: str):
        """A parameter's value; None for an unset (model-default) or empty one."""
        try:
            value = self.get_parameter(name).value
        except ParameterUninitializedException:
            return None
        return None if value is None or (isinstance(value, (list, tuple)) and len(value) == 0) else value

    @property
    def autostart(self) -> bool:
        return bool(self.param("autostart"))

    def _report_unknown_overrides(self) -> None:
        """A misspelt name in a parameter file is otherwise ignored in silence."""
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        known = set(BY_NAME) | {"use_sim_time", "start_type_description_service"}
        for name in sorted(set(overrides) - known):
            close = difflib.get_close_matches(name, list(BY_NAME), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known parameters: {', '.join(BY_NAME)}"
            self.get_logger().error(f"parameter '{name}' given to {NODE_NAME} is not one of its parameters and is "
                                    f"ignored{hint}")

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        configured = self._state_id() != State.PRIMARY_STATE_UNCONFIGURED
        for p in params:
            spec = BY_NAME.get(p.name)
            if spec is None:
                continue
            if spec.reconfigure and configured and p.name != "autostart":
                return SetParametersResult(successful=False, reason=(
                    f"{p.name} is used at configure: change it while the node is unconfigured "
                    "(ros2 lifecycle set <node> deactivate, then cleanup)"))
            why = check_value(spec, p.value)
            if why:
                return SetParametersResult(successful=False, reason=why)
        segmenter = self._segmenter
        for p in params:
            if segmenter is not None and p.name == "overlay_alpha":
                segmenter.overlay_alpha = float(p.value)
            elif segmenter is not None and p.name == "output_size":
                segmenter.output_size = p.value
        return SetParametersResult(successful=True)

    def _state_id(self) -> int:
        machine = getattr(self, "_state_machine", None)
        return machine.current_state[0] if machine is not None else State.PRIMARY_STATE_UNCONFIGURED

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state) -> TransitionCallbackReturn:
        for spec in PARAMETERS:
            why = check_value(spec, self.param(spec.name))
            if why:
                self.get_logger().error(f"configure failed: parameter {why}")
                return TransitionCallbackReturn.FAILURE
        model_path = self.param("model_path") or str(DEMO_ONNX)
        overrides = {"input_size": self.param("input_size"), "mean": self.param("mean"), "std": self.param("std")}
        try:
            if self.param("classes_file"):
                from lcsnet_seg.classes import load_class_set

                overrides["classes"] = load_class_set(self.param("classes_file"))
            backend, why = create_backend(self.param("backend"), model_path, overrides, device=self.param("device"))
            self._segmenter = make_segmenter(backend, overlay_alpha=self.param("overlay_alpha"),
                                             output_size=self.param("output_size"), device_id=self.param("device"))
        except LcsnetError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # a backend library's own error: still one line, the node stays up
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._model_path = model_path
        self._backend_desc = (backend.name, getattr(self._segmenter, "device", backend.device))
        qos = self._qos(self.param("output_qos_reliability"), 1)
        events = PublisherEventCallbacks(incompatible_qos=self._on_incompatible_qos_pub)
        for topic in OUTPUTS:
            self._output_pubs[topic] = self.create_lifecycle_publisher(Image, f"~/{topic}", qos,
                                                                      event_callbacks=events)
        if self.param("use_camera_info"):
            self._camera_info_pub = self.create_lifecycle_publisher(CameraInfo, "~/camera_info", qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        info = self._segmenter.info
        self.get_logger().info(f"configured: backend {backend.name} on {backend.device} ({why}); model {model_path}; "
                               f"input {info.input_size[1]}x{info.input_size[0]}, {info.num_classes} classes")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        compressed = self.param("input_transport") == "compressed"
        self._topic = self._resolve("image/compressed" if compressed else "image")
        qos = self._qos(self.param("qos_reliability"), self.param("qos_depth"))
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos_sub,
                                            message_lost=self._on_message_lost)
        self._input_subs.append(self.create_subscription(
            CompressedImage if compressed else Image, "image/compressed" if compressed else "image",
            self._on_image, qos, event_callbacks=events))
        if self.param("use_camera_info"):
            self._input_subs.append(self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos))
        self._running = True
        self._worker = threading.Thread(target=self._work, name="lcsnet_seg_worker", daemon=True)
        self._worker.start()
        self._diag_timer = self.create_timer(self.param("diagnostics_period"), self._publish_diagnostics)
        self.get_logger().info(f"active: segmenting {self._topic}")
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._stop_processing()
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        self.get_logger().error("a transition raised an error; releasing resources, the node returns to unconfigured")
        self._stop_processing()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_processing(self) -> None:
        self._running = False
        with self._mailbox_cv:
            self._mailbox = None
            self._mailbox_cv.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None
        for sub in self._input_subs:
            self.destroy_subscription(sub)
        self._input_subs.clear()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None

    def _release(self) -> None:
        destroy = getattr(self, "destroy_lifecycle_publisher", self.destroy_publisher)
        for pub in list(self._output_pubs.values()) + ([self._camera_info_pub] if self._camera_info_pub else []):
            destroy(pub)
        self._output_pubs.clear()
        self._camera_info_pub = None
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None
        self._camera_info = None
        self._stats.clear()

    # ------------------------------------------------------------------ frames
    def _on_image(self, msg) -> None:
        self._counters["frames_received"] += 1
        self._input_rate.tick()
        with self._mailbox_cv:
            if self._mailbox is not None:
                self._counters["frames_dropped"] += 1
            self._mailbox = (msg, time.perf_counter())
            self._mailbox_cv.notify()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _work(self) -> None:
        while True:
            with self._mailbox_cv:
                while self._running and self._mailbox is None:
                    self._mailbox_cv.wait(timeout=0.5)
                if not self._running:
                    return
                item, self._mailbox = self._mailbox, None
            self.process(*item)

    def process(self, msg, received_at: float) -> None:
        """Segment one message and publish the requested outputs. Never raises."""
        segmenter = self._segmenter
        if segmenter is None:
            return
        t0 = time.perf_counter()
        try:
            if isinstance(msg, CompressedImage):
                image, encoding = compressed_to_array(msg)
            else:
                image, encoding = image_to_array(msg)
        except ImageError as exc:
            self._count_bad_image(exc)
            return
        wanted = self._wanted_outputs()
        if not wanted:
            return
        t1 = time.perf_counter()
        try:
            result = segmenter(image, encoding, outputs=tuple(OUTPUTS[t][0] for t in wanted))
            t2 = time.perf_counter()
            self._publish(msg.header, wanted, result)
        except ImageError as exc:
            self._count_bad_image(exc)
            return
        except Exception as exc:  # noqa: BLE001 - a frame must never take the node down
            self._counters["frames_failed"] += 1
            self._recent["frames_failed_recent"] += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno}; "
                                    f"{self._counters['frames_failed']} so far)", throttle_duration_sec=5.0)
            return
        t3 = time.perf_counter()
        self._counters["frames_processed"] += 1
        self._output_rate.tick()
        stats = self._stats
        stats.add("decode", (t1 - t0) * 1e3)
        for stage in ("preprocess", "infer", "postprocess"):
            stats.add(stage, result.timings_ms[stage])
        stats.add("publish", (t3 - t2) * 1e3)
        stats.add("latency", (t3 - received_at) * 1e3)

    def _count_bad_image(self, exc: ImageError) -> None:
        self._counters["frames_bad"] += 1
        self._recent["frames_bad_recent"] += 1
        self.get_logger().warning(f"dropped a bad image on {self._topic}: {exc} "
                                  f"({self._counters['frames_bad']} so far)", throttle_duration_sec=5.0)

    def _wanted_outputs(self) -> list[str]:
        force = self.param("force_outputs")
        return [topic for topic, (_, enable) in OUTPUTS.items()
                if self.param(enable) and topic in self._output_pubs
                and (force or self._output_pubs[topic].get_subscription_count() > 0)]

    def _publish(self, header, wanted: list[str], result) -> None:
        arrays = {"label_mask": (result.labels, "mono8"), "color_mask": (result.color_mask, "rgb8"),
                  "overlay": (result.overlay, f"{result.overlay_order}8"), "confidence": (result.confidence, "32FC1")}
        for topic in wanted:
            array_, encoding = arrays[topic]
            self._output_pubs[topic].publish(array_to_image(Image, array_, encoding, header))
        if self._camera_info_pub is not None and self._camera_info is not None:
            self._camera_info_pub.publish(scaled_camera_info(self._camera_info, header, *result.labels.shape[:2]))

    # ------------------------------------------------------------------ QoS events and diagnostics
    def _on_incompatible_qos_sub(self, info) -> None:
        self._counters["qos_incompatible_events"] += 1
        self.get_logger().error(
            f"QoS MISMATCH on {self._topic}: a publisher's {_policy(info)} policy is incompatible with this "
            f"subscription ({self.param('qos_reliability')}, depth {self.param('qos_depth')}), so NO images arrive; "
            "set qos_reliability to match the camera driver")

    def _on_incompatible_qos_pub(self, info) -> None:
        self._counters["qos_incompatible_events"] += 1
        self.get_logger().error(
            f"QoS MISMATCH on an output topic: a subscriber requests a {_policy(info)} policy this node does not "
            f"offer ({self.param('output_qos_reliability')}), so it receives nothing; set output_qos_reliability "
            "to reliable or change the subscriber's QoS")

    def _on_message_lost(self, info) -> None:
        self._counters["frames_dropped"] += int(getattr(info, "total_count_change", 1))

    def _publish_diagnostics(self) -> None:
        if self._diagnostics_pub is None:
            return
        last = self._input_rate.last()
        status = build_status(
            NODE_NAME, topic=self._topic, backend=self._backend_desc[0], device=self._backend_desc[1],
            model=self._model_path, counters={**self._counters, **self._recent},
            input_rate=self._input_rate.rate(), output_rate=self._output_rate.rate(),
            latency=self._stats.summary(), seconds_since_input=None if last is None else time.monotonic() - last,
            publishers_on_topic=self.count_publishers(self._topic))
        self._recent = dict.fromkeys(self._recent, 0)
        self._diagnostics_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), status))

    @property
    def counters(self) -> dict[str, int]:
        return dict(self._counters)

    def _resolve(self, topic: str) -> str:
        try:
            return self.resolve_topic_name(topic)
        except AttributeError:  # Humble has no resolve_topic_name
            return topic

    @staticmethod
    def _qos(reliability: str, depth: int) -> QoSProfile:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                          reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                          else ReliabilityPolicy.BEST_EFFORT)


def _policy(info) -> str:
    try:
        return QoSPolicyKind(info.last_policy_kind).name.lower()
    except (ValueError, AttributeError):
        return "QoS"


def scaled_camera_info(info: CameraInfo, header, height: int, width: int) -> CameraInfo:
    """``info`` for an image resized to height x width (half-pixel-centred scaling of K and P)."""
    out = CameraInfo()
    out.header = header
    out.height, out.width = height, width
    out.distortion_model, out.d, out.r = info.distortion_model, info.d, info.r
    sx = width / info.width if info.width else 1.0
    sy = height / info.height if info.height else 1.0
    k, p = list(info.k), list(info.p)
    k[0], k[2], k[4], k[5] = k[0] * sx, (k[2] + 0.5) * sx - 0.5, k[4] * sy, (k[5] + 0.5) * sy - 0.5
    p[0], p[2], p[3], p[5], p[6] = p[0] * sx, (p[2] + 0.5) * sx - 0.5, p[3] * sx, p[5] * sy, (p[6] + 0.5) * sy - 0.5
    out.k, out.p = k, p
    return out


def main(args=None) -> int:
    rclpy.init(args=args)
    node = SegmentationNode()
    try:
        if node.autostart and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._stop_processing()
        node._release()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
