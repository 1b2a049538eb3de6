"""Device, stream, NVRTC compilation cache and memory for the GPU path (cuda.core + cuda.bindings)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from lcsnet_seg.errors import BackendUnavailable


def _check(result, what: str):
    """cuda.bindings calls return (CUresult, *values): raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"{what} failed: {err}")
    return values[0] if len(values) == 1 else tuple(values)


class GpuContext:
    """One device, one stream, and the compiled kernels (compiled once per process and device)."""

    _kernel_cache: dict[tuple[int, str, str], object] = {}

    def __init__(self, device_id: int = 0) -> None:
        from lcsnet_seg.gpu import unavailable_reason

        why = unavailable_reason()
        if why:
            raise BackendUnavailable(f"GPU path unavailable: {why}")
        from cuda.core import Device, EventOptions, LegacyPinnedMemoryResource

        self.device = Device(device_id)
        self.device.set_current()
        self.stream = self.device.create_stream()
        self._event_options = EventOptions(timing_enabled=True)
        self._pinned = LegacyPinnedMemoryResource()

    @property
    def name(self) -> str:
        return f"cuda:{self.device.device_id} ({self.device.name})"

    def kernel(self, source: str, name: str):
        """Compile ``source`` with NVRTC for this device's architecture (cached) and return kernel ``name``."""
        from cuda.core import Program, ProgramOptions

        key = (self.device.device_id, name, source)
        if key not in self._kernel_cache:
            options = ProgramOptions(std="c++17", arch=f"sm_{self.device.arch}")
            module = Program(source, code_type="c++", options=options).compile("cubin")
            self._kernel_cache[key] = module.get_kernel(name)
        return self._kernel_cache[key]

    def event(self):
        return self.stream.record(options=self._event_options)

    def device_buffer(self, nbytes: int):
        return self.device.allocate(max(int(nbytes), 1), stream=self.stream)

    def pinned_array(self, shape: tuple[int, ...], dtype) -> tuple[object, np.ndarray]:
        """A page-locked host buffer and a numpy view of it (shape, dtype)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        buffer = self._pinned.allocate(max(nbytes, 1), stream=self.stream)
        raw = (ctypes.c_uint8 * max(nbytes, 1)).from_address(int(buffer.handle))
        return buffer, np.frombuffer(raw, np.uint8, count=nbytes).view(dtype).reshape(shape)

    def copy_to_device(self, device_ptr: int, host_ptr: int, nbytes: int) -> None:
        from cuda.bindings import driver

        _check(driver.cuMemcpyHtoDAsync(device_ptr, host_ptr, nbytes, self.stream.handle), "cuMemcpyHtoDAsync")

    def copy_to_host(self, host_ptr: int, device_ptr: int, nbytes: int) -> None:
        from cuda.bindings import driver

        _check(driver.cuMemcpyDtoHAsync(host_ptr, device_ptr, nbytes, self.stream.handle), "cuMemcpyDtoHAsync")

    def synchronize(self) -> None:
        self.stream.sync()


@dataclass
class CudaArrayView:
    """A device pointer seen as an array through __cuda_array_interface__ (zero-copy into torch/CuPy)."""

    pointer: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": tuple(self.shape), "typestr": np.dtype(self.dtype).str, "data": (int(self.pointer), False),
                "version": 2, "strides": None}
