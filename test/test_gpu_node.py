"""The node on the GPU, as deployed: segmentation_node as its own process with backend torch_cuda,
driven through configure/activate/deactivate/cleanup twice by another process, frames in every
encoding (raw in the first round, PNG through image/compressed in the second), label masks
compared with the CPU reference path (the same weights as ONNX, on ONNX Runtime).

A unit test on the thread that created the CUDA context cannot show this: the node runs frames on
its worker thread. Skipped, with the reason, where no CUDA GPU is present."""

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

from conftest import DEMO_PTH  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from ros_harness import RELIABLE, NodeProcess, RosHarness, first_with_stamp, header, wait_until  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from lcsnet_seg.model.scene import generate_scene  # noqa: E402
from lcsnet_seg.ros.image_codec import array_to_image  # noqa: E402

SIZES = ((480, 640), (1080, 1920))
MIN_AGREEMENT = 0.995


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
    assert "frame failed" not in log, log[-3000:]
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
    assert agree / total >= MIN_AGREEMENT and "frame failed" not in log, log[-3000:]
    assert "input 128x96" in log, log[-3000:]  # the checkpoint's own input size (width x height)
