"""Segmenters: an image in, the requested outputs (labels, colour mask, overlay, confidence) out.

- contract.py: what every Segmenter keeps (FrameSegmenter), the result type and the request checks;
- cpu.py: the CPU Segmenter (numpy/OpenCV around a host-array backend), the reference;
- gpu.py: the GPU Segmenter (fused kernels, one stream, CUDA graphs) around a device-pointer backend;
- factory.py: SegmenterConfig and build_segmenter, the one factory every caller uses.

Importing this package needs no GPU library: the GPU Segmenter is imported when a device backend needs it.
"""

from lcsnet_seg.segmenter.contract import (
    DEFAULT_OUTPUTS,
    OUTPUT_SIZES,
    OUTPUTS,
    FrameSegmenter,
    SegmentationResult,
)
from lcsnet_seg.segmenter.factory import SegmenterConfig, build_segmenter, make_segmenter

__all__ = [
    "DEFAULT_OUTPUTS",
    "OUTPUT_SIZES",
    "OUTPUTS",
    "FrameSegmenter",
    "SegmentationResult",
    "SegmenterConfig",
    "build_segmenter",
    "make_segmenter",
]
