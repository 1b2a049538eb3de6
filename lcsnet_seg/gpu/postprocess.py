"""Fused GPU postprocessing: logits (fp32/fp16, 1 x C x h x w) -> argmax -> nearest resize to the
output size -> uint8 labels, palette colour mask (RGB), alpha-blended overlay on the original
image, optional confidence (max softmax). Four output pixels per thread; any output may be skipped.

Nearest resize is the CPU reference's exact integer rule: src = ((2 * dst + 1) * src_size) / (2 * dst_size).
The blend is round-half-even of img * (1 - alpha) + colour * alpha without FMA contraction, as
cv2.addWeighted computes it. When the output size differs from the image size (output_size =
"network"), the image is sampled bilinearly (the preprocess convention) and rounded.
"""

from __future__ import annotations

import numpy as np

SOURCE = r"""
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const unsigned short* p) {
    float f;
    unsigned short h = *p;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// floor((2 * dst + 1) * src_size / (2 * dst_size)), exact, in 32-bit arithmetic: a float estimate
// (off by at most one for sizes up to 8192) corrected with integer products. A 64-bit division
// per pixel, the obvious way to write it, is emulated in software and dominated the kernel's time.
__device__ __forceinline__ int nearest_source(int dst, int src_size, int dst_size) {
    unsigned int num = (2u * dst + 1u) * (unsigned int)src_size;
    unsigned int den = 2u * (unsigned int)dst_size;
    int s = (int)((float)num / (float)den);
    if ((unsigned int)(s + 1) * den <= num) ++s;
    else if ((unsigned int)s * den > num) --s;
    return s;
}

__device__ __forceinline__ float image_value(const unsigned char* img, int img_w, int img_h, int step, int channels,
                                             int c, int x, int y, int out_w, int out_h) {
    if (img_w == out_w && img_h == out_h) return (float)img[(size_t)y * step + x * channels + c];
    float fx = (float)((x + 0.5) * ((double)img_w / out_w) - 0.5);
    float fy = (float)((y + 0.5) * ((double)img_h / out_h) - 0.5);
    int x0 = (int)floorf(fx), y0 = (int)floorf(fy);
    fx -= x0; fy -= y0;
    if (x0 < 0) { x0 = 0; fx = 0.f; }
    if (x0 >= img_w - 1) { x0 = img_w - 1; fx = 0.f; }
    if (y0 < 0) { y0 = 0; fy = 0.f; }
    if (y0 >= img_h - 1) { y0 = img_h - 1; fy = 0.f; }
    int x1 = min(x0 + 1, img_w - 1), y1 = min(y0 + 1, img_h - 1);
    const unsigned char* r0 = img + (size_t)y0 * step;
    const unsigned char* r1 = img + (size_t)y1 * step;
    float top = r0[x0 * channels + c] * (1.f - fx) + r0[x1 * channels + c] * fx;
    float bot = r1[x0 * channels + c] * (1.f - fx) + r1[x1 * channels + c] * fx;
    return rintf(top * (1.f - fy) + bot * fy);
}

// NUM_CLASSES is defined when the source is compiled (NVRTC, at first use, for the model at hand):
// with it known, the loads of all class logits are issued together instead of one after another.
template <typename InT>
__device__ __forceinline__ void classify(const InT* p, size_t plane, bool want_conf, int& arg, float& conf) {
    float v[NUM_CLASSES];
#pragma unroll
    for (int c = 0; c < NUM_CLASSES; ++c) v[c] = load(p + c * plane);
    float best = v[0];
    arg = 0;
#pragma unroll
    for (int c = 1; c < NUM_CLASSES; ++c) {
        if (v[c] > best) { best = v[c]; arg = c; }
    }
    if (want_conf) {
        float sum = 0.f;
#pragma unroll
        for (int c = 0; c < NUM_CLASSES; ++c) sum += __expf(v[c] - best);
        conf = 1.f / sum;
    }
}

__device__ __forceinline__ unsigned int pack4(const unsigned char* b) {
    return (unsigned int)b[0] | ((unsigned int)b[1] << 8) | ((unsigned int)b[2] << 16) | ((unsigned int)b[3] << 24);
}

// Each thread produces 4 horizontally adjacent output pixels: the argmax is recomputed only when
// the nearest source pixel changes (upscaling reuses it), and with vector_ok (width % 4 == 0) the
// labels, colours and overlay are written as 32-bit words instead of single bytes.
template <typename InT>
__device__ void postprocess(const InT* __restrict__ logits, int num_classes, int net_w, int net_h,
                            const unsigned char* __restrict__ img, int img_w, int img_h, int img_step, int channels,
                            int out_w, int out_h, const unsigned char* __restrict__ palette, float alpha,
                            int overlay_bgr, unsigned char* __restrict__ labels_out,
                            unsigned char* __restrict__ color_out, unsigned char* __restrict__ overlay_out,
                            float* __restrict__ conf_out, int vector_ok, const float* __restrict__ alpha_ptr) {
    if (alpha_ptr) alpha = *alpha_ptr;  // read from device memory: a captured graph need not bake it in
    int x0 = 4 * (blockIdx.x * blockDim.x + threadIdx.x);
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x0 >= out_w || y >= out_h) return;
    int n = min(4, out_w - x0);
    int sy = nearest_source(y, net_h, out_h);
    size_t plane = (size_t)net_w * net_h;
    const InT* row = logits + (size_t)sy * net_w;
    bool want_conf = conf_out != 0;
    unsigned char lab[4] = {0, 0, 0, 0}, col[12], ovl[12];
    float cf[4] = {0.f, 0.f, 0.f, 0.f};
    int prev_sx = -1, arg = 0;
    float conf = 0.f, keep = 1.f - alpha;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if (i < n) {
            int x = x0 + i;
            int sx = nearest_source(x, net_w, out_w);
            if (sx != prev_sx) {
                classify(row + sx, plane, want_conf, arg, conf);
                prev_sx = sx;
            }
            lab[i] = (unsigned char)arg;
            cf[i] = conf;
            const unsigned char* rgb = palette + 3 * arg;
#pragma unroll
            for (int k = 0; k < 3; ++k) {
                col[3 * i + k] = rgb[k];
                if (overlay_out) {
                    int c = channels == 1 ? 0 : k;   // mono input: grey in all three channels
                    float base = image_value(img, img_w, img_h, img_step, channels, c, x, y, out_w, out_h);
                    float colour = (float)rgb[overlay_bgr ? 2 - k : k];
                    int v = __float2int_rn(__fadd_rn(__fmul_rn(base, keep), __fmul_rn(colour, alpha)));
                    ovl[3 * i + k] = (unsigned char)min(max(v, 0), 255);
                }
            }
        }
    }
    size_t o = (size_t)y * out_w + x0;
    if (vector_ok && n == 4) {
        if (labels_out) *(unsigned int*)(labels_out + o) = pack4(lab);
        if (color_out) {
            unsigned int* dst = (unsigned int*)(color_out + 3 * o);
            dst[0] = pack4(col); dst[1] = pack4(col + 4); dst[2] = pack4(col + 8);
        }
        if (overlay_out) {
            unsigned int* dst = (unsigned int*)(overlay_out + 3 * o);
            dst[0] = pack4(ovl); dst[1] = pack4(ovl + 4); dst[2] = pack4(ovl + 8);
        }
        if (conf_out) {
#pragma unroll
            for (int i = 0; i < 4; ++i) conf_out[o + i] = cf[i];
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if (i < n) {
            if (labels_out) labels_out[o + i] = lab[i];
            if (conf_out) conf_out[o + i] = cf[i];
#pragma unroll
            for (int k = 0; k < 3; ++k) {
                if (color_out) color_out[3 * (o + i) + k] = col[3 * i + k];
                if (overlay_out) overlay_out[3 * (o + i) + k] = ovl[3 * i + k];
            }
        }
    }
}

#define POSTPROCESS_ARGS(T) const T* logits, int num_classes, int net_w, int net_h, const unsigned char* img, \
    int img_w, int img_h, int img_step, int channels, int out_w, int out_h, const unsigned char* palette, \
    float alpha, int overlay_bgr, unsigned char* labels_out, unsigned char* color_out, unsigned char* overlay_out, \
    float* conf_out, int vector_ok, const float* alpha_ptr
#define POSTPROCESS_CALL postprocess(logits, num_classes, net_w, net_h, img, img_w, img_h, img_step, channels, \
    out_w, out_h, palette, alpha, overlay_bgr, labels_out, color_out, overlay_out, conf_out, vector_ok, alpha_ptr)

extern "C" __global__ void postprocess_f32(POSTPROCESS_ARGS(float)) { POSTPROCESS_CALL; }
extern "C" __global__ void postprocess_f16(POSTPROCESS_ARGS(unsigned short)) { POSTPROCESS_CALL; }
"""

