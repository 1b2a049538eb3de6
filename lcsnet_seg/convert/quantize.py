"""Precision decided in the ONNX: fp32 -> fp16 (NAME.fp16.onnx) or Q/DQ int8 (NAME.int8.onnx).

TensorRT 11 builds only strongly typed networks: the precision of every tensor comes from the ONNX.
- fp16: onnxconverter-common's ``convert_float_to_float16`` (the ONNX project's converter; pure
  Python, no CUDA) turns weights and activations to fp16 and keeps the graph's input and output in
  float32 (``keep_io_types``), so every backend feeds and reads it as before.
- int8: ONNX Runtime's ``quantize_static`` (already a dependency, runs on the CPU) writes
  QuantizeLinear/DequantizeLinear pairs, symmetric int8 for weights (per channel) and activations
  as TensorRT's explicit quantization requires (biases stay float), with scales calibrated on real images.
Both files keep the model's metadata and run on ONNX Runtime's CPU provider, so their accuracy
is checked here (convert's parity report) before any engine is built.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lcsnet_seg.errors import ConfigError, ModelFileError
from lcsnet_seg.model_info import copy_model_info, load_onnx

QUANTIZED_PRECISIONS = ("fp16", "int8")


def quantized_path(out_dir, name: str, precision: str) -> Path:
    return Path(out_dir) / f"{name}.{precision}.onnx"


def to_fp16(src, dst) -> Path:
    """fp16 weights and activations, float32 input and output; ``src``'s metadata carried over."""
    import onnx
    from onnxconverter_common.float16 import convert_float_to_float16

    model = load_onnx(src, weights=True)
    with warnings.catch_warnings():  # one "will be truncated" line per tiny weight: the parity check judges
        warnings.simplefilter("ignore", UserWarning)
        converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    _float32_outputs(converted)
    copy_model_info(model, converted)
    onnx.checker.check_model(converted)
    onnx.save(converted, str(dst))
    return Path(dst)


def _float32_outputs(model) -> None:
    """Cast any fp16 graph output back to float32.

    keep_io_types misses an output produced by an op on the converter's fp32 block list (Resize:
    the graph ends Resize -> Cast(fp16) -> logits); a final Cast(float32) restores the contract.
    """
    from onnx import TensorProto, helper

    for output in model.graph.output:
        tensor_type = output.type.tensor_type
        if tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        inner = output.name + "_fp16"
        for node in model.graph.node:
            node.output[:] = [inner if name == output.name else name for name in node.output]
        model.graph.node.append(
            helper.make_node("Cast", [inner], [output.name], to=TensorProto.FLOAT, name=output.name + "_to_float32")
        )
        tensor_type.elem_type = TensorProto.FLOAT


class _BatchReader:
    """onnxruntime.quantization CalibrationDataReader over 1 x 3 x H x W float32 batches."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._input_name = input_name
        self._batches = iter(batches)
        self.count = 0

    def get_next(self):
        batch = next(self._batches, None)
        if batch is None:
            return None
        self.count += 1
        return {self._input_name: np.ascontiguousarray(batch, np.float32)}

    def rewind(self) -> None:  # single pass is all MinMax/percentile calibration needs
        pass


def to_int8(src, dst, calibration_batches: Iterable[np.ndarray], method: str = "minmax") -> tuple[Path, int]:
    """Q/DQ int8: symmetric per-channel int8 weights, symmetric int8 activations, scales from the batches.

    method: "minmax" or "percentile" (99.999th, clips outliers). Returns (dst, images used).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ConfigError(f"calibration method {method!r} must be one of {sorted(methods)}")
    model = load_onnx(src, weights=True)
    batches = iter(calibration_batches)
    first = next(batches, None)
    if first is None:
        raise ConfigError("int8 calibration got no images: check --calib-folder / --calib-bag and --calib-topic")
    reader = _BatchReader(model.graph.input[0].name, itertools.chain([first], batches))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice: the graph is already simplified
    try:
        quantize_static(
            str(src),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            # biases stay float: TensorRT quantises them itself when it fuses Q/DQ into a layer
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
            calibration_providers=["CPUExecutionProvider"],
        )
    finally:
        root.setLevel(level)
    quantized = load_onnx(dst, weights=True)
    copy_model_info(model, quantized)
    onnx.save(quantized, str(dst))
    return Path(dst), reader.count


def count_qdq(path) -> dict[str, int]:
    """Node counts that show what the file holds: QuantizeLinear, DequantizeLinear, Cast, fp16 initialisers."""
    import onnx

    model = load_onnx(path, weights=True)
    kinds = [n.op_type for n in model.graph.node]
    fp16 = sum(1 for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16)
    return {
        "QuantizeLinear": kinds.count("QuantizeLinear"),
        "DequantizeLinear": kinds.count("DequantizeLinear"),
        "Cast": kinds.count("Cast"),
        "fp16_initializers": fp16,
    }


def check_quantized(path, precision: str) -> None:
    """Refuse a file that does not hold what its name says (e.g. a quantiser that silently did nothing)."""
    counts = count_qdq(path)
    if precision == "int8" and counts["QuantizeLinear"] == 0:
        raise ModelFileError(f"{path} has no QuantizeLinear nodes: int8 quantisation did nothing")
    if precision == "fp16" and counts["fp16_initializers"] == 0:
        raise ModelFileError(f"{path} has no fp16 weights: fp16 conversion did nothing")
