"""The quantize stage on the CPU: NAME.fp16.onnx and NAME.int8.onnx, their accuracy bars, and what they hold."""

import re

import cv2
import numpy as np
import pytest
from conftest import DEMO_ONNX

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxconverter_common")

from lcsnet_seg.tools.convert import EXIT_ERROR, EXIT_OK, EXIT_PARITY, EXIT_USAGE, main  # noqa: E402


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def segment(path):
    """Run the file through the CPU Segmenter as the node would; returns the labels of one 480x640 frame."""
    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter.cpu import Segmenter

    backend, _ = create_backend("auto", path)
    image, _ = generate_scene(7, 480, 640)
    labels = Segmenter(backend)(image, "rgb8").labels
    backend.close()
    return labels


@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory):
    from lcsnet_seg.tools.make_demo_bag import main as make_bag

    path = tmp_path_factory.mktemp("calib") / "bag"
    assert make_bag([str(path), "--frames", "12", "--storage", "mcap"]) == 0
    return path


@pytest.fixture(scope="module")
def fp16(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16")
    code = main(
        [str(DEMO_ONNX), "--out-dir", str(out), "--stages", "quantize", "--precision", "fp16", "--parity-images", "4"]
    )
    return code, out / "lcsnet_demo.fp16.onnx"


def test_fp16_onnx_holds_fp16_weights_with_float32_io(fp16):
    code, path = fp16
    assert code == EXIT_OK and path.is_file()
    model = onnx.load(str(path))
    floats = [t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert floats and all(t.data_type == onnx.TensorProto.FLOAT16 for t in floats)
    for tensor in (*model.graph.input, *model.graph.output):  # the backends feed and read float32
        assert tensor.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    from lcsnet_seg.model_info import read_onnx_model_info

    assert read_onnx_model_info(path) == read_onnx_model_info(DEMO_ONNX)


def test_fp16_agreement_is_printed_and_above_99_5_percent(tmp_path, capsys):
    code, text = run(
        [DEMO_ONNX, "--out-dir", tmp_path, "--stages", "quantize", "--precision", "fp16", "--parity-images", "3"],
        capsys,
    )
    assert code == EXIT_OK
    agreement = float(re.search(r"fp32 vs fp16 onnx .*argmax agreement ([\d.]+) %", text).group(1))
    assert agreement >= 99.5


def test_fp16_onnx_runs_in_the_segmenter_like_fp32(fp16):
    _, path = fp16
    labels, reference = segment(path), segment(DEMO_ONNX)
    assert labels.shape == (480, 640)
    assert np.mean(labels == reference) >= 0.995


def test_int8_from_a_bag_is_symmetric_qdq_within_the_miou_bar(tmp_path, capsys, demo_bag):
    code, text = run(
        [
            DEMO_ONNX,
            "--out-dir",
            tmp_path,
            "--stages",
            "quantize",
            "--precision",
            "int8",
            "--calib-bag",
            demo_bag,
            "--parity-images",
            "4",
        ],
        capsys,
    )
    assert code == EXIT_OK, text
    assert "on 12 calibration images" in text
    drop = float(re.search(r"fp32 vs int8 onnx .*\(drop ([-+\d.]+)\)", text).group(1))
    assert drop <= 0.02
    path = tmp_path / "lcsnet_demo.int8.onnx"
    model = onnx.load(str(path))
    kinds = [n.op_type for n in model.graph.node]
    assert kinds.count("QuantizeLinear") > 10 and kinds.count("DequantizeLinear") > kinds.count("QuantizeLinear")
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    zero_points = [
        inits[n.input[2]]
        for n in model.graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2
    ]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # symmetric int8
    assert segment(path).shape == (480, 640)


def test_int8_from_a_folder_and_a_failed_bar_leaves_no_file(tmp_path, capsys):
    from lcsnet_seg.model.scene import generate_scene

    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), generate_scene(1_900_000_000 + i, 240, 320)[0][:, :, ::-1])
    code, text = run(
        [
            DEMO_ONNX,
            "--out-dir",
            tmp_path / "o",
            "--stages",
            "quantize",
            "--precision",
            "int8",
            "--calib-folder",
            folder,
            "--parity-images",
            "1",
            "--max-miou-drop",
            "-1",
        ],
        capsys,
    )
    assert code == EXIT_PARITY
    assert "on 3 calibration images" in text and "ABOVE -1.0000" in text and "conversion failed" in text
    assert list((tmp_path / "o").iterdir()) == []


def test_fp16_below_its_bar_leaves_no_file(tmp_path, capsys):
    code, text = run(
        [
            DEMO_ONNX,
            "--out-dir",
            tmp_path,
            "--stages",
            "quantize",
            "--precision",
            "fp16",
            "--parity-images",
            "4",
            "--min-agreement-fp16",
            "100",
        ],
        capsys,
    )
    assert code == EXIT_PARITY and "BELOW 100.00 %" in text
    assert not (tmp_path / "lcsnet_demo.fp16.onnx").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_int8_without_calibration_images_is_refused_up_front(tmp_path, capsys):
    code, text = run([DEMO_ONNX, "--out-dir", tmp_path, "--stages", "quantize", "--precision", "int8"], capsys)
    assert code == EXIT_USAGE
    assert "--precision int8 needs calibration images: give --calib-folder DIR or --calib-bag BAG" in text


def test_engine_stage_builds_what_the_onnx_holds(tmp_path, capsys):
    code, text = run(
        [DEMO_ONNX, "--out-dir", tmp_path, "--stages", "engine", "--precision", "int8", "--parity-images", "0"], capsys
    )
    assert code == EXIT_ERROR
    assert "lcsnet_demo.onnx holds fp32 but --precision is int8: add the quantize stage" in text
