"""The node on the GPU, as deployed: segmentation_node as its own process with backend torch_cuda,
driven through configure/activate/deactivate/cleanup twice by another process, frames in every
encoding (raw in the first round, PNG through image/compressed in the second), label masks
compared with the CPU reference path (the same weights as ONNX, on ONNX Runtime).

A unit test on the thread that created the CUDA context cannot show this: the node runs frames on
its worker thread. Skipped, with the reason, where no CUDA GPU is present."""

import re
import signal

import cv2
import numpy as np
import pytest
from images import ENCODINGS, as_encoding

pytest.importorskip("rclpy")
from lcsnet_seg.gpu import unavailable_reason  # noqa: E402


def _gpu_problem() -> str | None:
    why = unavailable_reason()
    if why:
        return why
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    return None if torch.cuda.is_available() else "PyTorch has no CUDA device"


pytestmark = [
    pytest.mark.ros_process,
    pytest.mark.skipif(_gpu_problem() is not None, reason=f"GPU node test: {_gpu_problem()}"),
]

if _gpu_problem() is None:
    # This process is the cameras: 640x480 and 1080p frames reach the node whole only when the publishing process
    # has the large-image profile too (README, 'On a robot'); without it most are lost on loopback. Set while
    # collecting, before this process's first participant, and only where these tests run.
    from lcsnet_seg.ros.node_process import ros_environment

    ros_environment()

from conftest import DEMO_PTH  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from ros_harness import (  # noqa: E402
    RELIABLE,
    NodeProcess,
    RosHarness,
    first_with_stamp,
    header,
    wait_until,
)
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from lcsnet_seg.model.scene import generate_scene  # noqa: E402
from lcsnet_seg.ros.image_codec import array_to_image  # noqa: E402

SIZES = ((480, 640), (1080, 1920))
MIN_AGREEMENT = 0.995
FAILED = re.compile(r"frame on \S+ failed")  # the node's line for a frame that failed in the pipeline


@pytest.fixture(scope="module")
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


def send_and_receive(ros, publisher, msg, labels: list, sec: int):
    def answered():
        publisher.publish(msg)  # best-effort input: a frame may be lost, send again until answered
        return first_with_stamp(labels, sec) is not None

    wait_until(answered, f"a label mask for frame {sec} from the GPU node", timeout=120, period=0.5)
    return first_with_stamp(labels, sec)


def test_gpu_node_process_through_two_lifecycle_rounds_matches_the_cpu_reference(ros, tmp_path, segmenter):
    raw = ros.helper.create_publisher(Image, "/gpu_test/image", RELIABLE)
    compressed = ros.helper.create_publisher(CompressedImage, "/gpu_test/image/compressed", RELIABLE)
    params = {"model_path": str(DEMO_PTH), "backend": "torch_cuda", "autostart": False, "force_outputs": True}
    agreements = {}
    with NodeProcess(
        ros,
        tmp_path / "gpu_node.log",
        params,
        {"image": "/gpu_test/image", "image/compressed": "/gpu_test/image/compressed"},
    ) as node:
        labels = ros.collect(Image, node.topic("label_mask"))
        node.wait_for_state(State.PRIMARY_STATE_UNCONFIGURED)
        sec = 0
        for round_ in range(2):
            if round_ == 1:
                ros.set_remote_parameter(f"/{node.name}", "input_transport", "compressed")
            assert node.change(Transition.TRANSITION_CONFIGURE), node.log.read_text()[-2000:]
            assert node.change(Transition.TRANSITION_ACTIVATE), node.log.read_text()[-2000:]
            for height, width in SIZES:
                rgb = generate_scene(7_000_000 + sec, height, width)[0]
                for encoding in ENCODINGS:
                    sec += 1
                    image = as_encoding(rgb, encoding)
                    if round_ == 0:
                        msg = array_to_image(Image, image, encoding, header(sec))
                        got = send_and_receive(ros, raw, msg, labels, sec)
                    else:
                        bgr = (
                            image if encoding == "mono8" else cv2.cvtColor(as_encoding(rgb, "rgb8"), cv2.COLOR_RGB2BGR)
                        )
                        ok, png = cv2.imencode(".png", bgr)
                        msg = CompressedImage(header=header(sec), format="png", data=png.tobytes())
                        got = send_and_receive(ros, compressed, msg, labels, sec)
                        encoding = "mono8" if encoding == "mono8" else "bgr8"
                        image = bgr
                    assert (got.height, got.width) == (height, width)
                    gpu = np.frombuffer(got.data, np.uint8).reshape(height, width)
                    cpu = segmenter(image, encoding, outputs=("labels",)).labels
                    agreements[(round_, height, encoding)] = float((gpu == cpu).mean())
            assert node.change(Transition.TRANSITION_DEACTIVATE)
            assert node.change(Transition.TRANSITION_CLEANUP)
            node.wait_for_state(State.PRIMARY_STATE_UNCONFIGURED)
        log = node.log.read_text()
    worst = min(agreements, key=agreements.get)
    assert agreements[worst] >= MIN_AGREEMENT, f"worst agreement {agreements[worst]:.4f} at {worst}: {agreements}"
    assert FAILED.search(log) is None, log[-3000:]
    assert "backend torch_cuda on cuda:0" in log, log[-3000:]


