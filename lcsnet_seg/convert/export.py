"""PyTorch -> ONNX export with the model's self-description in the metadata."""

from __future__ import annotations

import warnings
from pathlib import Path

from lcsnet_seg.model_info import ModelInfo, load_onnx, set_onnx_model_info

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17


def export_onnx(
    model, info: ModelInfo, out_path, opset: int = DEFAULT_OPSET, dynamic_hw: bool = False, dynamic_batch: bool = False
) -> Path:
    """Export ``model`` (N x 3 x H x W -> N x C x H x W) to ONNX and write ``info`` into its metadata.

    Uses the TorchScript-based exporter: it produces plain static graphs (after constant folding)
    that TensorRT parses directly, and needs no onnxscript. Static shape by default.
    """
    import onnx
    import torch

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    h, w = info.input_size
    dummy = torch.zeros(1, 3, h, w)
    axes: dict[str, dict[int, str]] = {}
    if dynamic_batch or dynamic_hw:
        for name in (INPUT_NAME, OUTPUT_NAME):
            axes[name] = {}
            if dynamic_batch:
                axes[name][0] = "batch"
            if dynamic_hw:
                axes[name].update({2: "height", 3: "width"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)  # legacy exporter notice
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(out_path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes=axes or None,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = load_onnx(out_path, weights=True)
    set_onnx_model_info(proto, info)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out_path))
    return out_path
