"""Shared fixtures. ROS traffic stays on this machine, in a domain of this test run's own (ros_domain.py)."""

import os
from pathlib import Path

import pytest
import ros_domain

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(ros_domain.claim())
os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO = Path(__file__).resolve().parents[1]
DEMO_PTH = REPO / "lcsnet_seg" / "model" / "weights" / "lcsnet_demo.pth"
DEMO_ONNX = REPO / "lcsnet_seg" / "model" / "weights" / "lcsnet_demo.onnx"


def scale(n: int, minimum: int = 1) -> int:
    """Scale a test size by LCSNET_TEST_SCALE (1.0 = full size, as in docs/RELIABILITY.md)."""
    return max(minimum, int(n * float(os.environ.get("LCSNET_TEST_SCALE", "1.0"))))


@pytest.fixture(scope="session")
def demo_onnx() -> Path:
    return DEMO_ONNX


@pytest.fixture(scope="session")
def ort_backend(demo_onnx):
    from lcsnet_seg.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(demo_onnx)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def segmenter(ort_backend):
    from lcsnet_seg.segmenter.cpu import Segmenter

    return Segmenter(ort_backend)


@pytest.fixture(scope="session")
def demo_torch_model():
    torch = pytest.importorskip("torch")
    from lcsnet_seg.model.checkpoint import load_model

    torch.set_num_threads(2)
    return load_model(DEMO_PTH)[0]


def gpu_bytes_in_use(device: int = 0) -> int:
    """GPU memory held by this process (NVML's per-process figure), so that other processes on the GPU (a
    parallel test run) do not count; the whole device's use where NVML cannot name this process."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid() and proc.usedGpuMemory is not None:
                return int(proc.usedGpuMemory)
    except Exception:  # noqa: BLE001 - no NVML, or not allowed to read processes: the device-wide figure
        pass
    from cuda.bindings import runtime as cudart

    err, free, total = cudart.cudaMemGetInfo()
    return total - free