def test_gpu_node_process_runs_a_users_model_with_logits_at_a_quarter_of_its_input(ros, tmp_path, monkeypatch):
    """A user's own checkpoint (its own mean/std and input size; logits at 1/4, as a SegFormer's) as the node runs
    it on torch_cuda, as its own process, against the same model's ONNX on ONNX Runtime."""
    import os

    import user_models

    from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter
    from lcsnet_seg.tools import convert

    test_dir = os.path.dirname(user_models.__file__)  # the node process imports the user's factory from here
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [test_dir, os.environ.get("PYTHONPATH")])))
    pth = user_models.save_checkpoint(tmp_path / "user.pth", 4)
    assert convert.main([str(pth), "--out-dir", str(tmp_path), "--stages", "onnx", "--parity-images", "1"]) == 0
    reference, _ = build_segmenter(tmp_path / "user.onnx", SegmenterConfig(backend="onnxruntime"))
    raw = ros.helper.create_publisher(Image, "/gpu_user/image", RELIABLE)
    params = {"model_path": str(pth), "backend": "torch_cuda", "autostart": True, "force_outputs": True}
    with NodeProcess(ros, tmp_path / "user_node.log", params, {"image": "/gpu_user/image"}) as node:
        labels = ros.collect(Image, node.topic("label_mask"))
        node.wait_for_state(State.PRIMARY_STATE_ACTIVE)
        agree = total = 0
        for sec, (height, width) in enumerate(SIZES * 2, start=1):
            rgb = generate_scene(8_000_000 + sec, height, width)[0]
            got = send_and_receive(ros, raw, array_to_image(Image, rgb, "rgb8", header(sec)), labels, sec)
            gpu = np.frombuffer(got.data, np.uint8).reshape(height, width)
            agree += int(np.count_nonzero(gpu == reference(rgb, "rgb8", ("labels",)).labels))
            total += gpu.size
        log = node.log.read_text()
    print(f"AGREEMENT node process torch_cuda user model (logits 1/4) vs its ONNX on ONNX Runtime: {agree / total:.5f}")
    assert agree / total >= MIN_AGREEMENT and FAILED.search(log) is None, log[-3000:]
    assert "input 128x96" in log, log[-3000:]  # the checkpoint's own input size (width x height)


# four cameras of one robot: sizes and encodings differ, one batch per tick
CAMERAS = {
    "front": (480, 640, "rgb8"),
    "rear": (480, 640, "bgr8"),
    "left": (360, 480, "rgb8"),
    "wrist": (240, 320, "mono8"),
}


def test_four_cameras_in_one_gpu_node_process(ros, tmp_path, segmenter):
    """The node as its own process on torch_cuda with four cameras: each camera's label mask with its own stamp,
    frame_id and size, in agreement with the CPU reference; a camera that stops holds back none of the others;
    the batch really holds several cameras (batch_size_mean in /diagnostics); a clean exit."""
    remap = {f"{c}/image": f"/gpu_mc/{c}/image" for c in CAMERAS}
    params = {"model_path": str(DEMO_PTH), "backend": "torch_cuda", "cameras": list(CAMERAS), "force_outputs": True}
    params["batch_wait_ms"] = 50.0  # this test publishes the four frames one after another, on a shared machine
    pubs = {c: ros.helper.create_publisher(Image, f"/gpu_mc/{c}/image", RELIABLE) for c in CAMERAS}
    with NodeProcess(ros, tmp_path / "mc_node.log", params, remap) as node:
        labels = {c: ros.collect(Image, node.topic("label_mask", c)) for c in CAMERAS}
        statuses = ros.statuses(node.name)
        node.wait_for_state(State.PRIMARY_STATE_ACTIVE)
        agree = total = 0
        for sec in range(1, 9):
            sent = {  # made first, then published together: a rig's cameras triggered at once
                camera: as_encoding(generate_scene(9_000_000 + sec * 10 + k, h, w)[0], encoding)
                for k, (camera, (h, w, encoding)) in enumerate(CAMERAS.items())
            }
            msgs = {c: array_to_image(Image, im, CAMERAS[c][2], header(sec, f"{c}_optical")) for c, im in sent.items()}
            for camera, msg in msgs.items():
                pubs[camera].publish(msg)
            for camera, image in sent.items():
                msg = first_with_stamp(labels[camera], sec)
                if msg is None:  # best effort: a frame may be lost; send that camera's again
                    msg = send_and_receive(ros, pubs[camera], msgs[camera], labels[camera], sec)
                assert msg.header.frame_id == f"{camera}_optical" and (msg.height, msg.width) == image.shape[:2]
                gpu = np.frombuffer(msg.data, np.uint8).reshape(image.shape[:2])
                cpu = segmenter(image, CAMERAS[camera][2], outputs=("labels",)).labels
                agree, total = agree + int((gpu == cpu).sum()), total + gpu.size
        for sec in range(20, 25):  # only the front camera goes on
            h, w, encoding = CAMERAS["front"]
            image = as_encoding(generate_scene(sec, h, w)[0], encoding)
            msg = array_to_image(Image, image, encoding, header(sec, "front_optical"))
            assert send_and_receive(ros, pubs["front"], msg, labels["front"], sec) is not None
        batch = [float(values["batch_size_mean"]) for _, _, values in list(statuses) if "batch_size_mean" in values]
        assert node.change(Transition.TRANSITION_DEACTIVATE)
        log = node.signal_and_wait(signal.SIGINT)
    print(f"AGREEMENT four-camera GPU node vs CPU reference: {agree / total:.5f}; batch_size_mean {batch[-3:]}")
    assert agree / total >= MIN_AGREEMENT, log[-3000:]
    assert batch and max(batch) > 1.5, f"the cameras were not batched: {batch}"
    assert node.process.returncode == 0 and FAILED.search(log) is None and "Traceback" not in log, log[-3000:]


