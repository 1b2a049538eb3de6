"""ONNX graph simplification (onnxsim) and a check that the result still runs."""

from __future__ import annotations

from pathlib import Path

from lcsnet_seg.errors import ModelFileError


def simplify_onnx(src, dst) -> tuple[int, int]:
    """Simplify ``src`` into ``dst`` with onnxsim (constant folding, shape inference, dead-node removal).

    Metadata is carried over. A dynamic batch dimension stays symbolic (onnxsim keeps symbolic input dims and,
    validating with ``check_n=0``, needs no test shapes); the Shape -> Slice -> Concat that feeds each Resize its
    size then stays in the graph. Returns (nodes before, nodes after).
    """
    import onnx
    import onnxsim

    from lcsnet_seg.convert.export import resolve_output_shapes
    from lcsnet_seg.model_info import copy_model_info, load_onnx

    model = load_onnx(src, weights=True)
    before = len(model.graph.node)
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ModelFileError(f"onnxsim could not validate the simplified graph of {src}; use the unsimplified model")
    resolve_output_shapes(simplified)
    copy_model_info(model, simplified)
    onnx.checker.check_model(simplified)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(simplified, str(dst))
    return before, len(simplified.graph.node)
