"""The node on the GPU, as deployed: segmentation_node as its own process with backend torch_cuda,
driven through configure/activate/deactivate/cleanup twice by another process, frames in every
encoding (raw in the first round, PNG through image/compressed in the second), label masks
compared with the CPU reference path (the same weights as ONNX, on ONNX Runtime).

A unit test on the thread that created the CUDA context cannot show this: the node runs frames on
its worker thread. Skipped, with the reason, where no CUDA GPU is present."""

import cv2
import numpy as np
import pytest

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

ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
SIZES = ((480, 640), (1080, 1920))
MIN_AGREEMENT = 0.995


def as_encoding(rgb: np.ndarray, encoding: str) -> np.ndarray:
    return {
        "rgb8": rgb,
        "bgr8": np.ascontiguousarray(rgb[..., ::-1]),
        "rgba8": cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA),
        "bgra8": cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA),
        "mono8": cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
    }[encoding]


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
