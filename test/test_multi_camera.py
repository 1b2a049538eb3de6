"""Several cameras in one node (the ``cameras`` parameter): one batch per tick, each camera's outputs with its own
input's stamp, frame_id and size, a camera that stops or sends bad frames never holding back the others, each
named in /diagnostics; bad camera names refused at configure. In this process (rclpy) and as its own process."""

import signal

import pytest
from images import as_encoding

rclpy = pytest.importorskip("rclpy")

pytestmark = pytest.mark.ros_process

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_harness import (  # noqa: E402
    RELIABLE,
    STARTUP_S,
    NodeProcess,
    RosHarness,
    first_with_stamp,
    header,
    send_until_answered,
    wait_for,
    wait_until,
)
from sensor_msgs.msg import Image  # noqa: E402

from lcsnet_seg.model.scene import generate_scene  # noqa: E402
from lcsnet_seg.ros.image_codec import array_to_image  # noqa: E402

# two cameras that differ in everything a batch must cope with: size, encoding, frame_id
CAMERAS = {"front": (240, 320, "rgb8"), "rear": (120, 160, "bgr8")}
OUTPUTS = ("label_mask", "color_mask", "overlay", "confidence")


@pytest.fixture
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


def camera_frame(name: str, sec: int, size=None):
    h, w, encoding = CAMERAS[name]
    h, w = size or (h, w)
    pixels = as_encoding(generate_scene(sec % 7, h, w)[0], encoding)
    return array_to_image(Image, pixels, encoding, header(sec, f"{name}_optical"))


def collect_outputs(ros, node_name: str = "lcsnet_seg"):
    return {(c, o): ros.collect(Image, f"/{node_name}/{c}/{o}") for c in CAMERAS for o in OUTPUTS}


def assert_answer(got, camera: str, sec: int, size) -> None:
    """Every output of ``camera`` for the frame stamped ``sec``: its header and size."""
    for output in OUTPUTS:
        wait_until(lambda: first_with_stamp(got[(camera, output)], sec) is not None, f"{camera}/{output} of {sec}")
        msg = first_with_stamp(got[(camera, output)], sec)
        assert msg.header.frame_id == f"{camera}_optical" and msg.header.stamp.nanosec == 1000 + sec
        assert (msg.height, msg.width) == tuple(size), (camera, output)
    overlay = first_with_stamp(got[(camera, "overlay")], sec)
    assert overlay.encoding == CAMERAS[camera][2][:3] + "8"  # the input's colour order


def batched_node(ros, **params):
    params.setdefault("batch_wait_ms", 100.0)  # a loaded test machine publishes the two frames far apart
    node = ros.make_node(cameras=list(CAMERAS), force_outputs=True, publish_confidence=True, **params)
    sizes: list[int] = []
    real = type(node).process

    def process(self, batch):  # records the tick sizes: the batches the Segmenter is given
        sizes.append(len(batch))
        real(self, batch)

    node.process = process.__get__(node)
    node._worker._process = node.process
    assert node.trigger_configure().name == "SUCCESS" and node.trigger_activate().name == "SUCCESS"
    pubs = {c: ros.helper.create_publisher(Image, f"/{c}/image", RELIABLE) for c in CAMERAS}
    assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()))
    return node, pubs, sizes


def diagnostics_of(ros, name: str):
    seen: list = []
    ros.helper.create_subscription(DiagnosticArray, "/diagnostics", seen.append, 10)

    def status():
        for msg in reversed(seen):
            for s in msg.status:
                if s.name == name:
                    return {kv.key: kv.value for kv in s.values} | {"_level": s.level, "_message": s.message}
        return None

    return status


def test_two_cameras_of_different_sizes_and_encodings_in_one_batch(ros):
    node, pubs, ticks = batched_node(ros)
    got = collect_outputs(ros)
    for sec in range(10, 40):  # both cameras each time, until one tick took both
        for camera, pub in pubs.items():
            pub.publish(camera_frame(camera, sec))
        if wait_for(lambda: 2 in ticks, timeout=1.0):
            break
    assert 2 in ticks, f"no tick took both cameras: {ticks}"
    for camera, (h, w, _) in CAMERAS.items():
        assert_answer(got, camera, sec, (h, w))
    assert not any(got[(c, o)] for c in ("",) for o in OUTPUTS if (c, o) in got)  # no unnamed outputs exist
    assert node.count_publishers("/lcsnet_seg/label_mask") == 0


