"""Fused GPU preprocessing: uint8 image (any row step) -> bilinear resize -> channel order ->
(x/255 - mean)/std -> planar CHW float32 or float16, written straight into the model input buffer.

Sampling follows the CPU reference (lcsnet_seg/preprocess.py, OpenCV INTER_LINEAR in float):
src = (dst + 0.5) * (src_size / dst_size) - 0.5 computed in double and rounded to float, floor
for the cell, clamp to the edge (weight 0) outside the image, no rounding between stages.
"""

from __future__ import annotations

import numpy as np

from lcsnet_seg.gpu.kernel_args import PREPROCESS_ARGS

SOURCE = r"""
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(unsigned short* p, float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    *p = h;
}

__device__ __forceinline__ void source_cell(int dst, double scale, int size, int& i0, int& i1, float& w) {
    float f = (float)((dst + 0.5) * scale - 0.5);
    int i = (int)floorf(f);
    w = f - (float)i;
    if (i < 0) { i = 0; w = 0.f; }
    if (i >= size - 1) { i = size - 1; w = 0.f; }
    i0 = i;
    i1 = min(i + 1, size - 1);
}

template <typename OutT>
__device__ void preprocess(const PreprocessArgs& a) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= a.dst_w || y >= a.dst_h) return;
    const unsigned char* __restrict__ src = (const unsigned char*)a.src;
    OutT* __restrict__ dst = (OutT*)a.dst;
    int x0, x1, y0, y1;
    float fx, fy;
    source_cell(x, a.scale_x, a.src_w, x0, x1, fx);
    source_cell(y, a.scale_y, a.src_h, y0, y1, fy);
    const unsigned char* r0 = src + (size_t)y0 * a.src_step;
    const unsigned char* r1 = src + (size_t)y1 * a.src_step;
    int p = x0 * a.channels, q = x1 * a.channels;
    int plane = a.dst_w * a.dst_h, o = y * a.dst_w + x;
    int ch[3] = {a.c0, a.c1, a.c2};
    float sc[3] = {a.s0, a.s1, a.s2}, of[3] = {a.o0, a.o1, a.o2};
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        int c = ch[k];
        float top = __fadd_rn(__fmul_rn((float)r0[p + c], 1.f - fx), __fmul_rn((float)r0[q + c], fx));
        float bot = __fadd_rn(__fmul_rn((float)r1[p + c], 1.f - fx), __fmul_rn((float)r1[q + c], fx));
        float v = __fadd_rn(__fmul_rn(top, 1.f - fy), __fmul_rn(bot, fy));
        store(dst + k * plane + o, __fadd_rn(__fmul_rn(v, sc[k]), of[k]));
    }
}

// One launch serves a batch: blockIdx.z is the image, args[z] its geometry (gpu/kernel_args.py).
extern "C" __global__ void preprocess_f32(const PreprocessArgs* args) { preprocess<float>(args[blockIdx.z]); }
extern "C" __global__ void preprocess_f16(const PreprocessArgs* args) { preprocess<unsigned short>(args[blockIdx.z]); }
"""

BLOCK = (32, 8)


class GpuPreprocess:
    """The fused preprocessing kernel on a GpuContext's stream, for network inputs of ``output_dtype``."""

    def __init__(self, context, output_dtype=np.float32) -> None:
        self.context = context
        self.output_dtype = np.dtype(output_dtype)
        name = "preprocess_f16" if self.output_dtype == np.float16 else "preprocess_f32"
        self.kernel = context.kernel(PREPROCESS_ARGS.c_struct() + SOURCE, name)

    def fill(
        self,
        record,
        *,
        src: int,
        src_w: int,
        src_h: int,
        src_step: int,
        channels: int,
        channel_map,
        dst: int,
        dst_w: int,
        dst_h: int,
        scale,
        offset,
    ) -> None:
        """Fill one PREPROCESS_ARGS record: src (uint8 H x W x C, row step in bytes) -> dst (3 x dst_h x dst_w)."""
        record["src"], record["dst"] = src, dst
        record["scale_x"], record["scale_y"] = src_w / dst_w, src_h / dst_h
        record["src_w"], record["src_h"], record["src_step"], record["channels"] = src_w, src_h, src_step, channels
        record["c0"], record["c1"], record["c2"] = (int(c) for c in channel_map)
        record["dst_w"], record["dst_h"] = dst_w, dst_h
        record["s0"], record["s1"], record["s2"] = (float(v) for v in scale)
        record["o0"], record["o1"], record["o2"] = (float(v) for v in offset)

    def launch_config(self, dst_w: int, dst_h: int, batch: int = 1):
        """The launch geometry for ``batch`` images of dst_w x dst_h (made once per frame geometry)."""
        from cuda.core import LaunchConfig

        return LaunchConfig(grid=(-(-dst_w // BLOCK[0]), -(-dst_h // BLOCK[1]), batch), block=BLOCK)

    def launch(self, config, args_ptr) -> None:
        """Enqueue on the context's stream; ``args_ptr``: np.uint64 device address of the records."""
        from cuda.core import launch

        launch(self.context.stream, config, self.kernel, args_ptr)
