"""GpuSegmenter: the Segmenter's GPU path. Same call and result as lcsnet_seg.pipeline.Segmenter.

Per frame, all on one CUDA stream, with one synchronisation at the end:
  image -> pinned staging (one memcpy) -> device (async) -> fused preprocess kernel -> model input
  buffer -> backend.infer_device -> logits buffer -> fused postprocess kernel -> outputs ->
  pinned host buffers (async) -> sync.
Device and pinned buffers are allocated once per input size and reused; a new size reallocates.
Stage times come from CUDA events recorded on the stream.

The arrays in a result are views of pinned buffers that the next call overwrites: copy them
(np.array(result.labels)) to keep them longer.
"""

from __future__ import annotations

import ctypes
import time

import numpy as np

from lcsnet_seg.backends.base import Backend
from lcsnet_seg.errors import ConfigError
from lcsnet_seg.gpu.postprocess import GpuPostprocess
from lcsnet_seg.gpu.preprocess import GpuPreprocess
from lcsnet_seg.gpu.runtime import GpuContext
from lcsnet_seg.model_info import ModelInfo
from lcsnet_seg.pipeline import OUTPUT_SIZES, SegmentationResult, check_alpha, check_request
from lcsnet_seg.preprocess import channel_sources, normalisation


class _FrameBuffers:
    """Device image, outputs, and their pinned host twins for one input geometry."""

    def __init__(self, ctx: GpuContext, height: int, width: int, channels: int, step: int, out_h: int,
                 out_w: int) -> None:
        self.key = (height, width, channels, step, out_h, out_w)
        self.image_bytes = step * (height - 1) + width * channels
        self.image_host, _ = ctx.pinned_array((self.image_bytes,), np.uint8)
        self.image_dev = ctx.device_buffer(self.image_bytes)
        self.host: dict[str, np.ndarray] = {}
        self.dev: dict[str, object] = {}
        self._keep = []
        for name, shape, dtype in (("labels", (out_h, out_w), np.uint8), ("color_mask", (out_h, out_w, 3), np.uint8),
                                   ("overlay", (out_h, out_w, 3), np.uint8),
                                   ("confidence", (out_h, out_w), np.float32)):
            buffer, view = ctx.pinned_array(shape, dtype)
            self._keep.append(buffer)
            self.host[name] = view
            self.dev[name] = ctx.device_buffer(view.nbytes)


class GpuSegmenter:
    """Segments H x W x C uint8 images on the GPU with a device-pointer backend."""

    def __init__(self, backend: Backend, overlay_alpha: float = 0.5, output_size: str = "input",
                 device_id: int = 0) -> None:
        if not backend.supports_device:
            raise ConfigError(f"backend {backend.name} has no device-pointer path; use the CPU Segmenter")
        if output_size not in OUTPUT_SIZES:
            raise ConfigError(f"output_size {output_size!r} must be one of {OUTPUT_SIZES}")
        self.backend = backend
        self.overlay_alpha = check_alpha(overlay_alpha)
        self.output_size = output_size
        self.ctx = GpuContext(device_id)
        info = self.info
        h, w = info.input_size
        in_dtype, out_dtype = backend.input_spec.dtype, backend.output_spec.dtype
        self.preprocess = GpuPreprocess(self.ctx, in_dtype)
        self.postprocess = GpuPostprocess(self.ctx, out_dtype, info.num_classes)
        self._input = self.ctx.device_buffer(3 * h * w * in_dtype.itemsize)
        self._logits = self.ctx.device_buffer(info.num_classes * h * w * out_dtype.itemsize)
        palette_host, palette_view = self.ctx.pinned_array((256, 3), np.uint8)
        palette_view[:] = info.classes.palette_rgb()
        self._palette = self.ctx.device_buffer(256 * 3)
        self.ctx.copy_to_device(int(self._palette.handle), int(palette_host.handle), 256 * 3)
        self.ctx.synchronize()
        self._scale, self._offset = normalisation(info)
        self._frames: _FrameBuffers | None = None

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    @property
    def device(self) -> str:
        return self.ctx.name

    def _buffers(self, image: np.ndarray, out_h: int, out_w: int) -> _FrameBuffers:
        h, w, c = image.shape
        key = (h, w, c, image.strides[0], out_h, out_w)
        if self._frames is None or self._frames.key != key:
            self.ctx.synchronize()
            self._frames = _FrameBuffers(self.ctx, h, w, c, image.strides[0], out_h, out_w)
        return self._frames

    def __call__(self, image: np.ndarray, pixel_format_name: str = "rgb8",
                 outputs: tuple[str, ...] = ("labels", "color_mask", "overlay")) -> SegmentationResult:
        fmt, image = check_request(image, pixel_format_name, outputs)
        info, ctx = self.info, self.ctx
        net_h, net_w = info.input_size
        out_h, out_w = image.shape[:2] if self.output_size == "input" else (net_h, net_w)
        frame = self._buffers(image, out_h, out_w)
        start = time.perf_counter()
        # The image as it lies in memory, row padding included: one memcpy into pinned staging.
        ctypes.memmove(int(frame.image_host.handle), image.ctypes.data, frame.image_bytes)
        e0 = ctx.event()
        image_ptr = int(frame.image_dev.handle)
        ctx.copy_to_device(image_ptr, int(frame.image_host.handle), frame.image_bytes)
        self.preprocess(image_ptr, image.shape[1], image.shape[0], image.strides[0], fmt.channels,
                        channel_sources(fmt, info.colour_order), int(self._input.handle), net_w, net_h,
                        self._scale, self._offset)
        e1 = ctx.event()
        self.backend.infer_device(int(self._input.handle), int(self._logits.handle), int(ctx.stream.handle))
        e2 = ctx.event()
        wanted = {"labels"} | set(outputs)
        ptr = {name: int(frame.dev[name].handle) if name in wanted else 0 for name in frame.dev}
        self.postprocess(int(self._logits.handle), info.num_classes, net_w, net_h, image_ptr, image.shape[1],
                         image.shape[0], image.strides[0], fmt.channels, out_w, out_h, int(self._palette.handle),
                         self.overlay_alpha, fmt.output_order == "bgr", ptr["labels"], ptr["color_mask"],
                         ptr["overlay"], ptr["confidence"])
        for name in wanted:
            ctx.copy_to_host(frame.host[name].ctypes.data, ptr[name], frame.host[name].nbytes)
        e3 = ctx.event()
        e3.sync()  # the one synchronisation: results are in host memory from here
        total = (time.perf_counter() - start) * 1e3
        result = SegmentationResult(labels=frame.host["labels"], overlay_order=fmt.output_order)
        for name in ("color_mask", "overlay", "confidence"):
            if name in wanted:
                setattr(result, name, frame.host[name])
        result.timings_ms = {"preprocess": e1 - e0, "infer": e2 - e1, "postprocess": e3 - e2, "total": total}
        return result

    def close(self) -> None:
        self.ctx.synchronize()
        self._frames = None
        self.backend.close()
