"""PyTorch backend: LCSNet weights run in torch (CPU host arrays, or CUDA).

Used as the baseline of the CPU benchmark and, on GPU machines without TensorRT, as the
device-pointer backend of the GPU pipeline (``backend: torch_cuda``): the preprocess kernel's
output buffer is handed to torch without a copy through __cuda_array_interface__ (a raw device
pointer needs no DLPack producer of our own), and the model runs on the pipeline's CUDA stream.

On CUDA the model runs as lcsnet_seg.backends.torch_compile prepares it (batch norm folded,
``precision``, channels_last), compiled by inductor where ``compile_dir`` holds a matching
prepared cache. The backend also creates the pipeline's stream (``make_stream``) and captures
whole frames as CUDA graphs (``capture``): torch must know about a capture for its allocator to
keep the model's intermediate tensors in a pool of the graph's own.
"""

from __future__ import annotations

import numpy as np

from lcsnet_seg.backends.base import Backend, TensorSpec
from lcsnet_seg.model_info import ModelInfo, ModelOverrides

MAX_VIEWS = 8
MAX_BATCH = 16  # the most images one call takes where the model runs at any batch (several cameras of one node)


class TorchBackend(Backend):
    name = "torch_cpu"
    supports_host = True
    max_batch = MAX_BATCH

    def __init__(
        self,
        model,
        info: ModelInfo,
        device: str = "cpu",
        precision: str = "fp32",
        channels_last: bool | None = None,
        compile_dir=None,
        weights_path=None,
    ) -> None:
        """``model``: a torch module with its weights loaded (see from_checkpoint). On CUDA:
        ``precision`` fp32 or fp16, ``channels_last`` (default: with fp16), ``compile_dir`` a
        directory prepared by torch_compile.prepare_compiled_model for ``weights_path``."""
        import torch

        from lcsnet_seg.errors import BackendUnavailable, ConfigError

        super().__init__(info)
        self._torch = torch
        self._device = torch.device(device)
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("backend torch_cuda needs PyTorch with CUDA and a GPU; use onnxruntime")
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"precision {precision!r} must be fp32 or fp16")
        self.supports_device = self._device.type == "cuda"
        # torch's caching allocator must know about a capture: the backend captures itself, on its own stream
        self.graph_capture = "backend" if self.supports_device else "none"
        self.name = "torch_cuda" if self.supports_device else "torch_cpu"
        self._streams: dict[int, object] = {}
        self._views: dict[tuple[int, int, int], tuple] = {}
        self._batches: tuple[int, ...] | None = None  # a compiled model's batch sizes (None: any batch)
        h, w = info.input_size
        shape = (1, 3, h, w)
        self.compile_status = "uncompiled model (no compile dir given)"
        if not self.supports_device:
            if precision != "fp32":
                raise ConfigError("precision fp16 needs a CUDA device; use fp32 on the CPU")
            self._forward = model.eval().to(self._device)
            dtype = np.float32
        else:
            from lcsnet_seg.backends import torch_compile as tc

            channels_last = precision == "fp16" if channels_last is None else bool(channels_last)
            module = tc.prepare_module(model, self._device, precision, channels_last)
            self._forward = module
            if compile_dir is not None:
                self._forward, self.compile_status, self._batches = tc.load_compiled(
                    module, weights_path, compile_dir, self._device, shape, precision, channels_last
                )
            if self._batches is not None:
                self.max_batch = max(self._batches)
            torch.cuda.set_device(self._device)
            for batch in self._batches or (1,):  # compiles here, not at frame 1
                tc.warm_up(self._forward, (batch, *shape[1:]), self._device, tc.PRECISIONS[precision])
            dtype = np.float16 if precision == "fp16" else np.float32
        self.precision = precision
        self._input = TensorSpec("image", shape, np.dtype(dtype))
        self._output = TensorSpec("logits", self._logits_shape(shape, dtype), np.dtype(dtype))

    def _logits_shape(self, shape: tuple[int, ...], dtype) -> tuple[int, ...]:
        """The shape the model really returns for an input of ``shape`` (a SegFormer's logits are 1/4 of it)."""
        from lcsnet_seg.backends.base import check_io_specs

        torch = self._torch
        with torch.inference_mode():
            # NCHW contiguous, as every call passes it (warm_up's layout: a compiled model is not recompiled)
            out = self._forward(torch.zeros(shape, dtype=getattr(torch, np.dtype(dtype).name), device=self._device))
        logits = tuple(int(d) for d in out.shape)
        spec = np.dtype(dtype)
        check_io_specs("the model", self.info, TensorSpec("image", shape, spec), TensorSpec("logits", logits, spec))
        return logits

    @classmethod
    def from_checkpoint(
        cls,
        weights_path,
        overrides: ModelOverrides | None = None,
        device: str = "cpu",
        info: ModelInfo | None = None,
        **options,
    ) -> TorchBackend:
        """A backend for a .pth, read once (safely: weights only). Without ``info``, its ModelInfo is what the
        checkpoint says of itself (model.checkpoint.checkpoint_model_info: its own input size, mean/std, colour
        order and classes; config/classes.yaml and the defaults only where it says nothing), with ``overrides``
        applied. ``options``: precision, channels_last, compile_dir (see __init__)."""
        from lcsnet_seg.errors import ConfigError
        from lcsnet_seg.model.checkpoint import checkpoint_model_info, load_model

        model, meta, num_classes = load_model(weights_path)
        if info is None:
            info = checkpoint_model_info(meta, num_classes, weights_path).with_overrides(overrides)
        elif info.num_classes != num_classes:
            raise ConfigError(
                f"weights file {weights_path} predicts {num_classes} classes, the given model info {info.num_classes}"
            )
        from lcsnet_seg.model.logits import logits_only

        # a model that returns a dict or tuple (torchvision, transformers): its logits, as convert exports them
        model = logits_only(model, info, meta.get("output_key"))
        return cls(model, info, device=device, weights_path=weights_path, **options)

    @property
    def device(self) -> str:
        return str(self._device)

    def batch_size_for(self, images: int) -> int:
        """A compiled model runs at the batch sizes it was compiled for: the smallest that holds ``images``."""
        if self._batches is None:
            return images
        return next(b for b in self._batches if b >= images)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self._device, getattr(torch, self._input.dtype.name))
            return self._forward(x).cpu().numpy()

    def bind_thread(self) -> None:
        if self.supports_device:
            self._torch.cuda.set_device(self._device)

    def make_stream(self) -> int:
        """A new CUDA stream made by torch (kept by this backend); its raw handle."""
        stream = self._torch.cuda.Stream(device=self._device)
        self._streams[int(stream.cuda_stream)] = stream
        return int(stream.cuda_stream)

    def _stream(self, handle: int):
        stream = self._streams.get(handle)
        if stream is None:  # one torch view of a foreign stream, not one per frame
            stream = self._streams[handle] = self._torch.cuda.ExternalStream(handle, device=self._device)
        return stream

    def _tensors(self, input_ptr: int, output_ptr: int, batch: int):
        from lcsnet_seg.gpu.runtime import CudaArrayView

        key = (input_ptr, output_ptr, batch)
        views = self._views.get(key)
        if views is None:
            if len(self._views) >= MAX_VIEWS:
                self._views.clear()
            as_tensor, device = self._torch.as_tensor, self._device
            in_shape = (batch, *self._input.static_shape()[1:])
            out_shape = (batch, *self._output.static_shape()[1:])
            views = self._views[key] = (
                as_tensor(CudaArrayView(input_ptr, in_shape, self._input.dtype), device=device),
                as_tensor(CudaArrayView(output_ptr, out_shape, self._output.dtype), device=device),
            )
        return views

    def infer_device(self, input_ptr: int, output_ptr: int, stream_handle: int, batch: int = 1) -> None:
        torch = self._torch
        x, out = self._tensors(input_ptr, output_ptr, batch)
        with torch.cuda.stream(self._stream(stream_handle)), torch.inference_mode():
            out.copy_(self._forward(x))

    def capture(self, enqueue, stream_handle: int) -> TorchGraph:
        """Capture what ``enqueue()`` puts on the stream ``stream_handle`` (our kernels and copies,
        and infer_device) as one CUDA graph. Warm up (run enqueue eagerly) before capturing."""
        torch = self._torch
        stream = self._stream(stream_handle)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
            enqueue()
        return TorchGraph(torch, graph, stream)

    def close(self) -> None:
        self._forward = None
        self._views.clear()
        self._streams.clear()


class TorchGraph:
    """A captured CUDA graph, launched on its capture stream."""

    def __init__(self, torch, graph, stream) -> None:
        from cuda.bindings import driver

        self._torch, self._graph, self._stream = torch, graph, stream
        try:  # launching the executable graph directly skips torch's per-call stream switch
            self._exec = driver.CUgraphExec(int(graph.raw_cuda_graph_exec()))
        except (AttributeError, RuntimeError):
            self._exec = None
        self._stream_handle = int(stream.cuda_stream)

    def launch(self) -> None:
        from cuda.bindings import driver

        from lcsnet_seg.gpu.runtime import check_result

        if self._exec is not None:
            check_result(driver.cuGraphLaunch(self._exec, self._stream_handle), "cuGraphLaunch")
        else:
            with self._torch.cuda.stream(self._stream):
                self._graph.replay()

    def close(self) -> None:
        if self._graph is not None:
            self._graph.reset()
            self._graph = self._exec = None
