"""The segmentation node with real rclpy: lifecycle services, topics, encodings, bad input, parameters."""

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

pytestmark = pytest.mark.ros_process

from images import as_encoding  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_harness import RELIABLE, RosHarness, call, header, send_until_answered, wait_for, wait_until  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from lcsnet_seg.model.scene import generate_scene  # noqa: E402
from lcsnet_seg.ros.image_codec import array_to_image  # noqa: E402

H, W = 240, 320


@pytest.fixture
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def frame():
    return generate_scene(11, H, W)[0]


def change(ros, transition_id: int) -> bool:
    client = ros.helper.create_client(ChangeState, "/lcsnet_seg/change_state")
    request = ChangeState.Request()
    request.transition.id = transition_id
    return call(client, request).success


def state(ros) -> int:
    return call(ros.helper.create_client(GetState, "/lcsnet_seg/get_state"), GetState.Request()).current_state.id


def set_string(ros, name: str, value: str):
    request = SetParameters.Request()
    request.parameters = [
        ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
    ]
    return call(ros.helper.create_client(SetParameters, "/lcsnet_seg/set_parameters"), request).results[0]


def test_lifecycle_through_services_with_a_failing_then_good_configure(ros, tmp_path, demo_onnx, capfd):
    ros.make_node(model_path=str(tmp_path / "not_there.onnx"))
    assert state(ros) == State.PRIMARY_STATE_UNCONFIGURED
    assert not change(ros, Transition.TRANSITION_CONFIGURE)
    assert state(ros) == State.PRIMARY_STATE_UNCONFIGURED
    assert "not_there.onnx not found" in capfd.readouterr().err

    assert set_string(ros, "model_path", str(demo_onnx)).successful
    assert change(ros, Transition.TRANSITION_CONFIGURE)
    assert state(ros) == State.PRIMARY_STATE_INACTIVE
    refused = set_string(ros, "model_path", "/elsewhere.onnx")
    assert not refused.successful and refused.reason.endswith("(ros2 lifecycle set <node> cleanup)")

    assert change(ros, Transition.TRANSITION_ACTIVATE)
    assert state(ros) == State.PRIMARY_STATE_ACTIVE
    refused = set_string(ros, "model_path", "/elsewhere.onnx")
    assert not refused.successful and refused.reason.endswith("(ros2 lifecycle set <node> deactivate, then cleanup)")
    assert change(ros, Transition.TRANSITION_DEACTIVATE)
    assert state(ros) == State.PRIMARY_STATE_INACTIVE
    assert change(ros, Transition.TRANSITION_CLEANUP)
    assert state(ros) == State.PRIMARY_STATE_UNCONFIGURED
    assert change(ros, Transition.TRANSITION_CONFIGURE) and change(ros, Transition.TRANSITION_ACTIVATE)
    assert change(ros, Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert state(ros) == State.PRIMARY_STATE_FINALIZED


def active_node(ros, **params):
    node = ros.make_node(**params)
    assert node.trigger_configure().name == "SUCCESS"
    assert node.trigger_activate().name == "SUCCESS"
    return node


def outputs(ros, names=("label_mask", "color_mask", "overlay", "confidence")):
    return {name: ros.collect(Image, f"/lcsnet_seg/{name}") for name in names}


def test_every_encoding_gives_every_output_with_the_input_header(ros, frame, segmenter):
    active_node(ros, publish_confidence=True)
    got = outputs(ros)
    pub = ros.helper.create_publisher(Image, "/image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    for sec, encoding in enumerate(["rgb8", "bgr8", "rgba8", "bgra8", "mono8"], start=100):
        pixels = np.ascontiguousarray(as_encoding(frame, encoding))
        msg = array_to_image(Image, pixels, encoding, header(sec, f"cam_{encoding}"))
        label = send_until_answered(pub, msg, got["label_mask"], sec)
        assert label is not None, f"no label_mask for {encoding}"
        assert wait_for(lambda: all(any(m.header.stamp.sec == sec for m in got[k]) for k in got))
        for name, expected_encoding in (
            ("label_mask", "mono8"),
            ("color_mask", "rgb8"),
            ("confidence", "32FC1"),
            ("overlay", "bgr8" if encoding.startswith("bgr") else "rgb8"),
        ):
            out = next(m for m in got[name] if m.header.stamp.sec == sec)
            assert (out.header.stamp.sec, out.header.stamp.nanosec) == (sec, 1000 + sec)
            assert out.header.frame_id == f"cam_{encoding}"
            assert (out.height, out.width, out.encoding) == (H, W, expected_encoding)
        labels = np.frombuffer(label.data, np.uint8).reshape(H, W)
        np.testing.assert_array_equal(labels, segmenter(pixels, encoding).labels)


def test_padded_rows_are_read_through_step(ros, frame, segmenter):
    active_node(ros)
    got = outputs(ros, ("label_mask",))
    pub = ros.helper.create_publisher(Image, "/image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    padded = np.zeros((H, W * 3 + 64), np.uint8)  # rows 64 bytes longer than the pixels, as some drivers send
    padded[:, : W * 3] = frame.reshape(H, W * 3)
    msg = array_to_image(Image, frame, "rgb8", header(7))
    msg.step, msg.data = W * 3 + 64, padded.tobytes()
    label = send_until_answered(pub, msg, got["label_mask"], 7)
    assert label is not None
    np.testing.assert_array_equal(np.frombuffer(label.data, np.uint8).reshape(H, W), segmenter(frame, "rgb8").labels)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_compressed_input(ros, frame, segmenter, ext):
    active_node(ros, input_transport="compressed")
    got = outputs(ros, ("label_mask", "overlay"))
    pub = ros.helper.create_publisher(CompressedImage, "/image/compressed", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    ok, data = cv2.imencode(ext, frame[..., ::-1])
    msg = CompressedImage(header=header(21), format="jpeg" if ext == ".jpg" else "png", data=data.tobytes())
    label = send_until_answered(pub, msg, got["label_mask"], 21)
    assert label is not None and (label.height, label.width) == (H, W)
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(np.frombuffer(label.data, np.uint8).reshape(H, W), segmenter(decoded, "bgr8").labels)
    assert wait_for(lambda: any(m.encoding == "bgr8" for m in got["overlay"]))


def bad_image(kind: str, frame: np.ndarray) -> Image:
    msg = array_to_image(Image, frame, "rgb8", header(1))
    if kind == "short":
        msg.data = msg.data[: len(msg.data) // 2]
    elif kind == "zero_width":
        msg.width = 0
    elif kind == "encoding":
        msg.encoding = "yuv422"
    elif kind == "step":
        msg.step = W  # less than width x 3
    return msg


def test_bad_messages_are_counted_and_the_next_good_frame_is_served(ros, frame, capfd):
    node = active_node(ros)
    got = outputs(ros, ("label_mask",))
    pub = ros.helper.create_publisher(Image, "/image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    kinds = ["short", "zero_width", "encoding", "step"]
    for i, kind in enumerate(kinds):
        pub.publish(bad_image(kind, frame))
        assert wait_for(lambda: node.counters["frames_bad"] >= i + 1), f"{kind} not counted"
    assert send_until_answered(pub, array_to_image(Image, frame, "rgb8", header(55)), got["label_mask"], 55)
    log = capfd.readouterr().err
    assert "dropped a bad image on /image" in log
    assert node.counters["frames_failed"] == 0


def test_corrupt_jpeg_is_counted_and_the_next_good_frame_is_served(ros, frame):
    node = active_node(ros, input_transport="compressed")
    got = outputs(ros, ("label_mask",))
    pub = ros.helper.create_publisher(CompressedImage, "/image/compressed", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    ok, data = cv2.imencode(".jpg", frame)
    pub.publish(CompressedImage(header=header(3), format="jpeg", data=data.tobytes()[:40] + b"\x00" * 50))
    assert wait_for(lambda: node.counters["frames_bad"] == 1)
    good = CompressedImage(header=header(4), format="jpeg", data=data.tobytes())
    assert send_until_answered(pub, good, got["label_mask"], 4) is not None


def test_runtime_parameters_alpha_and_toggles(ros, frame):
    from rclpy.parameter import Parameter

    node = active_node(ros)
    assert not node.set_parameters([Parameter("overlay_alpha", value=1.5)])[0].successful
    assert not node.set_parameters([Parameter("qos_depth", value=0)])[0].successful
    assert node.set_parameters([Parameter("overlay_alpha", value=0.0)])[0].successful
    got = outputs(ros, ("overlay", "label_mask", "color_mask"))
    pub = ros.helper.create_publisher(Image, "/image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    overlay = send_until_answered(pub, array_to_image(Image, frame, "rgb8", header(9)), got["overlay"], 9)
    np.testing.assert_array_equal(np.frombuffer(overlay.data, np.uint8).reshape(H, W, 3), frame)
    assert node.set_parameters(
        [Parameter("publish_color_mask", value=False), Parameter("output_size", value="network")]
    )[0].successful
    label = send_until_answered(pub, array_to_image(Image, frame, "rgb8", header(10)), got["label_mask"], 10)
    assert (label.height, label.width) == (384, 512)
    assert not any(m.header.stamp.sec == 10 for m in got["color_mask"])


def test_a_runtime_change_waits_for_the_next_frame(ros, frame):
    """The worker applies overlay_alpha/output_size between frames, never halfway through one."""
    from rclpy.parameter import Parameter

    node = active_node(ros, force_outputs=True)
    got = outputs(ros, ("label_mask",))
    pub = ros.helper.create_publisher(Image, "/image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    assert send_until_answered(pub, array_to_image(Image, frame, "rgb8", header(20)), got["label_mask"], 20)
    assert node.set_parameters([Parameter("overlay_alpha", value=0.25)])[0].successful
    assert node._segmenter.overlay_alpha == 0.5  # not yet: no frame has started since the change
    assert send_until_answered(pub, array_to_image(Image, frame, "rgb8", header(21)), got["label_mask"], 21)
    assert node._segmenter.overlay_alpha == 0.25


def test_all_parameters_come_back_in_one_request_as_ros2_param_dump_reads_them(ros):
    from rcl_interfaces.srv import GetParameters, ListParameters

    from lcsnet_seg.ros.params import BY_NAME

    ros.make_node()
    names = call(
        ros.helper.create_client(ListParameters, "/lcsnet_seg/list_parameters"), ListParameters.Request()
    ).result.names
    assert set(BY_NAME) <= set(names)
    request = GetParameters.Request()
    request.names = list(names)
    values = call(ros.helper.create_client(GetParameters, "/lcsnet_seg/get_parameters"), request).values
    assert len(values) == len(names), "one uninitialised parameter empties the whole answer"
    by_name = dict(zip(names, values))
    assert all(v.type != ParameterType.PARAMETER_NOT_SET for v in values)
    assert by_name["overlay_alpha"].double_value == 0.5
    assert list(by_name["mean"].byte_array_value) == []  # unset: the model's own mean applies


def test_unset_arrays_take_values_of_their_kind_only(ros):
    from rclpy.parameter import Parameter

    node = ros.make_node()
    assert node.set_parameters([Parameter("mean", value=[0.5, 0.5, 0.5])])[0].successful
    assert node.param("mean") == [0.5, 0.5, 0.5]
    assert node.set_parameters([Parameter("input_size", value=[256, 320])])[0].successful
    refused = node.set_parameters([Parameter("input_size", value=[256.5, 320.0])])[0]
    assert not refused.successful and "input_size must be a list of 2 integers" in refused.reason
    assert not node.set_parameters([Parameter("std", value=["a", "b", "c"])])[0].successful
    assert node.set_parameters([Parameter("mean", value=[])])[0].successful and node.param("mean") is None


def test_outputs_without_subscribers_are_not_computed(ros, frame):
    node = active_node(ros)
    pub = ros.helper.create_publisher(Image, "/image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    pub.publish(array_to_image(Image, frame, "rgb8", header(5)))
    assert wait_for(lambda: node.counters["frames_received"] == 1)
    assert not wait_for(lambda: node.counters["frames_processed"] > 0, timeout=1.0)
    # the same worker segments as soon as somebody listens: it was idle by choice, not dead
    got = outputs(ros, ("label_mask",))
    assert send_until_answered(pub, array_to_image(Image, frame, "rgb8", header(6)), got["label_mask"], 6)
    assert node.counters["frames_processed"] >= 1


def test_misspelt_parameter_is_reported(ros, capfd):
    ros.make_node(overlay_alpah=0.3)
    err = capfd.readouterr().err
    assert "parameter 'overlay_alpah'" in err and "did you mean 'overlay_alpha'?" in err


def test_diagnostics_report_rates_counters_and_latency(ros, frame):
    from diagnostic_msgs.msg import DiagnosticArray

    active_node(ros, diagnostics_period=0.2, force_outputs=True)
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    pub = ros.helper.create_publisher(Image, "/image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    for k, sec in enumerate(range(30, 36)):
        pub.publish(array_to_image(Image, frame, "rgb8", header(sec)))
        wait_until(lambda: ros.nodes[-1].counters["frames_received"] > k, f"frame {sec} to reach the node")

    def latest():
        for msg in reversed(list(diagnostics)):
            values = {kv.key: kv.value for kv in msg.status[0].values}
            if int(values.get("frames_processed", 0)) > 0:
                return msg.status[0], values
        return None

    assert wait_for(lambda: latest() is not None)
    status, values = latest()
    assert status.name == "lcsnet_seg: semantic segmentation"
    for key in (
        "input_rate_hz",
        "output_rate_hz",
        "frames_dropped",
        "frames_bad",
        "backend",
        "device",
        "infer_ms_mean",
        "infer_ms_p95",
        "decode_ms_mean",
        "segment_ms_mean",
        "publish_ms_p95",
        "latency_ms_mean",
    ):
        assert key in values, key
    assert values["backend"] == "onnxruntime" and float(values["infer_ms_mean"]) > 0


def test_missing_input_topic_is_reported_in_diagnostics(ros):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    active_node(ros, diagnostics_period=0.2)
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    assert wait_for(lambda: len(diagnostics) > 0)
    assert diagnostics[0].status[0].level == DiagnosticStatus.OK  # the quiet period after activation: too early
    assert wait_for(lambda: diagnostics[-1].status[0].level == DiagnosticStatus.WARN, timeout=20)
    status = diagnostics[-1].status[0]
    assert "no publisher on /image" in status.message


def test_incompatible_qos_is_logged_loudly(ros, capfd):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    node = active_node(ros, qos_reliability="reliable")
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)

    def mismatch_seen() -> bool:
        # An event raised before the executor took up the subscription's event handler is lost: offer a
        # fresh incompatible publisher until the node has seen one.
        publisher = ros.helper.create_publisher(Image, "/image", best_effort)
        seen = wait_for(lambda: node.counters["qos_incompatible_events"] >= 1, timeout=2.0, period=0.05)
        ros.helper.destroy_publisher(publisher)
        return seen

    wait_until(mismatch_seen, "the node to count an incompatible-QoS event", timeout=30)
    seen: list[str] = []  # accumulate: one read may end in the middle of the line
    assert wait_for(
        lambda: seen.append(capfd.readouterr().err) or "QoS MISMATCH on /image" in "".join(seen), timeout=5, period=0.2
    )


def test_camera_info_is_passed_through_rescaled(ros, frame):
    node = active_node(ros, use_camera_info=True, output_size="network")
    infos = ros.collect(CameraInfo, "/lcsnet_seg/camera_info")
    got = outputs(ros, ("label_mask",))
    info_pub = ros.helper.create_publisher(CameraInfo, "/camera_info", RELIABLE)
    image_pub = ros.helper.create_publisher(Image, "/image", RELIABLE)
    assert wait_for(lambda: info_pub.get_subscription_count() > 0 and image_pub.get_subscription_count() > 0)
    info = CameraInfo(header=header(60), width=W, height=H)
    info.k = [300.0, 0.0, 159.5, 0.0, 300.0, 119.5, 0.0, 0.0, 1.0]
    info.p = [300.0, 0.0, 159.5, 0.0, 0.0, 300.0, 119.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    info_pub.publish(info)
    wait_until(lambda: node._cameras[0].camera_info is not None, "the node to receive the camera_info")
    assert send_until_answered(image_pub, array_to_image(Image, frame, "rgb8", header(61)), got["label_mask"], 61)
    assert wait_for(lambda: any(m.header.stamp.sec == 61 for m in infos))
    out = next(m for m in infos if m.header.stamp.sec == 61)
    assert (out.width, out.height) == (512, 384)
    sx, sy = 512 / W, 384 / H
    assert out.k[0] == pytest.approx(300 * sx) and out.k[4] == pytest.approx(300 * sy)
    assert out.k[2] == pytest.approx(160 * sx - 0.5) and out.k[5] == pytest.approx(120 * sy - 0.5)


def array_parameter(name: str, values: list) -> ParameterMsg:
    """An array parameter as ``ros2 param set`` sends it: INTEGER_ARRAY or DOUBLE_ARRAY in a set_parameters request
    (rclpy hands such values to the node as array.array, not as a list)."""
    if all(isinstance(v, int) for v in values):
        value = ParameterValue(type=ParameterType.PARAMETER_INTEGER_ARRAY, integer_array_value=values)
    else:
        value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=values)
    return ParameterMsg(name=name, value=value)


def set_remote(ros, *parameters: ParameterMsg):
    request = SetParameters.Request()
    request.parameters = list(parameters)
    return call(ros.helper.create_client(SetParameters, "/lcsnet_seg/set_parameters"), request).results


def test_array_parameters_as_ros2_param_set_sends_them_reach_configure(ros):
    node = ros.make_node()
    results = set_remote(
        ros,
        array_parameter("input_size", [384, 512]),
        array_parameter("mean", [0.5, 0.25, 0.125]),
        array_parameter("std", [0.25, 0.5, 0.75]),
    )
    assert [r.successful for r in results] == [True] * 3, [r.reason for r in results]
    assert node.trigger_configure().name == "SUCCESS"
    info = node._segmenter.info
    assert info.input_size == (384, 512) and info.mean == (0.5, 0.25, 0.125) and info.std == (0.25, 0.5, 0.75)
    assert node.trigger_cleanup().name == "SUCCESS"
    # another size reaches configure too, where the fixed-size demo model refuses it by name
    assert set_remote(ros, array_parameter("input_size", [256, 320]))[0].successful
    assert node.trigger_configure().name == "FAILURE"
    refused = set_remote(ros, array_parameter("input_size", [256]))[0]
    assert not refused.successful and "input_size needs 2 values, got 1" in refused.reason


def test_a_classes_file_reaches_the_colour_mask(ros, frame, tmp_path):
    import yaml

    from lcsnet_seg.classes import load_class_set

    records = load_class_set().to_records()
    for record in records:
        record["color"] = [255 - c for c in record["color"]]  # another palette, same class count
    path = tmp_path / "classes.yaml"
    path.write_text(yaml.safe_dump({"classes": records}))
    active_node(ros, classes_file=str(path), force_outputs=True)
    got = outputs(ros, ("label_mask", "color_mask"))
    pub = ros.helper.create_publisher(Image, "/image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    label = send_until_answered(pub, array_to_image(Image, frame, "rgb8", header(70)), got["label_mask"], 70)
    assert wait_for(lambda: any(m.header.stamp.sec == 70 for m in got["color_mask"]))
    color = next(m for m in got["color_mask"] if m.header.stamp.sec == 70)
    labels = np.frombuffer(label.data, np.uint8).reshape(H, W)
    palette = np.array([r["color"] for r in records], np.uint8)
    np.testing.assert_array_equal(np.frombuffer(color.data, np.uint8).reshape(H, W, 3), palette[labels])


def test_configure_failing_after_the_backend_is_built_releases_it_and_can_be_retried(ros, monkeypatch, capfd):
    import lcsnet_seg.ros.node as node_module

    node = ros.make_node()
    real_camera = node_module.Camera

    def no_camera(*args, **kwargs):
        raise RuntimeError("publisher creation failed")

    monkeypatch.setattr(node_module, "Camera", no_camera)
    assert node.trigger_configure().name == "FAILURE"
    assert node._segmenter is None and node._cameras == []
    assert "configure failed: RuntimeError: publisher creation failed" in capfd.readouterr().err
    monkeypatch.setattr(node_module, "Camera", real_camera)
    assert node.trigger_configure().name == "SUCCESS" and node.trigger_activate().name == "SUCCESS"


def test_cleanup_after_the_worker_failed_to_stop_in_time(ros, frame, capfd):
    """A frame that hangs (a stuck GPU call, say) keeps the worker past deactivate's wait: cleanup still releases,
    the node says so, and it configures and serves again while the late frame is still stuck; once that frame
    ends, it takes no further tick: one worker, never two on one Segmenter."""
    import threading

    node = active_node(ros, force_outputs=True)
    node.STOP_TIMEOUT_S = 0.5
    segmenter, entered, release = node._segmenter, threading.Event(), threading.Event()
    real_call = type(segmenter).segment_batch

    def stuck(self, *args, **kwargs):
        entered.set()
        release.wait(30)
        return real_call(self, *args, **kwargs)

    segmenter.__class__ = type("Stuck", (type(segmenter),), {"segment_batch": stuck})
    pub = ros.helper.create_publisher(Image, "/image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    pub.publish(array_to_image(Image, frame, "rgb8", header(80)))
    wait_until(entered.is_set, "the frame to be inside the Segmenter")
    assert node.trigger_deactivate().name == "SUCCESS" and node.trigger_cleanup().name == "SUCCESS"
    assert "the frame worker did not stop within 0.5 s" in capfd.readouterr().err
    assert node._segmenter is None
    node.STOP_TIMEOUT_S = 10.0
    got = outputs(ros, ("label_mask",))
    assert node.trigger_configure().name == "SUCCESS" and node.trigger_activate().name == "SUCCESS"
    assert node._worker.late  # the stuck frame is still inside the old Segmenter
    assert send_until_answered(pub, array_to_image(Image, frame, "rgb8", header(81)), got["label_mask"], 81)
    release.set()  # the late frame ends on a Segmenter the node no longer has: counted, never a crash
    wait_until(lambda: not node._worker.late, "the late frame to end")
    workers = [t for t in threading.enumerate() if t.name == "lcsnet_seg_worker"]
    assert len(workers) == 1, workers
    assert send_until_answered(pub, array_to_image(Image, frame, "rgb8", header(82)), got["label_mask"], 82)


def test_decoder_gpu_without_the_gpu_path_is_a_one_line_configure_error(ros, capfd):
    node = ros.make_node(input_transport="compressed", decoder="gpu", backend="onnxruntime")
    assert node.trigger_configure().name == "FAILURE"
    err = capfd.readouterr().err
    line = next(line for line in err.splitlines() if "configure failed" in line)
    assert "decoder gpu needs the GPU path" in line and "decoder auto or cpu" in line, err
    assert node._segmenter is None
    node.set_parameters([Parameter("decoder", value="auto")])
    assert node.trigger_configure().name == "SUCCESS"  # auto: the CPU decoder here
    assert node._decoder_description() == "cpu (OpenCV)"
