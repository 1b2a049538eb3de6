"""Device, stream, NVRTC compilation cache and memory for the GPU path (cuda.core + cuda.bindings).

Threads: a CUDA context is current per thread, and cuda.core's Device objects are per-thread
singletons. Every GpuContext method that talks to the driver first makes the device's primary
context current on the calling thread (``activate``), once per thread: afterwards it costs one
thread-local lookup. So a context built on one thread (a node's executor at configure) serves
frames on another (the node's worker) and is closed on a third.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Protocol, SupportsInt

import numpy as np

from lcsnet_seg.errors import BackendUnavailable


def check_result(result, what: str):
    """cuda.bindings calls return (CUresult, *values): raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"{what} failed: {err}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


class MemoryBuffer(Protocol):
    """What the GPU path uses of a cuda.core Buffer: its address (an int, or a CUdeviceptr that int() reads)."""

    @property
    def handle(self) -> SupportsInt: ...


class GpuContext:
    """One device, one stream, and the compiled kernels (compiled once per process and device).

    ``stream_handle``: run on this existing CUDA stream (e.g. one that PyTorch created, so that
    ``torch.cuda.graph`` captures our kernels and copies with the model) instead of a new one.
    The stream's owner must keep it alive as long as this context.
    """

    _kernel_cache: dict[tuple[int, str, str], object] = {}

    def __init__(self, device_id: int = 0, stream_handle: int | None = None) -> None:
        from lcsnet_seg.gpu import unavailable_reason

        why = unavailable_reason()
        if why:
            raise BackendUnavailable(f"GPU path unavailable: {why}")
        from cuda.core import Device, EventOptions, LegacyPinnedMemoryResource, Stream

        self.device_id = int(device_id)
        self._local = threading.local()
        self.activate()
        self.device = Device(self.device_id)
        if stream_handle is None:
            self.stream = self.device.create_stream()
        else:
            self.stream = Stream.from_handle(int(stream_handle))
        self._event_options = EventOptions(timing_enabled=True)
        self._pinned = LegacyPinnedMemoryResource()

    def activate(self) -> None:
        """Make this device's primary context current on the calling thread (once per thread)."""
        if getattr(self._local, "active", False):
            return
        from cuda.core import Device

        Device(self.device_id).set_current()  # this thread's Device singleton, primary context
        self._local.active = True

    @property
    def name(self) -> str:
        return f"cuda:{self.device_id} ({self.device.name})"

    def kernel(self, source: str, name: str):
        """Compile ``source`` with NVRTC for this device's architecture (cached) and return kernel ``name``."""
        from cuda.core import Program, ProgramOptions

        self.activate()
        key = (self.device_id, name, source)
        if key not in self._kernel_cache:
            options = ProgramOptions(std="c++17", arch=f"sm_{self.device.arch}")
            module = Program(source, code_type="c++", options=options).compile("cubin")
            self._kernel_cache[key] = module.get_kernel(name)
        return self._kernel_cache[key]

    def event(self):
        self.activate()
        return self.stream.record(options=self._event_options)

    def device_buffer(self, nbytes: int):
        self.activate()
        return self.device.allocate(max(int(nbytes), 1), stream=self.stream)

    def pinned_array(self, shape: tuple[int, ...], dtype) -> tuple[MemoryBuffer, np.ndarray]:
        """A page-locked host buffer and a numpy view of it (shape, dtype)."""
        self.activate()
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        buffer = self._pinned.allocate(max(nbytes, 1), stream=self.stream)
        raw = (ctypes.c_uint8 * max(nbytes, 1)).from_address(int(buffer.handle))
        raw._owner = buffer  # views keep the page-locked memory alive, even past the buffer set that made it
        return buffer, np.frombuffer(raw, np.uint8, count=nbytes).view(dtype).reshape(shape)

    def copy_to_device(self, device_ptr: int, host_ptr: int, nbytes: int) -> None:
        from cuda.bindings import driver

        self.activate()
        check_result(driver.cuMemcpyHtoDAsync(device_ptr, host_ptr, nbytes, self.stream.handle), "cuMemcpyHtoDAsync")

    def copy_to_host(self, host_ptr: int, device_ptr: int, nbytes: int) -> None:
        from cuda.bindings import driver

        self.activate()
        check_result(driver.cuMemcpyDtoHAsync(host_ptr, device_ptr, nbytes, self.stream.handle), "cuMemcpyDtoHAsync")

    def copy_on_device(self, dst_ptr: int, src_ptr: int, nbytes: int) -> None:
        from cuda.bindings import driver

        self.activate()
        check_result(driver.cuMemcpyDtoDAsync(dst_ptr, src_ptr, nbytes, self.stream.handle), "cuMemcpyDtoDAsync")

    def synchronize(self) -> None:
        self.activate()
        self.stream.sync()


class EventPair:
    """Two reusable timing events on a context's stream (driver API: no object per frame)."""

    def __init__(self, ctx: GpuContext) -> None:
        from cuda.bindings import driver

        ctx.activate()
        self._ctx = ctx
        self.start = check_result(driver.cuEventCreate(0), "cuEventCreate")
        self.end = check_result(driver.cuEventCreate(0), "cuEventCreate")

    def record_start(self) -> None:
        from cuda.bindings import driver

        check_result(driver.cuEventRecord(self.start, self._ctx.stream.handle), "cuEventRecord")

    def record_end(self) -> None:
        from cuda.bindings import driver

        check_result(driver.cuEventRecord(self.end, self._ctx.stream.handle), "cuEventRecord")

    def wait_ms(self) -> float:
        """Block until the end event completes; the GPU time between the two events in ms."""
        from cuda.bindings import driver

        check_result(driver.cuEventSynchronize(self.end), "cuEventSynchronize")
        elapsed = getattr(driver, "cuEventElapsedTime", None) or driver.cuEventElapsedTime_v2
        return float(check_result(elapsed(self.start, self.end), "cuEventElapsedTime"))

    def close(self) -> None:
        from cuda.bindings import driver

        if self.start is not None:
            self._ctx.activate()
            check_result(driver.cuEventDestroy(self.start), "cuEventDestroy")
            check_result(driver.cuEventDestroy(self.end), "cuEventDestroy")
            self.start = self.end = None


@dataclass
class CudaArrayView:
    """A device pointer seen as an array through __cuda_array_interface__ (zero-copy into torch/CuPy)."""

    pointer: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def __cuda_array_interface__(self) -> dict:
        return {
            "shape": tuple(self.shape),
            "typestr": np.dtype(self.dtype).str,
            "data": (int(self.pointer), False),
            "version": 2,
            "strides": None,
        }