def test_a_stopped_or_resized_camera_does_not_hold_back_the_other(ros):
    node, pubs, _ = batched_node(ros)
    got = collect_outputs(ros)
    for sec in range(50, 56):  # the rear camera has stopped: front's frames are each answered alone
        assert send_until_answered(pubs["front"], camera_frame("front", sec), got[("front", "label_mask")], sec)
    assert_answer(got, "front", 55, CAMERAS["front"][:2])
    # the rear camera comes back at another size mid-stream: both answered, each at its own size
    for sec in range(60, 64):
        pubs["rear"].publish(camera_frame("rear", sec, size=(200, 300)))
        assert send_until_answered(pubs["front"], camera_frame("front", sec), got[("front", "label_mask")], sec)
        assert send_until_answered(
            pubs["rear"], camera_frame("rear", sec, size=(200, 300)), got[("rear", "label_mask")], sec
        )
    assert_answer(got, "rear", 63, (200, 300))
    assert_answer(got, "front", 63, CAMERAS["front"][:2])


def test_bad_frames_of_one_camera_are_counted_against_it_and_the_other_goes_on(ros, capfd):
    node, pubs, _ = batched_node(ros, diagnostics_period=0.2)
    got = collect_outputs(ros)
    rear_status = diagnostics_of(ros, "lcsnet_seg: camera rear")
    front_status = diagnostics_of(ros, "lcsnet_seg: camera front")
    for sec in range(70, 76):
        bad = camera_frame("rear", sec)
        bad.step = bad.width  # too short for bgr8 rows: a malformed message
        pubs["rear"].publish(bad)
        assert send_until_answered(pubs["front"], camera_frame("front", sec), got[("front", "label_mask")], sec)
    wait_until(
        lambda: (
            (rear_status() or {}).get("frames_bad", "0") != "0"
            and int((front_status() or {}).get("frames_processed", "0")) >= 6
        ),
        "rear's bad frames and front's answered ones in /diagnostics",
    )
    rear, front = rear_status(), front_status()
    assert "step" in rear["last_error"] and rear["input_topic"] == "/rear/image", rear
    assert front["frames_bad"] == "0" and int(front["frames_processed"]) >= 6, front
    assert "dropped a bad image on /rear/image" in capfd.readouterr().err
    assert not got[("rear", "label_mask")]


@pytest.mark.parametrize(
    "names, why",
    [
        (["front", "front"], "lists front more than once"),
        (["front", "9rear"], "'9rear' is not a valid relative ROS name"),
        (["front", "a__b"], "'a__b' is not a valid relative ROS name"),
        (["/front"], "'/front' is not a valid relative ROS name"),
    ],
)
def test_a_bad_camera_list_is_a_one_line_configure_error_and_can_be_fixed(ros, capfd, names, why):
    node = ros.make_node(cameras=names)
    assert node.trigger_configure().name == "FAILURE"
    err = capfd.readouterr().err
    line = next(line for line in err.splitlines() if "configure failed" in line)
    assert why in line, err
    assert node._segmenter is None and node._cameras == []
    assert node.set_parameters([Parameter("cameras", value=["front", "arm/wrist"])])[0].successful
    assert node.trigger_configure().name == "SUCCESS"
    assert [c.topic for c in node._cameras] == ["/front/image", "/arm/wrist/image"]
    assert node.count_publishers("/lcsnet_seg/arm/wrist/label_mask") == 1


