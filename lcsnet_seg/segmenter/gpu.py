"""GpuSegmenter: the Segmenter's GPU path. Same call and result as the CPU Segmenter (segmenter/cpu.py).

Per frame, all on one CUDA stream, with one synchronisation at the end:
  images -> pinned staging (one copy each, split over threads for large frames; the overlay alpha after
  them) -> device (one async copy) -> fused preprocess kernel -> model input buffer ->
  backend.infer_device -> logits buffer (the model's own output size) -> fused postprocess kernel
  (argmax at logit resolution, nearest to the output size) -> output arena -> pinned host arena (one
  async copy) -> sync. Each kernel is one launch with one prepared argument (gpu/kernel_args.py).

Two ways to run that sequence:
- CUDA graph (``cuda_graph=True`` where the backend's infer can be captured: ``graph_capture`` "stream",
  e.g. TensorRT, is captured here with the driver API (gpu/graphs.py); "backend", torch_cuda, by the
  backend's own allocator-aware capture): the whole frame is captured once per FrameGeometry (image sizes
  and row steps, encodings, requested outputs, output sizes) and replayed; the overlay alpha travels in
  device memory, so changing it needs no new capture. At most ``max_graphs`` graphs are kept, least
  recently used freed first (with their buffers). timings_ms: ``total`` (host wall time of the call) and
  ``gpu`` (the graph, copies included, between two CUDA events). Per-stage times do not exist inside one
  graph and are not reported.
- eager (the fallback and reference): the same work launched one call at a time, the buffers of one
  geometry kept until it changes, four timing events reused every frame; timings_ms: preprocess (H2D
  copy + kernel), infer, postprocess (kernel + D2H copy) and total.

Threads: the segmenter may be built on one thread, run on another and closed on a third (a
node's executor and worker): each GPU entry point makes the device current on the calling
thread first (once per thread). Calls must not overlap.

The arrays in a result are views of pinned buffers that the next call overwrites: copy them
(result.copy()) to keep them longer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import numpy as np

from lcsnet_seg.backends.base import Backend
from lcsnet_seg.errors import ConfigError
from lcsnet_seg.gpu.frames import FrameBuffers, FrameGeometry, HostCopier, ImageGeometry, NetworkLayout
from lcsnet_seg.gpu.graphs import Graph, StreamGraph
from lcsnet_seg.gpu.postprocess import GpuPostprocess
from lcsnet_seg.gpu.preprocess import GpuPreprocess
from lcsnet_seg.gpu.runtime import EventPair, GpuContext
from lcsnet_seg.image_formats import pixel_format
from lcsnet_seg.model_info import ModelInfo
from lcsnet_seg.preprocess import channel_sources, normalisation
from lcsnet_seg.segmenter.contract import (
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
CAPTURES = ("stream", "backend")


class GpuSegmenter:
    """Segments H x W x C uint8 images on the GPU with a device-pointer backend.

    results_reused: a result's arrays are views of pinned buffers that the next call overwrites
    (segmentation.FrameSegmenter): keep ``result.copy()`` past the next frame.
    ``graphs``: whether frames run as CUDA graphs now (asked for with ``cuda_graph`` and possible with this
    backend, until a capture fails); ``graph_problem``: why not, where they were asked for."""

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
        # a backend that captures itself (torch) gives the stream: then its capture holds our work too
        self.ctx = GpuContext(device_id, stream_handle=backend.make_stream())
        self._bind_thread()
        self.graphs = bool(cuda_graph) and backend.graph_capture in CAPTURES
        self.graph_problem: str | None = None
        if cuda_graph and not self.graphs:
            self.graph_problem = f"backend {backend.name} cannot run as a CUDA graph: running eager"
        self.max_graphs = int(max_graphs)
        self.captures = 0
        info = self.info
        self.network = self._network_layout()
        self.preprocess = GpuPreprocess(self.ctx, self.network.in_dtype)
        self.postprocess = GpuPostprocess(self.ctx, self.network.logits_dtype, info.num_classes)
        self._input = self.ctx.device_buffer(self.network.input_bytes)
        self._logits = self.ctx.device_buffer(self.network.logits_bytes)
        palette_host, palette_view = self.ctx.pinned_array((256, 3), np.uint8)
        palette_view[:] = info.classes.palette_rgb()
        self._palette = self.ctx.device_buffer(256 * 3)
        self.ctx.copy_to_device(int(self._palette.handle), int(palette_host.handle), 256 * 3)
        self.ctx.synchronize()
        self._scale, self._offset = normalisation(info)
        self._frames: FrameBuffers | None = None  # eager: the buffers of the last geometry
        self._graphs: OrderedDict[FrameGeometry, tuple[FrameBuffers, Graph]] = OrderedDict()  # least recent first
        self._events = EventPair(self.ctx)
        self._stage_events = [self.ctx.event() for _ in range(4)]  # eager: recorded again every frame
        self._copy_to_staging = HostCopier()
        self._closed = False

    def _network_layout(self) -> NetworkLayout:
        """The model buffers from the backend's specs: the logits at the size the model really returns."""
        inp, out = self.backend.input_spec, self.backend.output_spec
        h, w = self.info.input_size
        logits = out.static_shape()
        if len(logits) != 4 or logits[1] != self.info.num_classes:
            raise ConfigError(
                f"backend {self.backend.name} reports logits {logits}; expected 1 x {self.info.num_classes} x h x w"
            )
        return NetworkLayout(h, w, np.dtype(inp.dtype), logits[1], logits[2], logits[3], np.dtype(out.dtype))

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

    def _buffers(self, geometry: FrameGeometry) -> FrameBuffers:
        info = self.info
        maps = [channel_sources(pixel_format(i.encoding), info.color_order) for i in geometry.images]
        return FrameBuffers(
            self.ctx,
            geometry,
            self.network,
            input_ptr=int(self._input.handle),
            logits_ptr=int(self._logits.handle),
            palette_ptr=int(self._palette.handle),
            pre=self.preprocess,
            post=self.postprocess,
            channel_maps=maps,
            scale=self._scale,
            offset=self._offset,
        )

    def _enqueue(self, frame: FrameBuffers, mark=None) -> None:
        """Queue one whole frame on the stream; its images and alpha are already in frame.staging."""
        ctx = self.ctx
        ctx.copy_to_device(frame.image_ptr, frame.staging_ptr, frame.staged_bytes)
        self.preprocess.launch(frame.pre_config, frame.pre_args)
        if mark:
            mark(1)
        self.backend.infer_device(int(self._input.handle), int(self._logits.handle), int(ctx.stream.handle))
        if mark:
            mark(2)
        self.postprocess.launch(frame.post_config, frame.post_args)
        ctx.copy_to_host(frame.arena_host_ptr, frame.arena_dev_ptr, frame.outputs_bytes)

    def __call__(
        self, image: np.ndarray, pixel_format_name: str = "rgb8", outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    ) -> SegmentationResult:
        fmt, image = check_request(image, pixel_format_name, outputs)
        self._bind_thread()
        net_h, net_w = self.info.input_size
        out_hw = image.shape[:2] if self.output_size == "input" else (net_h, net_w)
        wanted = tuple(name for name in OUTPUTS if name == "labels" or name in outputs)
        geometry = FrameGeometry((ImageGeometry.of(image, fmt.name, out_hw),), wanted)
        start = time.perf_counter()
        if self.graphs:
            try:
                frame, timings = self._graph_frame(geometry, [image])
            except Exception as exc:  # a capture the backend refused: eager from here on, said once
                self._drop_graphs()
                self.graphs = False
                self.graph_problem = f"CUDA graph capture failed ({type(exc).__name__}: {exc}); running eager"
                log.warning(self.graph_problem)
                frame, timings = self._eager_frame(geometry, [image])
        else:
            frame, timings = self._eager_frame(geometry, [image])
        host = frame.host[0]
        arrays = {name: host[name] for name in wanted[1:]}
        result = SegmentationResult(labels=host["labels"], arrays=arrays, overlay_order=fmt.output_order)
        timings["total"] = (time.perf_counter() - start) * 1e3
        result.timings_ms = timings
        return result

    def _eager_frame(self, geometry: FrameGeometry, images: list[np.ndarray]):
        if self._frames is None or self._frames.geometry != geometry:
            self.ctx.synchronize()
            if self._frames is not None:
                self._frames.close()
            self._frames = self._buffers(geometry)
        frame = self._frames
        frame.stage(self._copy_to_staging, images, self.overlay_alpha)
        stream, events = self.ctx.stream, self._stage_events
        stream.record(events[0])
        self._enqueue(frame, mark=lambda i: stream.record(events[i]))
        stream.record(events[3])
        events[3].sync()  # the one synchronisation: results are in host memory from here
        e0, e1, e2, e3 = events
        return frame, {"preprocess": e1 - e0, "infer": e2 - e1, "postprocess": e3 - e2}

    def _graph_frame(self, geometry: FrameGeometry, images: list[np.ndarray]):
        entry = self._graphs.get(geometry)
        if entry is None:
            entry = self._capture(geometry, images)
        else:
            self._graphs.move_to_end(geometry)
        frame, graph = entry
        frame.stage(self._copy_to_staging, images, self.overlay_alpha)
        self._events.record_start()
        graph.launch()
        self._events.record_end()
        return frame, {"gpu": self._events.wait_ms()}

    def _capture(self, geometry: FrameGeometry, images: list[np.ndarray]):
        while len(self._graphs) >= self.max_graphs:  # free the least recently used first
            self.ctx.synchronize()
            _, (old_frame, old_graph) = self._graphs.popitem(last=False)
            old_graph.close()
            old_frame.close()
        frame = self._buffers(geometry)
        frame.stage(self._copy_to_staging, images, self.overlay_alpha)

        def enqueue():
            self._enqueue(frame)

        try:
            for _ in range(2):  # warm up: lazy initialisation (and TensorRT's first enqueue) stay out of the capture
                enqueue()
            self.ctx.synchronize()
            graph: Graph
            if self.backend.graph_capture == "backend":
                graph = self.backend.capture(enqueue, int(self.ctx.stream.handle))
            else:
                graph = StreamGraph.capture(self.ctx, enqueue)
        except Exception:
            self.ctx.synchronize()
            frame.close()
            raise
        self.captures += 1
        self._graphs[geometry] = (frame, graph)
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
        for event in self._stage_events:
            event.close()
        self._copy_to_staging.close()
        for buffer in (self._input, self._logits, self._palette):
            buffer.close()
        self.ctx.synchronize()
        self.backend.close()
