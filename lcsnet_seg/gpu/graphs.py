"""CUDA graphs captured from a stream with the driver API: the GPU Segmenter's capture for any device backend.

``StreamGraph.capture(ctx, enqueue)`` records everything ``enqueue()`` puts on the context's stream
(the project's kernels, copies, and a backend's ``infer_device``: a TensorRT execute_async_v3, a
CuPy launch) into a graph, instantiates it, and replays it with ``launch()`` on that stream. The
capture mode is thread-local: work other threads queue meanwhile is not captured and not disturbed.
A backend whose framework must know about the capture (torch's caching allocator) brings its own
``capture`` instead (backends/pytorch.py).

What a capture may hold: device buffers and pinned host buffers that live as long as the graph
(FrameBuffers), and kernels whose arguments are device pointers (kernel_args.py). It must not
allocate, synchronise or read back: TensorRT does none of that in execute_async_v3 once one
enqueue with the input shapes set has run before the capture (NVIDIA's guidance for CUDA graphs
with enqueueV3), which the GPU Segmenter does (two warm-up frames).
"""

from __future__ import annotations

from typing import Protocol

from lcsnet_seg.gpu.runtime import GpuContext, check_result


class Graph(Protocol):
    """What the GPU Segmenter keeps of a captured frame: a StreamGraph, or a backend's own (backends/pytorch.py)."""

    def launch(self) -> None: ...

    def close(self) -> None: ...


class StreamGraph:
    """An instantiated CUDA graph, replayed on the stream it was captured from."""

    def __init__(self, ctx: GpuContext, graph, graph_exec) -> None:
        self._ctx, self._graph, self._exec = ctx, graph, graph_exec

    @classmethod
    def capture(cls, ctx: GpuContext, enqueue) -> StreamGraph:
        """Capture ``enqueue()``'s work on ``ctx.stream``. A failure inside ends the capture, frees what it made
        and raises."""
        from cuda.bindings import driver

        ctx.activate()
        stream = ctx.stream.handle
        mode = driver.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        check_result(driver.cuStreamBeginCapture(stream, mode), "cuStreamBeginCapture")
        try:
            enqueue()
        except BaseException:
            err, graph = driver.cuStreamEndCapture(stream)  # ends the (invalidated) capture; the error is enqueue's
            if int(err) == 0 and graph is not None:
                driver.cuGraphDestroy(graph)
            raise
        graph = check_result(driver.cuStreamEndCapture(stream), "cuStreamEndCapture")
        try:
            graph_exec = check_result(driver.cuGraphInstantiate(graph, 0), "cuGraphInstantiate")
        except BaseException:
            driver.cuGraphDestroy(graph)
            raise
        return cls(ctx, graph, graph_exec)

    def launch(self) -> None:
        """Enqueue one replay on the capture stream (asynchronous)."""
        from cuda.bindings import driver

        check_result(driver.cuGraphLaunch(self._exec, self._ctx.stream.handle), "cuGraphLaunch")

    def close(self) -> None:
        """Free the graph (after the stream has finished its replays); idempotent."""
        from cuda.bindings import driver

        if self._exec is not None:
            self._ctx.activate()
            check_result(driver.cuGraphExecDestroy(self._exec), "cuGraphExecDestroy")
            check_result(driver.cuGraphDestroy(self._graph), "cuGraphDestroy")
            self._exec = self._graph = None
