#!/usr/bin/env python3
"""Where the fused postprocess kernel's time goes at 1920x1080: time it with outputs left out.

    python3 bench/gpu_post_variants.py        (on a CUDA machine; ncu can wrap it for counters)
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    import torch

    from gpu_pipeline import ROTATE, Timer
    from lcsnet_seg.gpu.postprocess import GpuPostprocess
    from lcsnet_seg.gpu.runtime import GpuContext

    ctx = GpuContext(0)
    timer = Timer(ctx)
    post = GpuPostprocess(ctx, np.float32, 8)
    h, w, nh, nw, c = 1080, 1920, 384, 512, 8
    images = [torch.randint(0, 255, (h, w, 3), dtype=torch.uint8, device="cuda") for _ in range(ROTATE)]
    logits = [torch.randn(1, c, nh, nw, device="cuda") for _ in range(ROTATE)]
    palette = torch.randint(0, 255, (256, 3), dtype=torch.uint8, device="cuda")
    labels = torch.empty(h, w, dtype=torch.uint8, device="cuda")
    color = torch.empty(h, w, 3, dtype=torch.uint8, device="cuda")
    overlay = torch.empty(h, w, 3, dtype=torch.uint8, device="cuda")
    conf = torch.empty(h, w, device="cuda")
    torch.cuda.synchronize()
    variants = {"labels": (1, 0, 0, 0), "labels+color": (1, 1, 0, 0), "labels+color+overlay": (1, 1, 1, 0),
                "overlay only": (0, 0, 1, 0), "all+confidence": (1, 1, 1, 1)}
    for name, (a, b, o, f) in variants.items():
        def run(i, a=a, b=b, o=o, f=f):
            post(logits[i % ROTATE].data_ptr(), c, nw, nh, images[i % ROTATE].data_ptr(), w, h, w * 3, 3, w, h,
                 palette.data_ptr(), 0.5, False, labels.data_ptr() * a, color.data_ptr() * b,
                 overlay.data_ptr() * o, conf.data_ptr() * f)
        print(f"{name:>22}: {timer(run, 300):7.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
