"""The TensorRT code, checked where TensorRT is not installed: removed APIs, layering, sidecar check, versions.

No machine of this project has TensorRT; engine build and execution are type-checked against
tensorrt-stubs (make typecheck) and everything that decides their result is tested here.
"""

import json
import re

import pytest
from conftest import REPO

PACKAGE = REPO / "lcsnet_seg"

# NVIDIA, "Migrating from TensorRT 10.x to 11.x", Removed Python APIs and Replacements (11.x docs),
# plus the C++ names whose Python bindings went with them. A use of any of these fails on 11.x.
REMOVED_IN_TENSORRT_11 = [
    r"BuilderFlag\.(FP16|INT8|FP8|BF16|INT4|FP4|OBEY_PRECISION_CONSTRAINTS|PREFER_PRECISION_CONSTRAINTS|DIRECT_IO)\b",
    r"\bint8_calibrator\b",
    r"\b(set|get)_calibration_profile\b",
    r"\b(set|get|clear)_quantization_flag\b",
    r"\bquantization_flags\b",
    r"\bQuantizationFlag\b",
    r"\bIInt8(Calibrator|EntropyCalibrator2?|MinMaxCalibrator|LegacyCalibrator)\b",
    r"\bCalibrationAlgoType\b",
    r"\bdevice_memory_size\b(?!_v2)",
    r"\bget_device_memory_size_for_profile\b(?!_v2)",
    r"\bIAlgorithm(Selector|Context|IOInfo|Variant)?\b",
    r"\balgorithm_selector\b",
    r"\bplatform_has_(fast_fp16|fast_int8|tf32)\b",
]


def test_no_api_removed_in_tensorrt_11_appears_in_the_package():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for pattern in REMOVED_IN_TENSORRT_11:
                if re.search(pattern, line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_removed_names_check_can_fail():
    old = "config.set_flag(trt.BuilderFlag.FP16)\nconfig.int8_calibrator = c\nn = engine.device_memory_size\n"
    hits = [p for p in REMOVED_IN_TENSORRT_11 for line in old.splitlines() if re.search(p, line)]
    assert len(hits) == 3
    assert not any(re.search(p, "engine.device_memory_size_v2") for p in REMOVED_IN_TENSORRT_11)


def test_engine_build_is_strongly_typed():
    source = (PACKAGE / "convert" / "build_engine.py").read_text()
    assert "create_network(network_flags())" in source
    assert "STRONGLY_TYPED" in (PACKAGE / "backends" / "tensorrt_compat.py").read_text()
    assert "set_flag" not in source


def test_backends_do_not_import_convert():
    offenders = [
        str(p.relative_to(REPO))
        for p in (PACKAGE / "backends").rglob("*.py")
        if re.search(r"^\s*(from|import) lcsnet_seg\.convert", p.read_text(), re.M)
    ]
    assert not offenders


def test_gpu_identity_takes_the_device_the_backend_is_given():
    import inspect

    from lcsnet_seg.backends.tensorrt import TensorRTBackend
    from lcsnet_seg.backends.tensorrt_runtime import gpu_identity

    assert list(inspect.signature(gpu_identity).parameters) == ["device"]
    assert "device" in inspect.signature(TensorRTBackend).parameters
    source = inspect.getsource(TensorRTBackend.__init__)
    # the device is selected, and identified, before the engine is deserialised
    assert (
        source.index("select_device(device)")
        < source.index("gpu_identity(device)")
        < source.index("deserialize_cuda_engine")
    )
    init = (PACKAGE / "backends" / "__init__.py").read_text()
    assert "TensorRTBackend(path, overrides, device=device)" in init


@pytest.mark.parametrize(
    "version, ok", [("10.3.0", True), ("10.13.0.35", True), ("11.4.0", True), ("8.6.1", False), ("12.0.0", False)]
)
def test_supported_tensorrt_versions(version, ok):
    from lcsnet_seg.backends.tensorrt_compat import check_version
    from lcsnet_seg.errors import BackendUnavailable

    if ok:
        check_version(version)
    else:
        with pytest.raises(BackendUnavailable, match=f"TensorRT {re.escape(version)} is"):
            check_version(version)


def test_without_tensorrt_the_runtime_says_so():
    pytest.importorskip("lcsnet_seg")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    from lcsnet_seg.backends.tensorrt_runtime import require_tensorrt
    from lcsnet_seg.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="TensorRT not found"):
        require_tensorrt()