BLOCK = (32, 8)


class GpuPostprocess:
    """Launcher of the fused postprocessing kernel. Pointers of 0 skip that output.

    ``alpha_ptr``: where non-zero, the kernel reads the overlay alpha (one float32) from this device
    address instead of ``alpha``, so a CUDA graph captured once serves any alpha.
    """

    def __init__(self, context, logits_dtype=np.float32, num_classes: int = 8) -> None:
        self.context = context
        self.num_classes = int(num_classes)
        name = "postprocess_f16" if np.dtype(logits_dtype) == np.float16 else "postprocess_f32"
        self.kernel = context.kernel(f"#define NUM_CLASSES {self.num_classes}\n" + SOURCE, name)

    def __call__(
        self,
        logits_ptr: int,
        num_classes: int,
        net_w: int,
        net_h: int,
        image_ptr: int,
        img_w: int,
        img_h: int,
        img_step: int,
        channels: int,
        out_w: int,
        out_h: int,
        palette_ptr: int,
        alpha: float,
        overlay_bgr: bool,
        labels_ptr: int = 0,
        color_ptr: int = 0,
        overlay_ptr: int = 0,
        confidence_ptr: int = 0,
        alpha_ptr: int = 0,
    ) -> None:
        from cuda.core import LaunchConfig, launch

        if num_classes != self.num_classes:
            raise ValueError(f"kernel compiled for {self.num_classes} classes, called with {num_classes}")
        quads = (out_w + 3) // 4  # each thread writes 4 adjacent pixels
        grid = ((quads + BLOCK[0] - 1) // BLOCK[0], (out_h + BLOCK[1] - 1) // BLOCK[1])
        i32, u64 = np.int32, np.uint64
        launch(
            self.context.stream,
            LaunchConfig(grid=grid, block=BLOCK),
            self.kernel,
            u64(logits_ptr),
            i32(num_classes),
            i32(net_w),
            i32(net_h),
            u64(image_ptr),
            i32(img_w),
            i32(img_h),
            i32(img_step),
            i32(channels),
            i32(out_w),
            i32(out_h),
            u64(palette_ptr),
            np.float32(alpha),
            i32(int(overlay_bgr)),
            u64(labels_ptr),
            u64(color_ptr),
            u64(overlay_ptr),
            u64(confidence_ptr),
            i32(out_w % 4 == 0),  # rows start 4-byte aligned: 32-bit stores
            u64(alpha_ptr),
        )
