"""The engine inspector's report read as TensorRT 10.x and 11.x write it, and the precision verdict a build gets:
an int8 or fp16 engine whose convolutions fell back is refused naming them; an fp32 one may not hide TF32.
The JSON below follows the shapes in NVIDIA's documentation and engine dumps (10.x: one Format/Datatype string
per tensor, layer names only without DETAILED verbosity; 11.x: split Format and Datatype, I/O Tensors)."""

import json

import pytest

from lcsnet_seg.backends.tensorrt_layers import check_precision, datatype, precision_report
from lcsnet_seg.errors import PrecisionError


def conv(name, fmt, weights="Int8", key="Format/Datatype", layer_type="CaskConvolution", tactic="sm90_xmma"):
    return {
        "Name": name,
        "LayerType": layer_type,
        "ParameterType": "Convolution",
        "Inputs": [{"Name": f"{name}_in", "Location": "Device", "Dimensions": [1, 32, 96, 128], key: fmt}],
        "Outputs": [{"Name": f"{name}_out", "Location": "Device", "Dimensions": [1, 32, 96, 128], key: fmt}],
        "Weights": {"Type": weights, "Count": 9216},
        "TacticName": tactic,
    }


REFORMAT = {
    "Name": "Reformatting CopyNode for Input Tensor 0 to conv1",
    "LayerType": "Reformat",
    "ParameterType": "Reformat",
    "Origin": "QDQ",
    "Inputs": [{"Name": "image", "Format/Datatype": "Row major linear FP32"}],
    "Outputs": [{"Name": "q", "Format/Datatype": "Four wide channel vectorized row major Int8 format"}],
}
INT8 = "Thirty-two wide channel vectorized row major Int8 format"
FP16 = "Channel major FP16 format where channel % 8 == 0"


def report(layers, top=None):
    return precision_report(json.dumps({"Layers": layers, **(top or {"Bindings": ["image", "logits"]})}))


@pytest.mark.parametrize(
    "text, kind",
    [
        (INT8, "int8"),
        ("Row major INT8 format where column stride % 64 == 0", "int8"),
        ("Channel major UInt8 format", "uint8"),
        (FP16, "fp16"),
        ("Half", "fp16"),
        ("Row major linear FP32", "fp32"),
        ("Float", "fp32"),
        ("Channel major BFloat16 format where channel % 8 == 0", "bf16"),
        ("Row major linear FP8 format", "fp8"),
        ("Row major linear FP32 format (kLINEAR)", "fp32"),
        ("Unknown format", None),
    ],
)
def test_datatypes_are_found_by_word_in_any_layout_string(text, kind):
    assert datatype(text) == kind


def test_an_int8_engine_whose_convolutions_run_in_int8_passes():
    layers = [REFORMAT] + [conv(f"conv{i}", INT8) for i in range(10)]
    r = report(layers)
    assert r["convolutions"] == 10 and r["convolution_precisions"] == {"int8": 10} and r["detailed"]
    check_precision(r, "int8", 0.9, "m.int8.onnx")


def test_an_int8_engine_with_fallen_back_convolutions_is_refused_naming_them():
    layers = [conv(f"conv{i}", INT8) for i in range(8)] + [conv("head", FP16, "Half"), conv("stem", "Float", "Float")]
    r = report(layers)
    assert r["convolution_precisions"] == {"int8": 8, "fp16": 1, "fp32": 1}
    with pytest.raises(PrecisionError) as err:
        check_precision(r, "int8", 0.9, "m.int8.onnx")
    text = str(err.value)
    assert "runs 8 of 10 convolutions in int8 (80 %, at least 90 % asked for)" in text
    assert "head (fp16), stem (fp32)" in text and "\n" not in text
    check_precision(r, "int8", 0.8, "m.int8.onnx")  # the bar is an option


def test_eleven_x_split_keys_and_io_tensors_are_read():
    layers = [conv(f"conv{i}", "FP16", "Half", key="Datatype") for i in range(4)]
    for layer in layers:
        for tensor in layer["Inputs"] + layer["Outputs"]:
            tensor["Format"] = "Channel major FP16 format where channel % 8 == 0"
    io = {"I/O Tensors": [{"Name": "image", "IOMode": "Input", "DataType": "Float", "Dimensions": [1, 3, 96, 128]}]}
    r = report(layers, io)
    assert r["convolution_precisions"] == {"fp16": 4}
    check_precision(r, "fp16", 0.9, "m.fp16.onnx")


def test_layer_names_only_cannot_prove_a_precision():
    r = precision_report(json.dumps({"Layers": ["conv1 + relu1", "conv2"], "Bindings": ["image", "logits"]}))
    assert not r["detailed"]
    with pytest.raises(PrecisionError, match="does not report its layers' precisions"):
        check_precision(r, "fp16", 0.9, "m.fp16.onnx")


def test_an_fp32_engine_may_not_hide_tf32_unless_allowed():
    r = report([conv("conv1", "Row major linear FP32", "Float", tactic="sm80_xmma_fprop_implicit_gemm_tf32f32")])
    with pytest.raises(PrecisionError, match="TF32 tactics although TF32 was cleared: conv1"):
        check_precision(r, "fp32", 0.9, "m.onnx")
    check_precision(r, "fp32", 0.9, "m.onnx", tf32_allowed=True)
    check_precision(report([conv("conv1", "Float", "Float")]), "fp32", 0.9, "m.onnx")


def test_depthwise_and_deconvolutions_count_and_reformats_do_not():
    layers = [
        conv("dw", INT8, layer_type="CudaDepthwiseConvolution"),
        conv("up", INT8, layer_type="CaskDeconvolutionV2"),
    ]
    r = report(layers + [REFORMAT])
    assert r["convolutions"] == 2 and len(r["layers"]) == 3


def test_a_report_that_is_not_json_is_one_line():
    with pytest.raises(PrecisionError, match="not JSON"):
        precision_report("Layers: conv1")