def test_two_cameras_in_a_node_process(tmp_path):
    """The node as its own process (as ros2 run starts it): two cameras of different sizes and encodings, every
    output's stamp, frame_id and size right, one camera stopping, and a clean exit."""
    ros = RosHarness()
    remap = {f"{c}/image": f"/mc_proc/{c}/image" for c in CAMERAS}
    params = {"cameras": list(CAMERAS), "force_outputs": True, "publish_confidence": True}
    try:
        with NodeProcess(ros, tmp_path / "node.log", params, remap) as node:
            node.wait_for_state(State.PRIMARY_STATE_ACTIVE)
            got = {(c, o): ros.collect(Image, node.topic(o, c)) for c in CAMERAS for o in OUTPUTS}
            pubs = {c: ros.helper.create_publisher(Image, f"/mc_proc/{c}/image", RELIABLE) for c in CAMERAS}
            for camera, pub in pubs.items():
                wait_until(lambda: pub.get_subscription_count() > 0, f"the node to subscribe {camera}", STARTUP_S)
                assert send_until_answered(pub, camera_frame(camera, 100), got[(camera, "label_mask")], 100)
            for sec in range(101, 106):
                for camera, pub in pubs.items():
                    pub.publish(camera_frame(camera, sec))
                for camera in CAMERAS:
                    wait_for(lambda: first_with_stamp(got[(camera, "label_mask")], sec) is not None, timeout=5)
            for camera, (h, w, _) in CAMERAS.items():
                answered = [s for s in range(101, 106) if first_with_stamp(got[(camera, "label_mask")], s)]
                assert answered, f"{camera}: no frame of 101..105 answered"
                assert_answer(got, camera, answered[-1], (h, w))
            for sec in range(110, 114):  # rear stops; front goes on
                assert send_until_answered(pubs["front"], camera_frame("front", sec), got[("front", "label_mask")], sec)
            assert node.change(Transition.TRANSITION_DEACTIVATE)
            log = node.signal_and_wait(signal.SIGINT)
            assert node.process.returncode == 0 and "Traceback" not in log, log[-2000:]
            assert "segmenting /mc_proc/front/image, /mc_proc/rear/image" in log, log[-2000:]
    finally:
        ros.close()


def test_a_cuda_graph_segmenter_keeps_its_composition_while_a_camera_is_live(ros, monkeypatch):
    """With a Segmenter that replays CUDA graphs (fixed_compositions), a live camera without a new frame is
    segmented again from its last one, not published: every tick has the same composition (one graph), until the
    camera has been silent for LIVE_S and drops out."""
    from lcsnet_seg.ros.ticks import LastFrames

    # live for as long as this phase takes (a loaded machine can take seconds per frame); shortened below
    monkeypatch.setattr(LastFrames, "LIVE_S", 3600.0)
    node, pubs, _ = batched_node(ros, batch_wait_ms=0.0)
    calls: list[list[tuple[int, int]]] = []
    real = type(node._segmenter).segment_batch

    def recording(self, frames, outputs=("labels",)):
        calls.append([image.shape[:2] for image, _ in frames])
        return real(self, frames, outputs)

    node._segmenter.__class__ = type("GraphLike", (type(node._segmenter),), {"segment_batch": recording})
    node._segmenter.fixed_compositions = True
    got = collect_outputs(ros)
    for sec in (80, 81):  # both cameras live
        for camera, pub in pubs.items():
            assert send_until_answered(pub, camera_frame(camera, sec), got[(camera, "label_mask")], sec)
    calls.clear()
    rear_before = len(got[("rear", "label_mask")])
    for sec in range(82, 86):  # the rear camera stops: its last frame keeps the composition
        assert send_until_answered(pubs["front"], camera_frame("front", sec), got[("front", "label_mask")], sec)
    both = [tuple(CAMERAS[c][:2] for c in CAMERAS)]
    assert calls and all(tuple(c) == both[0] for c in calls), calls
    assert len(got[("rear", "label_mask")]) == rear_before  # the stale frame is not published again
    monkeypatch.setattr(LastFrames, "LIVE_S", 1.5)  # read at every tick: the silent rear camera drops out now
    stamps = iter(range(90, 400))

    def front_alone() -> bool:
        sec = next(stamps)
        assert send_until_answered(pubs["front"], camera_frame("front", sec), got[("front", "label_mask")], sec)
        return calls[-1] == [CAMERAS["front"][:2]]

    wait_until(front_alone, "the silent rear camera to drop out of the batch", timeout=30, period=0.1)
    assert len(got[("rear", "label_mask")]) == rear_before
