"""A device backend that is not torch, for the tests and the GPU benchmark only: CuPy kernels on the caller's stream.

It stands where a TensorRT engine stands in the GPU Segmenter (graph_capture "stream": the Segmenter captures
it with the driver API), so the generic CUDA-graph path is exercised on a machine without TensorRT. Its
"network": average-pool the input over ``stride`` x ``stride`` cells, then a per-pixel linear classifier
(classes x 3 weights + bias), so its logits are 1/stride of its input, as a SegFormer's (1/4) or a DDRNet's
(1/8). ``infer`` computes the same on the host with numpy (the CPU Segmenter's reference backend).
"""

from __future__ import annotations

import numpy as np

from lcsnet_seg.backends.base import Backend, TensorSpec
from lcsnet_seg.model_info import ModelInfo

SOURCE = r"""
extern "C" __global__ void pool_classify(const float* __restrict__ x, float* __restrict__ out,
                                         const float* __restrict__ weight, const float* __restrict__ bias,
                                         int h, int w, int stride, int classes) {
    int ox = blockIdx.x * blockDim.x + threadIdx.x, oy = blockIdx.y * blockDim.y + threadIdx.y;
    int oh = h / stride, ow = w / stride;
    if (ox >= ow || oy >= oh) return;
    x += (size_t)blockIdx.z * 3 * h * w;  // one image of the batch per grid z
    out += (size_t)blockIdx.z * classes * oh * ow;
    float mean[3];
    for (int c = 0; c < 3; ++c) {
        float sum = 0.f;
        for (int dy = 0; dy < stride; ++dy)
            for (int dx = 0; dx < stride; ++dx) sum += x[((size_t)c * h + oy * stride + dy) * w + ox * stride + dx];
        mean[c] = sum / (float)(stride * stride);
    }
    for (int k = 0; k < classes; ++k) {
        float v = bias[k];
        for (int c = 0; c < 3; ++c) v = fmaf(weight[k * 3 + c], mean[c], v);
        out[((size_t)k * oh + oy) * ow + ox] = v;
    }
}
"""


def weights_for(classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A classifier with clear margins between classes on normalised colour (no argmax ties in practice)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2.0, (classes, 3)).astype(np.float32), rng.normal(0, 0.5, classes).astype(np.float32)


def host_logits(batch: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """The reference: N x 3 x h x w float32 -> N x classes x h/stride x w/stride, summed in the kernel's order."""
    if len(batch) != 1:
        return np.concatenate([host_logits(one[None], weight, bias, stride) for one in batch])
    _, _, h, w = batch.shape
    oh, ow = h // stride, w // stride
    cells = batch[0, :, : oh * stride, : ow * stride].reshape(3, oh, stride, ow, stride)
    total = np.zeros((3, oh, ow), np.float32)
    for dy in range(stride):
        for dx in range(stride):
            total += cells[:, :, dy, :, dx]
    mean = total / np.float32(stride * stride)
    logits = np.broadcast_to(bias[:, None, None], (len(bias), oh, ow)).astype(np.float32).copy()
    for c in range(3):
        logits += weight[:, c, None, None] * mean[c]
    return logits[None]


class HostPoolBackend(Backend):
    """The same network on the host (numpy): the CPU Segmenter's backend in parity tests."""

    name = "pool_classify_host"
    supports_host = True
    max_batch = 8

    def __init__(self, info: ModelInfo, stride: int, seed: int = 0) -> None:
        super().__init__(info)
        h, w = info.input_size
        self.stride = stride
        self.weight, self.bias = weights_for(info.num_classes, seed)
        self._input = TensorSpec("image", (1, 3, h, w), np.dtype(np.float32))
        self._output = TensorSpec("logits", (1, info.num_classes, h // stride, w // stride), np.dtype(np.float32))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return host_logits(batch, self.weight, self.bias, self.stride)


class CupyBackend(Backend):
    """The network as one CuPy kernel launched on the caller's stream (graph_capture "stream")."""

    name = "pool_classify_cupy"
    supports_device = True
    graph_capture = "stream"
    max_batch = 8

    def __init__(self, info: ModelInfo, stride: int, seed: int = 0) -> None:
        import cupy as cp

        super().__init__(info)
        h, w = info.input_size
        self.stride = stride
        weight, bias = weights_for(info.num_classes, seed)
        self._weight, self._bias = cp.asarray(weight), cp.asarray(bias)  # allocated here: never during a capture
        self._kernel = cp.RawKernel(SOURCE, "pool_classify")
        self._input = TensorSpec("image", (1, 3, h, w), np.dtype(np.float32))
        self._output = TensorSpec("logits", (1, info.num_classes, h // stride, w // stride), np.dtype(np.float32))
        self._cp = cp
        self._streams: dict[int, object] = {}

    @property
    def device(self) -> str:
        return "cuda:0 (CuPy test backend)"

    def infer_device(self, input_ptr: int, output_ptr: int, stream_handle: int, batch: int = 1) -> None:
        cp = self._cp
        stream = self._streams.get(stream_handle)
        if stream is None:
            stream = self._streams[stream_handle] = cp.cuda.ExternalStream(stream_handle)
        _, _, h, w = self._input.shape
        oh, ow = h // self.stride, w // self.stride
        with stream:
            self._kernel(
                ((ow + 15) // 16, (oh + 15) // 16, batch),
                (16, 16),
                (
                    np.uint64(input_ptr),
                    np.uint64(output_ptr),
                    self._weight,
                    self._bias,
                    np.int32(h),
                    np.int32(w),
                    np.int32(self.stride),
                    np.int32(self.info.num_classes),
                ),
            )

    def close(self) -> None:
        self._weight = self._bias = None
        self._streams.clear()