def _engine_with_sidecar(tmp_path, **fields):
    from lcsnet_seg.backends.tensorrt_sidecar import sha256_file, sidecar_path
    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.model_info import ModelInfo

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine bytes")
    doc = {
        "format": 1,
        "tensorrt_version": "10.3.0",
        "compute_capability": "8.7",
        "gpu_name": "Orin",
        "engine_sha256": sha256_file(engine),
        "onnx_file": "m.onnx",
        "precision": "fp16",
        "io": [],
        "model_info": json.loads(ModelInfo(classes=load_class_set()).to_json()),
    }
    doc.update(fields)
    sidecar_path(engine).write_text(json.dumps(doc))
    return engine


def test_sidecar_written_before_the_color_order_rename_still_loads(tmp_path):
    from lcsnet_seg.backends.tensorrt_sidecar import read_sidecar
    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.model_info import ModelInfo

    info = json.loads(ModelInfo(classes=load_class_set(), color_order="bgr").to_json())
    info["colour_order"] = info.pop("color_order")  # the key as engine sidecars had it before
    engine = _engine_with_sidecar(tmp_path, model_info=info)
    assert read_sidecar(engine)["model_info_parsed"].color_order == "bgr"


def test_foreign_engine_is_refused_by_the_sidecar_check(tmp_path):
    """The check the backend runs before TensorRT deserialises anything, called through its own function."""
    from lcsnet_seg.backends.tensorrt_sidecar import load_engine_sidecar
    from lcsnet_seg.errors import ModelFileError

    # a foreign engine: another TensorRT, another GPU, and a sidecar whose model info is not ours
    engine = _engine_with_sidecar(
        tmp_path, tensorrt_version="8.6.1", compute_capability="7.2", gpu_name="Xavier", model_info={}
    )
    with pytest.raises(ModelFileError) as err:
        load_engine_sidecar(engine, tensorrt_version="10.3.0", compute_capability="8.7")
    text = str(err.value)
    assert "built with TensorRT 8.6.1, this machine has 10.3.0" in text
    assert "built for compute capability 7.2 (Xavier), this GPU is 8.7" in text
    assert "\n" not in text and "rebuild it on this machine" in text


def test_stale_or_edited_engine_is_refused_and_a_fitting_one_loads(tmp_path):
    from lcsnet_seg.backends.tensorrt_sidecar import load_engine_sidecar, sha256_file
    from lcsnet_seg.errors import ModelFileError

    (tmp_path / "m.onnx").write_bytes(b"onnx v1")
    engine = _engine_with_sidecar(tmp_path, onnx_sha256=sha256_file(tmp_path / "m.onnx"))
    doc = load_engine_sidecar(engine, tensorrt_version="10.3.0", compute_capability="8.7")
    assert doc["model_info_parsed"].num_classes == 8
    (tmp_path / "m.onnx").write_bytes(b"onnx v2")  # the ONNX beside it changed: the engine is stale
    with pytest.raises(ModelFileError, match=r"source ONNX m.onnx changed since the engine was built \(stale\)"):
        load_engine_sidecar(engine, tensorrt_version="10.3.0", compute_capability="8.7")
    engine.write_bytes(b"another engine")
    with pytest.raises(ModelFileError, match="the engine file changed after its sidecar was written"):
        load_engine_sidecar(engine, tensorrt_version="10.3.0", compute_capability="8.7")


def test_engine_without_sidecar_is_refused(tmp_path):
    from lcsnet_seg.backends.tensorrt_sidecar import load_engine_sidecar
    from lcsnet_seg.errors import ModelFileError

    engine = tmp_path / "bare.engine"
    engine.write_bytes(b"x")
    with pytest.raises(ModelFileError, match="has no sidecar bare.engine.json"):
        load_engine_sidecar(engine, tensorrt_version="11.4.0", compute_capability="9.0")
