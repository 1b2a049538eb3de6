"""Kernel argument packs: one C struct per kernel, defined once here as a numpy structured dtype.

A kernel takes a single pointer to an array of these structs in device memory, one per image of a
batch (``blockIdx.z`` picks its image). The C declaration the kernel source includes is generated
from the same field list (``c_struct``), so the layout is written in one place; numpy's aligned
layout is C's natural alignment, which nvcc/NVRTC follow for these scalar types.

A pack is filled once per frame geometry (FrameBuffers) and copied to the device then: an eager
frame launches with one prepared pointer argument, and a CUDA graph captures the same pointer. The
overlay alpha, the one value that changes from frame to frame without a new geometry, is read by
the kernel through a pointer into the staged frame (frames.py).
"""

from __future__ import annotations

import numpy as np

from lcsnet_seg.outputs import OUTPUTS

_C_TYPES = {"u8": "unsigned long long", "f8": "double", "i4": "int", "f4": "float"}


class ArgStruct:
    """A C struct of scalars: ``fields`` are (name, numpy type code: u8 pointer/size, f8, i4, f4)."""

    def __init__(self, name: str, fields: tuple[tuple[str, str], ...]) -> None:
        self.name = name
        self.fields = fields
        self.dtype = np.dtype([(n, t) for n, t in fields], align=True)

    def c_struct(self) -> str:
        """The declaration the kernel source begins with."""
        body = "".join(f"    {_C_TYPES[t]} {n};\n" for n, t in self.fields)
        return f"struct {self.name} {{\n{body}}};\n"

    def records(self, count: int) -> np.ndarray:
        """``count`` zeroed records (host memory) to fill field by field."""
        return np.zeros(count, self.dtype)


# One image of a preprocess launch: uint8 image (any row step) -> planar C x dst_h x dst_w at dst.
PREPROCESS_ARGS = ArgStruct(
    "PreprocessArgs",
    (
        ("src", "u8"),  # device address of the image, rows ``src_step`` bytes apart
        ("dst", "u8"),  # device address of this image's 3 x dst_h x dst_w network input
        ("scale_x", "f8"),  # src_w / dst_w (bilinear source = (dst + 0.5) * scale - 0.5)
        ("scale_y", "f8"),
        ("src_w", "i4"),
        ("src_h", "i4"),
        ("src_step", "i4"),
        ("channels", "i4"),
        ("c0", "i4"),  # which source channel feeds network channel 0, 1, 2 (colour order)
        ("c1", "i4"),
        ("c2", "i4"),
        ("dst_w", "i4"),
        ("dst_h", "i4"),
        ("s0", "f4"),  # per-channel scale and offset: (pixel / 255 - mean) / std = pixel * s + o
        ("s1", "f4"),
        ("s2", "f4"),
        ("o0", "f4"),
        ("o1", "f4"),
        ("o2", "f4"),
    ),
)

# One image of a postprocess launch: logits (C x net_h x net_w) -> labels, colours, overlay, confidence.
POSTPROCESS_ARGS = ArgStruct(
    "PostprocessArgs",
    (
        ("logits", "u8"),  # device address of this image's logits, C x net_h x net_w (the model's output size)
        ("img", "u8"),  # the uint8 input image (for the overlay), rows ``img_step`` bytes apart
        ("palette", "u8"),  # 256 x 3 uint8 RGB
        ("alpha", "u8"),  # device address of the overlay alpha (one float32, staged with the frame)
        # one output address per output of the table (labels_out, color_mask_out, ...); 0 skips that output
        *((f"{o.field}_out", "u8") for o in OUTPUTS),
        ("net_w", "i4"),
        ("net_h", "i4"),
        ("img_w", "i4"),
        ("img_h", "i4"),
        ("img_step", "i4"),
        ("channels", "i4"),
        ("out_w", "i4"),
        ("out_h", "i4"),
        ("overlay_bgr", "i4"),
        ("vector_ok", "i4"),  # out_w % 4 == 0: rows start 4-byte aligned, 32-bit stores
    ),
)
