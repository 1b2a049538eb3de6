"""ONNX graph simplification (onnxsim) and a check that the result still runs."""

from __future__ import annotations

from pathlib import Path

from lcsnet_seg.errors import ModelFileError


def simplify_onnx(src, dst) -> tuple[int, int]:
    """Simplify ``src`` into ``dst`` with onnxsim (constant folding, shape inference, dead-node removal).

    Metadata is carried over. Returns (nodes before, nodes after).
    """
    import onnx
    import onnxsim

    model = onnx.load(str(src))
    before = len(model.graph.node)
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ModelFileError(f"onnxsim could not validate the simplified graph of {src}; use the unsimplified model")
    del simplified.metadata_props[:]
    simplified.metadata_props.extend(model.metadata_props)
    simplified.producer_name, simplified.doc_string = model.producer_name, model.doc_string
    onnx.checker.check_model(simplified)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(simplified, str(dst))
    return before, len(simplified.graph.node)
