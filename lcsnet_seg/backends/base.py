"""The backend contract: every inference backend offers this interface and passes test/test_backend_contract.py.

A backend is built from a model file, reports its input/output tensor specs and its ModelInfo,
and runs one inference either on host arrays (``infer``) or on device pointers on a given CUDA
stream (``infer_device``). Host backends set ``supports_host``; GPU backends set
``supports_device`` (and may also support host arrays for testing).
"""

from __future__ import annotations

import hashlib
from abc import ABC
from dataclasses import dataclass

import numpy as np

from lcsnet_seg.errors import ModelFileError
from lcsnet_seg.model_info import ModelInfo


@dataclass(frozen=True)
class TensorSpec:
    """name, shape (None for a dynamic dimension) and numpy dtype of one model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def static_shape(self) -> tuple[int, ...]:
        """The shape of a tensor without dynamic dimensions."""
        dims = tuple(d for d in self.shape if d is not None)
        if len(dims) != len(self.shape):
            raise ValueError(f"tensor '{self.name}' has dynamic dimensions {self.shape}")
        return dims


class Backend(ABC):
    """Subclasses set ``_input`` and ``_output`` (TensorSpec) in their constructor."""

    name: str = "abstract"
    supports_host: bool = False
    supports_device: bool = False
    # How a whole GPU frame around infer_device may become one CUDA graph (the GPU Segmenter captures it):
    # "stream": infer_device may simply be recorded by stream capture (the Segmenter captures; TensorRT);
    # "backend": the backend's framework must take part (its own make_stream() and capture(); torch_cuda);
    # "none": frames run eagerly.
    graph_capture: str = "none"
    # The most images one inference takes (a model with a fixed batch of 1 takes 1). input_spec/output_spec describe
    # one image (batch 1); a batch of n is n of them back to back.
    max_batch: int = 1
    _input: TensorSpec
    _output: TensorSpec

    def __init__(self, info: ModelInfo) -> None:
        self.info = info

    @property
    def input_spec(self) -> TensorSpec:
        return self._input

    @property
    def output_spec(self) -> TensorSpec:
        return self._output

    @property
    def device(self) -> str:
        """Where inference runs, in words ("cpu", "cuda:0 (NVIDIA H100 ...)")."""
        return "cpu"

    def batch_size_for(self, images: int) -> int:
        """The batch the backend runs ``images`` images at (1 <= images <= max_batch): the count itself, or the
        next batch size it was prepared for (a compiled model; the extra inputs are computed and ignored)."""
        return images

    def plan_batch(self, images: int) -> None:  # noqa: B027 (a hook: most backends take any batch as it comes)
        """The most images the caller will pass at once from now on (the GPU Segmenter says so when it is built,
        before any capture). A backend that must run every frame at one batch (TensorRT) pads to it."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """batch: N x 3 x h x w float32 (contiguous, N <= max_batch) -> N x C x h' x w' logits (float32 or float16;
        h' x w' the model's own output size, output_spec's)."""
        raise NotImplementedError(f"backend {self.name} has no host-array path")

    def infer_device(self, input_ptr: int, output_ptr: int, stream_handle: int, batch: int = 1) -> None:
        """Enqueue inference of ``batch`` images from a device input buffer into a device output buffer on a CUDA
        stream.

        Buffers are contiguous: ``batch`` inputs of input_spec's shape and type back to back, and as many outputs
        of output_spec's (the size the model really produces, which may be smaller than its input). Returns
        without synchronising. With graph_capture "stream" it must be capturable: no allocation,
        synchronisation or host read-back once it has run once with these buffers and this batch.
        """
        raise NotImplementedError(f"backend {self.name} has no device-pointer path")

    def bind_thread(self) -> None:  # noqa: B027 (a hook: most backends need nothing per thread)
        """Prepare the calling thread for infer_device (e.g. select the device). Called once per thread
        by the GPU Segmenter before the first GPU call a thread makes; the default does nothing."""

    def make_stream(self) -> int | None:
        """A CUDA stream the GPU path should run on (raw handle), or None to let it make its own. A backend with
        graph_capture "backend" returns one of its framework's, so that its capture records the whole frame."""
        return None

    def capture(self, enqueue, stream_handle: int):
        """(graph_capture "backend") Capture the work ``enqueue()`` puts on the stream as a CUDA graph; returns
        an object with ``launch()`` (enqueue one replay on that stream) and ``close()``."""
        raise NotImplementedError(f"backend {self.name} has no capture of its own (graph_capture {self.graph_capture})")

    def close(self) -> None:  # noqa: B027 (a hook: backends with nothing to free keep the no-op)
        """Free the session/engine and any device memory. Idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_io_specs(source: str, info: ModelInfo, inp: TensorSpec, out: TensorSpec) -> None:
    """Refuse a model whose tensors do not fit an image segmenter with ``info`` (one line per problem)."""
    if len(inp.shape) != 4:
        raise ModelFileError(
            f"model file {source}: input '{inp.name}' has rank {len(inp.shape)}; "
            "a segmentation model takes N x 3 x H x W"
        )
    if inp.shape[1] not in (3, None):
        raise ModelFileError(
            f"model file {source}: input '{inp.name}' has {inp.shape[1]} channels; "
            "a segmentation model takes 3 (colour) channels"
        )
    for axis, want in zip((2, 3), info.input_size):
        if inp.shape[axis] is not None and inp.shape[axis] != want:
            raise ModelFileError(
                f"model file {source}: input '{inp.name}' is fixed at {inp.shape[2:]} but the "
                f"configured input size is {info.input_size}; use the model's size or re-export "
                "with dynamic height/width"
            )
    if len(out.shape) != 4:
        raise ModelFileError(
            f"model file {source}: output '{out.name}' has rank {len(out.shape)}; expected logits N x C x H x W"
        )
    if out.shape[1] is not None and out.shape[1] != info.num_classes:
        raise ModelFileError(
            f"model file {source}: output '{out.name}' has {out.shape[1]} classes but the metadata "
            f"lists {info.num_classes}; the model and its class set disagree"
        )


def check_model_path(path) -> None:
    """A clear one-line error for a missing, unreadable or empty model file."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"model file {p} not found; set model_path to an existing .onnx or .engine file")
    if not p.is_file():
        raise ModelFileError(f"model file {p} is not a regular file; set model_path to an .onnx or .engine file")
    if p.stat().st_size == 0:
        raise ModelFileError(f"model file {p} is empty; re-export it with `ros2 run lcsnet_seg convert`")


def sha256_file(path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (model files: engines, ONNX, weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
