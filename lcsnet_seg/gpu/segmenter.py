"""GpuSegmenter: the Segmenter's GPU path. Same call and result as lcsnet_seg.pipeline.Segmenter.

Per frame, all on one CUDA stream, with one synchronisation at the end:
  image -> pinned staging (one copy, split over threads for large frames; the overlay alpha after it)
  -> device (one async copy)
  -> fused preprocess kernel -> model input buffer -> backend.infer_device -> logits buffer ->
  fused postprocess kernel -> output arena -> pinned host arena (one async copy) -> sync.

Two ways to run that sequence:
- CUDA graph (``cuda_graph=True``, where the backend can capture: torch_cuda): the whole frame is
  captured once per (image size and row step, encoding, requested outputs, output size) and
  replayed; the overlay alpha travels in device memory, so changing it needs no new capture. At
  most ``max_graphs`` graphs are kept, least recently used freed first (with their buffers).
  timings_ms: ``total`` (host wall time of the call) and ``gpu`` (the graph, copies included,
  between two CUDA events). Per-stage times do not exist inside one graph and are not reported.
- eager (the fallback and reference): the same work launched one call at a time, buffers of one
  geometry kept until it changes; timings_ms: preprocess (H2D copy + kernel), infer,
  postprocess (kernel + D2H copy) from CUDA events, and total.

Threads: the segmenter may be built on one thread, run on another and closed on a third (a
node's executor and worker): each GPU entry point makes the device current on the calling
thread first (once per thread). Calls must not overlap.

The arrays in a result are views of pinned buffers that the next call overwrites: copy them
(np.array(result.labels)) to keep them longer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import numpy as np

from lcsnet_seg.backends.base import Backend
from lcsnet_seg.errors import ConfigError
from lcsnet_seg.gpu.frames import FrameBuffers, HostCopier
from lcsnet_seg.gpu.postprocess import GpuPostprocess
from lcsnet_seg.gpu.preprocess import GpuPreprocess
from lcsnet_seg.gpu.runtime import EventPair, GpuContext
from lcsnet_seg.model_info import ModelInfo
from lcsnet_seg.preprocess import channel_sources, normalisation
from lcsnet_seg.segmentation import (
    DEFAULT_OUTPUTS,
    OUTPUT_SIZES,
    OUTPUTS,
    SegmentationResult,
    check_alpha,
    check_request,
)

log = logging.getLogger(__name__)
GRAPH_TIMINGS = ("total", "gpu")
EAGER_TIMINGS = ("preprocess", "infer", "postprocess", "total")


class GpuSegmenter:
    """Segments H x W x C uint8 images on the GPU with a device-pointer backend.

    results_reused: a result's arrays are views of pinned buffers that the next call overwrites
    (segmentation.FrameSegmenter): keep ``result.copy()`` past the next frame."""

    results_reused = True

    def __init__(
        self,
        backend: Backend,
        overlay_alpha: float = 0.5,
        output_size: str = "input",
        device_id: int = 0,
        cuda_graph: bool = True,
        max_graphs: int = 4,
    ) -> None:
        if not backend.supports_device:
            raise ConfigError(f"backend {backend.name} has no device-pointer path; use the CPU Segmenter")
        if output_size not in OUTPUT_SIZES:
            raise ConfigError(f"output_size {output_size!r} must be one of {OUTPUT_SIZES}")
        if int(max_graphs) < 1:
            raise ConfigError(f"max_graphs {max_graphs} must be at least 1")
        self.backend = backend
        self.overlay_alpha = check_alpha(overlay_alpha)
        self.output_size = output_size
        self._local = threading.local()
        # On a backend that captures graphs, run on its stream: then its capture holds our work too.
        stream = backend.make_stream() if backend.supports_graph else None
        self.ctx = GpuContext(device_id, stream_handle=stream)
        self._bind_thread()
        self.cuda_graph = bool(cuda_graph) and backend.supports_graph
        self.graph_problem: str | None = None  # why frames run eager although graphs were asked for
        if cuda_graph and not self.cuda_graph:
            self.graph_problem = f"backend {backend.name} cannot capture CUDA graphs: running eager"
        self.max_graphs = int(max_graphs)
        self.captures = 0
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
        self._frames: FrameBuffers | None = None  # eager: the buffers of the last geometry
        self._graphs: OrderedDict = OrderedDict()  # key -> (FrameBuffers, graph), least recent first
        self._events = EventPair(self.ctx)
        self._copy_to_staging = HostCopier()
        self._closed = False

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    @property
    def device(self) -> str:
        return self.ctx.name

    def _bind_thread(self) -> None:
        """Make the device current for this thread (context and backend), once per thread."""
        if getattr(self._local, "bound", False):
            return
        self.ctx.activate()
        self.backend.bind_thread()
        self._local.bound = True

    def _enqueue(self, frame: FrameBuffers, image_shape, step: int, fmt, out_h: int, out_w: int, mark=None) -> None:
        """Queue one whole frame on the stream; the image and alpha are already in frame.staging."""
        ctx, info = self.ctx, self.info
        net_h, net_w = info.input_size
        height, width, channels = image_shape
        ctx.copy_to_device(frame.image_ptr, frame.staging_ptr, frame.staged_bytes)
        self.preprocess(
            frame.image_ptr,
            width,
            height,
            step,
            channels,
            channel_sources(fmt, info.color_order),
            int(self._input.handle),
            net_w,
            net_h,
            self._scale,
            self._offset,
        )
        if mark:
            mark()
        self.backend.infer_device(int(self._input.handle), int(self._logits.handle), int(ctx.stream.handle))
        if mark:
            mark()
        ptr = {name: frame.dev.get(name, 0) for name in OUTPUTS}
        self.postprocess(
            int(self._logits.handle),
            info.num_classes,
            net_w,
            net_h,
            frame.image_ptr,
            width,
            height,
            step,
            channels,
            out_w,
            out_h,
            int(self._palette.handle),
            self.overlay_alpha,
            fmt.output_order == "bgr",
            ptr["labels"],
            ptr["color_mask"],
            ptr["overlay"],
            ptr["confidence"],
            alpha_ptr=frame.alpha_ptr,
        )
        ctx.copy_to_host(frame.arena_host_ptr, frame.arena_dev_ptr, frame.outputs_bytes)

    def __call__(
        self, image: np.ndarray, pixel_format_name: str = "rgb8", outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    ) -> SegmentationResult:
        fmt, image = check_request(image, pixel_format_name, outputs)
        self._bind_thread()
        net_h, net_w = self.info.input_size
        out_h, out_w = image.shape[:2] if self.output_size == "input" else (net_h, net_w)
        wanted = tuple(name for name in OUTPUTS if name == "labels" or name in outputs)
        start = time.perf_counter()
        if self.cuda_graph:
            try:
                frame, timings = self._graph_frame(image, fmt, wanted, out_h, out_w)
            except Exception as exc:  # a capture the backend refused: eager from here on, said once
                self._drop_graphs()
                self.cuda_graph = False
                self.graph_problem = f"CUDA graph capture failed ({type(exc).__name__}: {exc}); running eager"
                log.warning(self.graph_problem)
                frame, timings = self._eager_frame(image, fmt, wanted, out_h, out_w)
        else:
            frame, timings = self._eager_frame(image, fmt, wanted, out_h, out_w)
        result = SegmentationResult(labels=frame.host["labels"], overlay_order=fmt.output_order)
        for name in wanted[1:]:
            setattr(result, name, frame.host[name])
        timings["total"] = (time.perf_counter() - start) * 1e3
        result.timings_ms = timings
        return result

    def _stage(self, frame: FrameBuffers, image: np.ndarray) -> None:
        # The image as it lies in memory, row padding included: one copy into pinned staging.
        self._copy_to_staging(frame.staging_ptr, image.__array_interface__["data"][0], frame.image_bytes)
        frame.alpha_host[0] = self.overlay_alpha

    def _eager_frame(self, image, fmt, wanted, out_h, out_w):
        h, w, c = image.shape
        key = (h, w, c, image.strides[0], out_h, out_w, wanted)
        if self._frames is None or self._frames.key != key:
            self.ctx.synchronize()
            if self._frames is not None:
                self._frames.close()
            self._frames = FrameBuffers(self.ctx, h, w, c, image.strides[0], out_h, out_w, wanted)
        frame = self._frames
        self._stage(frame, image)
        events = [self.ctx.event()]
        self._enqueue(
            frame, image.shape, image.strides[0], fmt, out_h, out_w, mark=lambda: events.append(self.ctx.event())
        )
        events.append(self.ctx.event())
        events[-1].sync()  # the one synchronisation: results are in host memory from here
        e0, e1, e2, e3 = events
        return frame, {"preprocess": e1 - e0, "infer": e2 - e1, "postprocess": e3 - e2}

    def _graph_frame(self, image, fmt, wanted, out_h, out_w):
        h, w, c = image.shape
        key = (h, w, c, image.strides[0], fmt.name, wanted, out_h, out_w)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(key, image, fmt, wanted, out_h, out_w)
        else:
            self._graphs.move_to_end(key)
        frame, graph = entry
        self._stage(frame, image)
        self._events.record_start()
        graph.launch()
        self._events.record_end()
        return frame, {"gpu": self._events.wait_ms()}

    def _capture(self, key, image, fmt, wanted, out_h, out_w):
        h, w, c = image.shape
        step = image.strides[0]
        while len(self._graphs) >= self.max_graphs:  # free the least recently used first
            self.ctx.synchronize()
            _, (old_frame, old_graph) = self._graphs.popitem(last=False)
            old_graph.close()
            old_frame.close()
        frame = FrameBuffers(self.ctx, h, w, c, step, out_h, out_w, wanted)
        self._stage(frame, image)

        def enqueue():
            self._enqueue(frame, image.shape, step, fmt, out_h, out_w)

        try:
            for _ in range(2):  # warm up: lazy initialisation stays out of the capture
                enqueue()
            self.ctx.synchronize()
            graph = self.backend.capture(enqueue, int(self.ctx.stream.handle))
        except Exception:
            self.ctx.synchronize()
            frame.close()
            raise
        self.captures += 1
        self._graphs[key] = (frame, graph)
        return frame, graph

    def _drop_graphs(self) -> None:
        self.ctx.synchronize()
        while self._graphs:
            _, (frame, graph) = self._graphs.popitem(last=False)
            graph.close()
            frame.close()

    @property
    def graph_count(self) -> int:
        return len(self._graphs)

    def close(self) -> None:
        """Free the graphs, buffers and the backend; safe on any thread, idempotent."""
        if self._closed:
            return
        self._closed = True
        self._bind_thread()
        self._drop_graphs()
        if self._frames is not None:
            self._frames.close()
            self._frames = None
        self._events.close()
        self._copy_to_staging.close()
        for buffer in (self._input, self._logits, self._palette):
            buffer.close()
        self.ctx.synchronize()
        self.backend.close()
