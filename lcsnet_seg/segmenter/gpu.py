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
from collections.abc import Sequence
from typing import Any

import numpy as np

from lcsnet_seg.backends.base import Backend
from lcsnet_seg.errors import ConfigError, ImageError
from lcsnet_seg.gpu.frames import FrameBuffers, FrameGeometry, HostCopier, ImageGeometry, NetworkLayout, is_device_image
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


class CaptureRefused(RuntimeError):
    """The stream capture of a frame failed (not the frame's work itself): frames run eagerly from then on."""


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
        max_batch: int = 1,
    ) -> None:
        if not backend.supports_device:
            raise ConfigError(f"backend {backend.name} has no device-pointer path; use the CPU Segmenter")
        if output_size not in OUTPUT_SIZES:
            raise ConfigError(f"output_size {output_size!r} must be one of {OUTPUT_SIZES}")
        if int(max_graphs) < 1:
            raise ConfigError(f"max_graphs {max_graphs} must be at least 1")
        if int(max_batch) < 1:
            raise ConfigError(f"max_batch {max_batch} must be at least 1")
        self.backend = backend
        self.overlay_alpha = check_alpha(overlay_alpha)
        self.output_size = output_size
        self._local = threading.local()
        self._lock = threading.Lock()  # a frame in progress and close() never overlap (close waits for the frame)
        self._closed = False
        self.jpeg_decoder: Any = None  # a GpuJpegDecoder on this stream, once use_gpu_decoder() made one
        self.decoder_note: str | None = None  # why JPEG frames are not decoded on the GPU, where they were asked to be
        # a backend that captures itself (torch) gives the stream: then its capture holds our work too
        self.ctx = GpuContext(device_id, stream_handle=backend.make_stream())
        self._bind_thread()
        try:
            self._build(cuda_graph, max_graphs, max_batch)
        except BaseException:
            self._free()
            raise

    def _build(self, cuda_graph: bool, max_graphs: int, max_batch: int) -> None:
        backend = self.backend
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
        # one call segments up to `chunk` images in one backend call; the model buffers hold the batch it runs them at
        self.chunk = max(1, min(int(max_batch), backend.max_batch))
        backend.plan_batch(self.chunk)
        capacity = backend.batch_size_for(self.chunk)
        self._input = self.ctx.device_buffer(self.network.input_bytes * capacity)
        self._logits = self.ctx.device_buffer(self.network.logits_bytes * capacity)
        palette_host, palette_view = self.ctx.pinned_array((256, 3), np.uint8)
        palette_view[:] = info.classes.palette_rgb()
        self._palette = self.ctx.device_buffer(256 * 3)
        self.ctx.copy_to_device(int(self._palette.handle), int(palette_host.handle), 256 * 3)
        self.ctx.synchronize()
        self._scale, self._offset = normalisation(info)
        self._frames: OrderedDict[FrameGeometry, FrameBuffers] = OrderedDict()  # eager: least recent first
        self._graphs: OrderedDict[FrameGeometry, tuple[FrameBuffers, Graph]] = OrderedDict()  # least recent first
        self._events = EventPair(self.ctx)
        self._stage_events = [self.ctx.event() for _ in range(4)]  # eager: recorded again every frame
        self._copy_to_staging = HostCopier()

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
        batch = self.backend.batch_size_for(len(frame.geometry.images))
        self.backend.infer_device(int(self._input.handle), int(self._logits.handle), int(ctx.stream.handle), batch)
        if mark:
            mark(2)
        self.postprocess.launch(frame.post_config, frame.post_args)
        ctx.copy_to_host(frame.arena_host_ptr, frame.arena_dev_ptr, frame.outputs_bytes)

    def __call__(
        self, image: np.ndarray, pixel_format_name: str = "rgb8", outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    ) -> SegmentationResult:
        return self.segment_batch([(image, pixel_format_name)], outputs)[0]

    def segment_batch(
        self, frames: Sequence[tuple[np.ndarray, str]], outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    ) -> list[SegmentationResult]:
        """Segment several images of any sizes and formats: up to ``chunk`` of them per GPU frame (one backend
        call, one graph per geometry). One result per image, in order; timings_ms the batch's. An image may be in
        device memory already (a DecodedImage of decode_jpegs; its pixel format name is its own ``encoding``)."""
        checked = [self._check(image, name, outputs) for image, name in frames]
        with self._lock:
            if self._closed:
                raise RuntimeError("the GPU Segmenter was used after close()")
            self._bind_thread()
            return self._segment(checked, outputs)

    def _segment(self, checked: list, outputs: tuple[str, ...]) -> list[SegmentationResult]:
        wanted = tuple(name for name in OUTPUTS if name == "labels" or name in outputs)
        start = time.perf_counter()
        results: list[SegmentationResult] = []
        timings: dict[str, float] = {}
        used: dict[FrameGeometry, range] = {}  # the results of this call that view each geometry's buffers
        for first in range(0, len(checked), self.chunk):
            chunk = checked[first : first + self.chunk]
            images = [image for _, image in chunk]
            geometry = FrameGeometry(
                tuple(ImageGeometry.of(im, fmt.name, self._out_hw(im)) for fmt, im in chunk), wanted
            )
            if geometry in used:  # a second chunk of the same geometry overwrites the first's buffers: keep copies
                for i in used[geometry]:
                    results[i] = results[i].copy()
            used[geometry] = range(len(results), len(results) + len(chunk))
            frame, times = self._frame(geometry, images)
            for stage, ms in times.items():
                timings[stage] = timings.get(stage, 0.0) + ms
            for (fmt, _), host in zip(chunk, frame.host):
                arrays = {name: host[name] for name in wanted[1:]}
                results.append(SegmentationResult(labels=host["labels"], arrays=arrays, overlay_order=fmt.output_order))
        timings["total"] = (time.perf_counter() - start) * 1e3
        for result in results:
            result.timings_ms = dict(timings)
        return results

    @staticmethod
    def _check(image, name: str, outputs: tuple[str, ...]):
        if not is_device_image(image):
            return check_request(image, name, outputs)
        fmt, _ = check_request(np.zeros((1, 1, image.channels), np.uint8), image.encoding, outputs)
        if image.height < 1 or image.width < 1 or image.pitch < image.width * image.channels:
            raise ImageError(f"device image {image.width} x {image.height} with pitch {image.pitch} is malformed")
        return fmt, image

    def _out_hw(self, image) -> tuple[int, int]:
        if self.output_size != "input":
            return self.info.input_size
        return (image.height, image.width) if is_device_image(image) else image.shape[:2]

    def decode_jpegs(self, datas: Sequence) -> list:
        """JPEG frames decoded on this Segmenter's device and stream, in one batched call (gpu/decode.py): per frame
        a DecodedImage, to pass to segment_batch as it is, or the Exception (not raised) for a frame to decode on
        the CPU. Needs ``jpeg_decoder`` (SegmenterConfig decoder auto or gpu, and nvImageCodec)."""
        if self.jpeg_decoder is None:
            raise ConfigError("this GPU Segmenter has no JPEG decoder (decoder cpu, or nvImageCodec missing)")
        with self._lock:
            if self._closed:
                raise RuntimeError("the GPU Segmenter was used after close()")
            self._bind_thread()
            return self.jpeg_decoder.decode(datas)

    def use_gpu_decoder(self, hardware: bool = False) -> None:
        """Decode JPEG frames on the GPU from now on (decode_jpegs); raises BackendUnavailable with what to install
        where nvImageCodec cannot decode here."""
        from lcsnet_seg.gpu.decode import GpuJpegDecoder

        self._bind_thread()
        self.jpeg_decoder = GpuJpegDecoder(self.ctx.device_id, int(self.ctx.stream.handle), hardware=hardware)

    def _frame(self, geometry: FrameGeometry, images: list[np.ndarray]):
        """Run one GPU frame (a graph where possible); (its buffers, its stage times)."""
        if self.graphs:
            try:
                return self._graph_frame(geometry, images)
            except CaptureRefused as exc:  # a capture the backend refused: eager from here on, said once
                self._drop_graphs()
                self.graphs = False
                self.graph_problem = f"CUDA graph capture failed ({exc}); running eager"
                log.warning(self.graph_problem)
        return self._eager_frame(geometry, images)

    def _eager_frame(self, geometry: FrameGeometry, images: list[np.ndarray]):
        frame = self._frames.get(geometry)
        if frame is None:
            while len(self._frames) >= self.max_graphs:  # the least recently used geometry's buffers go first
                self.ctx.synchronize()
                self._frames.popitem(last=False)[1].close()
            frame = self._frames[geometry] = self._buffers(geometry)
        else:
            self._frames.move_to_end(geometry)
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
        except Exception:  # this frame failed (not the capture): it is the caller's error
            self.ctx.synchronize()
            frame.close()
            raise
        try:
            graph: Graph
            if self.backend.graph_capture == "backend":
                graph = self.backend.capture(enqueue, int(self.ctx.stream.handle))
            else:
                graph = StreamGraph.capture(self.ctx, enqueue)
        except Exception as exc:
            self.ctx.synchronize()
            frame.close()
            raise CaptureRefused(f"{type(exc).__name__}: {exc}") from exc
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
    def fixed_compositions(self) -> bool:
        """Whether a new batch composition costs a CUDA-graph capture (frames run as graphs): a caller batching
        several cameras keeps the composition where it can (ros/ticks.py)."""
        return self.graphs

    @property
    def graph_count(self) -> int:
        return len(self._graphs)

    def close(self) -> None:
        """Free the graphs, buffers and the backend; safe on any thread, idempotent. Waits for a frame in progress
        (on another thread) to end first: its buffers are never freed under it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._bind_thread()
            self._free()
            self.backend.close()

    def _free(self) -> None:
        """Free what the constructor made, as far as it got."""
        made = self.__dict__
        self.ctx.synchronize()
        if "_graphs" in made:
            self._drop_graphs()
        while made.get("_frames"):
            self._frames.popitem()[1].close()
        if "_events" in made:
            self._events.close()
        for event in made.get("_stage_events", ()):
            event.close()
        if "_copy_to_staging" in made:
            self._copy_to_staging.close()
        if made.get("jpeg_decoder") is not None:
            self.jpeg_decoder.close()
            self.jpeg_decoder = None
        for name in ("_input", "_logits", "_palette"):
            if name in made:
                made[name].close()
        self.ctx.synchronize()
