"""The TensorRT code where TensorRT is not installed: supported versions, the runtime's absence, the sidecar check
(foreign, stale, version-compatible engines).

No machine of this project can install the TensorRT builder; engine build and execution are type-checked against
tensorrt-stubs (make typecheck), their names checked against 10.3 and 11.x (test_tensorrt_names.py), and
everything that decides their result is tested here and in test_tensorrt_layers.py.
"""

import json
import re

import pytest
from conftest import REPO

PACKAGE = REPO / "lcsnet_seg"


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
    from lcsnet_seg.backends.tensorrt_compat import RUNTIME_MODULES, import_runtime
    from lcsnet_seg.errors import BackendUnavailable

    try:
        import_runtime()
        pytest.skip(f"a TensorRT runtime ({', '.join(RUNTIME_MODULES)}) is installed here")
    except BackendUnavailable:
        pass
    from lcsnet_seg.backends.tensorrt_runtime import require_tensorrt

    with pytest.raises(BackendUnavailable, match="TensorRT not found.*tensorrt-lean runtime"):
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
    doc, note = load_engine_sidecar(engine, tensorrt_version="10.3.0", compute_capability="8.7")
    assert doc["model_info_parsed"].num_classes == 8 and note is None
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


@pytest.mark.parametrize(
    "runtime, accepted",
    [("10.3.0", True), ("10.8.1", True), ("10.2.0", False), ("11.4.0", False)],
)
def test_a_version_compatible_engine_runs_on_a_newer_runtime_of_its_major_and_says_so(tmp_path, runtime, accepted):
    from lcsnet_seg.backends.tensorrt_sidecar import load_engine_sidecar
    from lcsnet_seg.errors import ModelFileError

    engine = _engine_with_sidecar(tmp_path, build={"version_compatible": True})
    if accepted:
        _, note = load_engine_sidecar(engine, tensorrt_version=runtime, compute_capability="8.7")
        if runtime == "10.3.0":
            assert note is None
        else:
            assert note == f"version-compatible engine built with TensorRT 10.3.0, running on TensorRT {runtime}"
    else:
        with pytest.raises(ModelFileError, match="version-compatible with TensorRT 10.3.0"):
            load_engine_sidecar(engine, tensorrt_version=runtime, compute_capability="8.7")


def test_an_engine_that_is_not_version_compatible_needs_its_exact_version(tmp_path):
    from lcsnet_seg.backends.tensorrt_sidecar import load_engine_sidecar
    from lcsnet_seg.errors import ModelFileError

    engine = _engine_with_sidecar(tmp_path, build={"version_compatible": False})
    with pytest.raises(ModelFileError, match="built with TensorRT 10.3.0, this machine has 10.8.1"):
        load_engine_sidecar(engine, tensorrt_version="10.8.1", compute_capability="8.7")
