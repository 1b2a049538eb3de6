"""Fused GPU preprocessing: uint8 image (any row step) -> bilinear resize -> channel order ->
(x/255 - mean)/std -> planar CHW float32 or float16, written straight into the model input buffer.

Sampling follows the CPU reference (lcsnet_seg/preprocess.py, OpenCV INTER_LINEAR in float):
src = (dst + 0.5) * (src_size / dst_size) - 0.5 computed in double and rounded to float, floor
for the cell, clamp to the edge (weight 0) outside the image, no rounding between stages.
"""

from __future__ import annotations

import numpy as np

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
__device__ void preprocess(const unsigned char* __restrict__ src, int src_w, int src_h, int src_step, int channels,
                           int c0, int c1, int c2, OutT* __restrict__ dst, int dst_w, int dst_h,
                           double scale_x, double scale_y, float s0, float s1, float s2, float o0, float o1, float o2) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    int x0, x1, y0, y1;
    float fx, fy;
    source_cell(x, scale_x, src_w, x0, x1, fx);
    source_cell(y, scale_y, src_h, y0, y1, fy);
    const unsigned char* r0 = src + (size_t)y0 * src_step;
    const unsigned char* r1 = src + (size_t)y1 * src_step;
    int a = x0 * channels, b = x1 * channels;
    int plane = dst_w * dst_h, o = y * dst_w + x;
    int ch[3] = {c0, c1, c2};
    float sc[3] = {s0, s1, s2}, of[3] = {o0, o1, o2};
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        int c = ch[k];
        float top = __fadd_rn(__fmul_rn((float)r0[a + c], 1.f - fx), __fmul_rn((float)r0[b + c], fx));
        float bot = __fadd_rn(__fmul_rn((float)r1[a + c], 1.f - fx), __fmul_rn((float)r1[b + c], fx));
        float v = __fadd_rn(__fmul_rn(top, 1.f - fy), __fmul_rn(bot, fy));
        store(dst + k * plane + o, __fadd_rn(__fmul_rn(v, sc[k]), of[k]));
    }
}

extern "C" __global__ void preprocess_f32(const unsigned char* src, int src_w, int src_h, int src_step, int channels,
        int c0, int c1, int c2, float* dst, int dst_w, int dst_h, double scale_x, double scale_y,
        float s0, float s1, float s2, float o0, float o1, float o2) {
    preprocess(src, src_w, src_h, src_step, channels, c0, c1, c2, dst, dst_w, dst_h, scale_x, scale_y,
               s0, s1, s2, o0, o1, o2);
}

extern "C" __global__ void preprocess_f16(const unsigned char* src, int src_w, int src_h, int src_step, int channels,
        int c0, int c1, int c2, unsigned short* dst, int dst_w, int dst_h, double scale_x, double scale_y,
        float s0, float s1, float s2, float o0, float o1, float o2) {
    preprocess(src, src_w, src_h, src_step, channels, c0, c1, c2, dst, dst_w, dst_h, scale_x, scale_y,
               s0, s1, s2, o0, o1, o2);
}
"""

BLOCK = (32, 8)


class GpuPreprocess:
    """Launcher of the fused preprocessing kernel on a GpuContext's stream."""

    def __init__(self, context, output_dtype=np.float32) -> None:
        self.context = context
        self.output_dtype = np.dtype(output_dtype)
        name = "preprocess_f16" if self.output_dtype == np.float16 else "preprocess_f32"
        self.kernel = context.kernel(SOURCE, name)

    def __call__(
        self,
        src_ptr: int,
        src_w: int,
        src_h: int,
        src_step: int,
        channels: int,
        channel_map,
        dst_ptr: int,
        dst_w: int,
        dst_h: int,
        scale,
        offset,
    ) -> None:
        """Enqueue: src (uint8, HxWxC, row step in bytes) -> dst (3 x dst_h x dst_w, output_dtype)."""
        from cuda.core import LaunchConfig, launch

        grid = ((dst_w + BLOCK[0] - 1) // BLOCK[0], (dst_h + BLOCK[1] - 1) // BLOCK[1])
        c0, c1, c2 = (int(c) for c in channel_map)
        f32 = np.float32
        launch(
            self.context.stream,
            LaunchConfig(grid=grid, block=BLOCK),
            self.kernel,
            np.uint64(src_ptr),
            np.int32(src_w),
            np.int32(src_h),
            np.int32(src_step),
            np.int32(channels),
            np.int32(c0),
            np.int32(c1),
            np.int32(c2),
            np.uint64(dst_ptr),
            np.int32(dst_w),
            np.int32(dst_h),
            np.float64(src_w / dst_w),
            np.float64(src_h / dst_h),
            f32(scale[0]),
            f32(scale[1]),
            f32(scale[2]),
            f32(offset[0]),
            f32(offset[1]),
            f32(offset[2]),
        )
