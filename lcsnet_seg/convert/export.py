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
    that TensorRT parses directly, and needs no onnxscript. Static shape by default; ``dynamic_batch``
    (convert --max-batch N > 1) makes the batch dimension symbolic ("batch"), traced at batch 2 so that no
    size the trace sees can be taken for the constant 1.
    """
    import onnx
    import torch

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    h, w = info.input_size
    dummy = torch.zeros(2 if dynamic_batch else 1, 3, h, w)
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
    resolve_output_shapes(proto)
    set_onnx_model_info(proto, info)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out_path))
    return out_path


def resolve_output_shapes(model) -> None:
    """Fill the graph outputs' unknown dimensions that ONNX shape inference with data propagation resolves.

    With a dynamic batch, each Resize takes its output size from ``Shape`` of a tensor (batch and channels) and
    constants (height, width); plain shape inference then leaves the logits' class count and size unknown, data
    propagation finds them (``batch x 8 x 384 x 512``). Dimensions it cannot resolve stay as they are.
    """
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - an op shape inference does not know: the file stays as exported
        return
    found = {o.name: o.type.tensor_type.shape.dim for o in inferred.graph.output}
    for output in model.graph.output:
        for dim, resolved in zip(output.type.tensor_type.shape.dim, found.get(output.name, [])):
            if not dim.HasField("dim_value") and resolved.HasField("dim_value"):
                dim.dim_value = resolved.dim_value