def test_jpeg_cameras_decoded_on_the_gpu_in_a_node_process(ros, tmp_path, segmenter):
    """input_transport compressed with decoder gpu (nvImageCodec): two JPEG cameras decoded on the GPU, labels
    against the CPU reference on OpenCV's decode of the same JPEG; a corrupt JPEG is a bad frame (counted, the
    node goes on); a PNG goes to the CPU decoder; /diagnostics says the GPU decoder runs."""
    from lcsnet_seg.gpu.decode import nvimgcodec_unavailable_reason
    from lcsnet_seg.image_messages import compressed_to_array

    why = nvimgcodec_unavailable_reason(0)
    if why:
        pytest.skip(f"GPU JPEG decoding: {why}")
    cams = {"front": (1080, 1920), "rear": (480, 640)}
    remap = {f"{c}/image/compressed": f"/gpu_jpeg/{c}/image/compressed" for c in cams}
    params = {
        "model_path": str(DEMO_PTH),
        "backend": "torch_cuda",
        "cameras": list(cams),
        "input_transport": "compressed",
        "decoder": "gpu",
        "force_outputs": True,
        "diagnostics_period": 0.5,
    }
    pubs = {c: ros.helper.create_publisher(CompressedImage, f"/gpu_jpeg/{c}/image/compressed", RELIABLE) for c in cams}
    with NodeProcess(ros, tmp_path / "jpeg_node.log", params, remap) as node:
        labels = {c: ros.collect(Image, node.topic("label_mask", c)) for c in cams}
        statuses = ros.statuses(node.name)
        node.wait_for_state(State.PRIMARY_STATE_ACTIVE)
        agree = total = 0
        for sec in range(1, 7):
            for camera, (h, w) in cams.items():
                bgr = generate_scene(9_500_000 + sec, h, w)[0][..., ::-1]
                data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                msg = CompressedImage(header=header(sec, f"{camera}_optical"), format="jpeg", data=data)
                got = send_and_receive(ros, pubs[camera], msg, labels[camera], sec)
                assert (got.height, got.width) == (h, w) and got.header.frame_id == f"{camera}_optical"
                image, encoding = compressed_to_array(msg)
                cpu = segmenter(image, encoding, outputs=("labels",)).labels
                gpu = np.frombuffer(got.data, np.uint8).reshape(h, w)
                agree, total = agree + int((gpu == cpu).sum()), total + gpu.size
        garbage = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
        bad = CompressedImage(header=header(40, "rear_optical"), format="jpeg", data=data[:20] + garbage)
        pubs["rear"].publish(bad)  # neither decoder reads it: a bad frame, counted
        png = cv2.imencode(".png", bgr)[1].tobytes()
        msg = CompressedImage(header=header(41, "rear_optical"), format="png", data=png)
        assert send_and_receive(ros, pubs["rear"], msg, labels["rear"], 41) is not None  # PNG: the CPU decoder
        msg = CompressedImage(header=header(42, "rear_optical"), format="jpeg", data=data)
        assert send_and_receive(ros, pubs["rear"], msg, labels["rear"], 42) is not None  # and the GPU goes on

        def values():
            return statuses[-1][2] if statuses else {}

        wait_until(
            lambda: values().get("decoder", "").startswith("gpu") and values().get("frames_bad", "0") != "0",
            "/diagnostics naming the GPU decoder and counting the corrupt frame",
        )
        assert int(values()["decode_fallbacks"]) >= 1  # the corrupt JPEG, refused by the GPU decoder first
        log = node.signal_and_wait(signal.SIGINT)
    print(f"AGREEMENT GPU-decoded JPEG node vs CPU reference on OpenCV's decode: {agree / total:.5f}; {values()}")
    assert agree / total >= MIN_AGREEMENT, log[-3000:]
    assert "decoder gpu (nvImageCodec" in log and node.process.returncode == 0, log[-3000:]
    assert FAILED.search(log) is None and "Traceback" not in log, log[-3000:]
