"""Fused GPU postprocessing: logits (fp32/fp16, C x h x w at the model's own output size, which may be
below its input size: a SegFormer's is 1/4) -> argmax at logit resolution -> nearest resize to the output
size -> uint8 labels, palette colour mask (RGB), alpha-blended overlay on the original image, optional
confidence (max softmax). Four output pixels per thread; any output may be skipped; one launch per batch.

Nearest resize is the CPU reference's exact integer rule: src = ((2 * dst + 1) * src_size) / (2 * dst_size).
The blend is round-half-even of img * (1 - alpha) + colour * alpha without FMA contraction, as
cv2.addWeighted computes it. When the output size differs from the image size (output_size =
"network"), the image is sampled bilinearly (the preprocess convention) and rounded.
"""

from __future__ import annotations

import numpy as np

from lcsnet_seg.gpu.kernel_args import POSTPROCESS_ARGS
from lcsnet_seg.outputs import OUTPUTS

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
__device__ void postprocess(const PostprocessArgs& a) {
    int x0 = 4 * (blockIdx.x * blockDim.x + threadIdx.x);
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x0 >= a.out_w || y >= a.out_h) return;  // a batch's grid covers its largest image
    const InT* __restrict__ logits = (const InT*)a.logits;
    const unsigned char* __restrict__ img = (const unsigned char*)a.img;
    const unsigned char* __restrict__ palette = (const unsigned char*)a.palette;
    unsigned char* __restrict__ labels_out = (unsigned char*)a.labels_out;
    unsigned char* __restrict__ color_out = (unsigned char*)a.color_mask_out;
    unsigned char* __restrict__ overlay_out = (unsigned char*)a.overlay_out;
    float* __restrict__ conf_out = (float*)a.confidence_out;
    // read from device memory, staged with the frame: a captured graph need not bake it in
    float alpha = *(const float*)a.alpha;
    int n = min(4, a.out_w - x0);
    int sy = nearest_source(y, a.net_h, a.out_h);
    size_t plane = (size_t)a.net_w * a.net_h;
    const InT* row = logits + (size_t)sy * a.net_w;
    bool want_conf = conf_out != 0;
    unsigned char lab[4] = {0, 0, 0, 0}, col[12], ovl[12];
    float cf[4] = {0.f, 0.f, 0.f, 0.f};
    int prev_sx = -1, arg = 0;
    float conf = 0.f, keep = 1.f - alpha;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if (i < n) {
            int x = x0 + i;
            int sx = nearest_source(x, a.net_w, a.out_w);
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
                    int c = a.channels == 1 ? 0 : k;   // mono input: grey in all three channels
                    float base = image_value(img, a.img_w, a.img_h, a.img_step, a.channels, c, x, y, a.out_w, a.out_h);
                    float colour = (float)rgb[a.overlay_bgr ? 2 - k : k];
                    int v = __float2int_rn(__fadd_rn(__fmul_rn(base, keep), __fmul_rn(colour, alpha)));
                    ovl[3 * i + k] = (unsigned char)min(max(v, 0), 255);
                }
            }
        }
    }
    size_t o = (size_t)y * a.out_w + x0;
    if (a.vector_ok && n == 4) {
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

// One launch serves a batch: blockIdx.z is the image, args[z] its geometry (gpu/kernel_args.py).
extern "C" __global__ void postprocess_f32(const PostprocessArgs* args) { postprocess<float>(args[blockIdx.z]); }
extern "C" __global__ void postprocess_f16(const PostprocessArgs* args) {
    postprocess<unsigned short>(args[blockIdx.z]);
}
"""

BLOCK = (32, 8)


class GpuPostprocess:
    """The fused postprocessing kernel, compiled for ``num_classes`` classes and ``logits_dtype`` logits."""

    def __init__(self, context, logits_dtype=np.float32, num_classes: int = 8) -> None:
        self.context = context
        self.num_classes = int(num_classes)
        name = "postprocess_f16" if np.dtype(logits_dtype) == np.float16 else "postprocess_f32"
        source = f"#define NUM_CLASSES {self.num_classes}\n" + POSTPROCESS_ARGS.c_struct() + SOURCE
        self.kernel = context.kernel(source, name)

    @staticmethod
    def fill(
        record,
        *,
        logits: int,
        net_w: int,
        net_h: int,
        img: int,
        img_w: int,
        img_h: int,
        img_step: int,
        channels: int,
        out_w: int,
        out_h: int,
        palette: int,
        alpha: int,
        overlay_bgr: bool,
        outputs: dict[str, int],
    ) -> None:
        """Fill one POSTPROCESS_ARGS record. net_w x net_h: the logits' own size (the model's output, which
        may be smaller than its input); out_w x out_h: the outputs'; ``outputs``: the device address of each
        requested output by its field name (labels, color_mask, ...); the others are skipped (address 0)."""
        record["logits"], record["img"], record["palette"], record["alpha"] = logits, img, palette, alpha
        for output in OUTPUTS:
            record[f"{output.field}_out"] = outputs.get(output.field, 0)
        record["net_w"], record["net_h"], record["img_w"], record["img_h"] = net_w, net_h, img_w, img_h
        record["img_step"], record["channels"], record["out_w"], record["out_h"] = img_step, channels, out_w, out_h
        record["overlay_bgr"], record["vector_ok"] = int(bool(overlay_bgr)), int(out_w % 4 == 0)

    @staticmethod
    def launch_config(out_w: int, out_h: int, batch: int = 1):
        """The launch geometry for ``batch`` images, the largest out_w x out_h (made once per frame geometry)."""
        from cuda.core import LaunchConfig

        quads = -(-out_w // 4)  # each thread writes 4 adjacent pixels
        return LaunchConfig(grid=(-(-quads // BLOCK[0]), -(-out_h // BLOCK[1]), batch), block=BLOCK)

    def launch(self, config, args_ptr) -> None:
        """Enqueue on the context's stream; ``args_ptr``: np.uint64 device address of the records."""
        from cuda.core import launch

        launch(self.context.stream, config, self.kernel, args_ptr)
