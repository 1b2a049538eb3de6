"""What a built engine's layers run in, from TensorRT's engine inspector, and whether that is what was asked for.

``EngineInspector.get_engine_information(LayerInformationFormat.JSON)`` of an engine built with
``ProfilingVerbosity.DETAILED`` lists every layer with its inputs and outputs. TensorRT 10.x gives each
tensor one ``Format/Datatype`` string ("Channel major FP16 format where channel % 8 == 0", "Thirty-two wide
channel vectorized row major Int8 format", or Myelin's short "Half", "Float"); 11.x also has split ``Format``
and ``Datatype`` keys and moves the engine's I/O from ``Bindings`` to ``I/O Tensors`` (NVIDIA's migration
page for IEngineInspector). Both are read here. A layer's precision is that of its first input (the rule of
NVIDIA's TensorRT Engine Explorer), falling back to its weights' type; the data type is found by word, not by
the whole layout string, so layouts added in later releases still parse. Pure Python: tested without TensorRT.
"""

from __future__ import annotations

import json
import re

from lcsnet_seg.errors import PrecisionError

# Words naming a data type, most specific first ("bfloat16" before "float", "uint8" before "int8").
_WORDS = (
    ("bfloat16", "bf16"),
    ("bf16", "bf16"),
    ("fp8", "fp8"),
    ("fp4", "fp4"),
    ("uint8", "uint8"),
    ("int8", "int8"),
    ("int4", "int4"),
    ("fp16", "fp16"),
    ("half", "fp16"),
    ("fp32", "fp32"),
    ("float", "fp32"),
    ("int32", "int32"),
    ("int64", "int64"),
    ("bool", "bool"),
)
REQUESTED = {"fp16": ("fp16",), "int8": ("int8",), "fp32": ("fp32",)}


def datatype(text) -> str | None:
    """The data type a format/datatype string names (lower-case short name), None when it names none."""
    if not isinstance(text, str):
        return None
    words = set(re.findall(r"[a-z0-9]+", text.lower()))
    return next((kind for word, kind in _WORDS if word in words), None)


def tensor_precision(tensor) -> str | None:
    if not isinstance(tensor, dict):
        return None
    for key in ("Datatype", "DataType", "Format/Datatype", "Format"):
        kind = datatype(tensor.get(key))
        if kind:
            return kind
    return None


def is_convolution(layer: dict) -> bool:
    """Convolutions and deconvolutions, however TensorRT named the kernel (CaskConvolution, CudaDepthwise...)."""
    return any("conv" in str(layer.get(key, "")).lower() for key in ("ParameterType", "LayerType"))


def layer_rows(inspector_json: str) -> list[dict]:
    """One row per layer: name, type, convolution (bool), precision (None when the inspector does not say)."""
    try:
        doc = json.loads(inspector_json)
    except (TypeError, ValueError) as exc:
        raise PrecisionError(f"the engine inspector's report is not JSON ({exc})") from None
    rows = []
    for layer in doc.get("Layers", []) if isinstance(doc, dict) else []:
        if not isinstance(layer, dict):  # layer names only: the engine was not built with DETAILED verbosity
            rows.append({"name": str(layer), "type": None, "convolution": False, "precision": None, "tactic": ""})
            continue
        inputs = [t for t in layer.get("Inputs", []) if isinstance(t, dict)]
        precision = tensor_precision(inputs[0]) if inputs else None
        if precision is None:
            weights = layer.get("Weights")
            precision = datatype(weights.get("Type")) if isinstance(weights, dict) else None
        if precision is None:
            outputs = [t for t in layer.get("Outputs", []) if isinstance(t, dict)]
            precision = tensor_precision(outputs[0]) if outputs else None
        rows.append(
            {
                "name": str(layer.get("Name", "")),
                "type": str(layer.get("ParameterType") or layer.get("LayerType") or ""),
                "convolution": is_convolution(layer),
                "precision": precision,
                "tactic": str(layer.get("TacticName", "")),
            }
        )
    return rows


def precision_report(inspector_json: str) -> dict:
    """What the sidecar records: every layer's type and precision, and the convolutions counted by precision."""
    rows = layer_rows(inspector_json)
    convolutions = [r for r in rows if r["convolution"]]
    by_precision: dict[str, int] = {}
    for row in convolutions:
        key = row["precision"] or "unknown"
        by_precision[key] = by_precision.get(key, 0) + 1
    return {
        "layers": rows,
        "convolutions": len(convolutions),
        "convolution_precisions": by_precision,
        "detailed": bool(rows) and all(r["type"] is not None for r in rows),
    }


def check_precision(
    report: dict, requested: str, minimum_share: float, source: str, tf32_allowed: bool = False
) -> None:
    """Raise PrecisionError when fewer than ``minimum_share`` of the engine's convolutions run in ``requested``
    (fp16 or int8), naming the convolutions that fell back. An fp32 build cannot narrow (the ONNX is strongly
    typed), but it could compute in TF32: without ``tf32_allowed`` a layer with a TF32 tactic is refused."""
    if requested == "fp32":
        tf32 = [r["name"] for r in report["layers"] if "tf32" in r.get("tactic", "").lower()]
        if tf32 and not tf32_allowed:
            raise PrecisionError(
                f"the fp32 engine built from {source} runs {len(tf32)} layers with TF32 tactics although TF32 was "
                f"cleared: {', '.join(tf32[:8])}; pass --allow-tf32 if TF32 is acceptable"
            )
        return
    if requested not in REQUESTED:
        return
    if not report["detailed"]:
        raise PrecisionError(
            f"the engine built from {source} does not report its layers' precisions (built without detailed "
            "profiling verbosity?): its precision cannot be verified"
        )
    convolutions = [r for r in report["layers"] if r["convolution"]]
    if not convolutions:
        return  # a model without convolutions: nothing this check can count
    fell_back = [r for r in convolutions if r["precision"] not in REQUESTED[requested]]
    share = 1.0 - len(fell_back) / len(convolutions)
    if share < minimum_share:
        named = ", ".join(f"{r['name']} ({r['precision'] or 'unknown'})" for r in fell_back[:8])
        more = f" and {len(fell_back) - 8} more" if len(fell_back) > 8 else ""
        raise PrecisionError(
            f"the engine built from {source} runs {len(convolutions) - len(fell_back)} of {len(convolutions)} "
            f"convolutions in {requested} ({100 * share:.0f} %, at least {100 * minimum_share:.0f} % asked for); "
            f"fell back: {named}{more}. Check the Q/DQ or fp16 conversion of those layers (convert --precision), "
            "or lower --min-precision-share"
        )
