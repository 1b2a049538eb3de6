"""Shared fixtures. ROS traffic stays on this machine, in a domain of this test run's own."""

import os
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


def _claim_ros_domain() -> int:
    """A ROS domain (50..99) that no other test run on this machine uses: held by an flock for the life of
    this process (another run of this suite skips it), and quiet (no ROS node of anybody else's is seen in
    it), so concurrent test runs (CI beside another job, a developer's second run, an older checkout) never
    see each other's nodes. Tried from a random start: runs in fresh containers get the same pids. At most
    101 on Linux: Fast DDS derives its UDP ports from the domain, and above 101 they fall in the kernel's
    ephemeral range (32768-60999), where any process's outgoing socket can take one and discovery fails."""
    import fcntl
    import random
    import tempfile

    first, count = 50, 50
    start = random.SystemRandom().randrange(count)
    for step in range(count):
        domain = first + (start + step) % count
        handle = open(Path(tempfile.gettempdir()) / f"lcsnet_seg_test_ros_domain_{domain}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        if not _quiet(domain, listen_s=1.5):
            handle.close()
            continue
        _claim_ros_domain.held = handle  # released when this process ends
        return domain
    raise RuntimeError(f"no free, quiet ROS domain in {first}..{first + count - 1} for this test run")


_PROBE = """
import sys, time
import rclpy
domain, listen_s = int(sys.argv[1]), float(sys.argv[2])
rclpy.init(domain_id=domain)
probe = rclpy.create_node("lcsnet_seg_test_domain_probe")
deadline = time.monotonic() + listen_s
while time.monotonic() < deadline and len(probe.get_node_names()) <= 1:
    time.sleep(0.05)
sys.exit(3 if len(probe.get_node_names()) > 1 else 0)
"""


def _quiet(domain: int, listen_s: float) -> bool:
    """True if no other ROS node shows up in ``domain`` (on this machine) within ``listen_s`` seconds. Asked in
    a child process: Fast DDS reads FASTDDS_DEFAULT_PROFILES_FILE once per process, at its first participant,
    and this one's first participant must be made after the tests set it."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("rclpy") is None:  # no ROS here: the ROS tests skip themselves
        return True
    return subprocess.run([sys.executable, "-c", _PROBE, str(domain), str(listen_s)], timeout=120).returncode != 3


os.environ["ROS_DOMAIN_ID"] = str(_claim_ros_domain())
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
    from lcsnet_seg.pipeline import Segmenter

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
