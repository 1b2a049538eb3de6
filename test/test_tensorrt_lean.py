"""What can be run of TensorRT without its builder: a runtime module (the lean runtime, tensorrt-lean-cu13 11.4, on
the GPU machine; the full tensorrt where installed). It imports under the name the backend looks for, has every
runtime name the backend uses, refuses a corrupt plan, and the backend's error paths give one-line errors. No
engine exists anywhere here (no builder installs), so nothing is inferred. Skipped, with the reason, without a
TensorRT runtime or a CUDA GPU."""

from pathlib import Path

import pytest
from conftest import REPO

from lcsnet_seg.backends.tensorrt_compat import RUNTIME_MODULES, import_runtime
from lcsnet_seg.errors import BackendUnavailable, ModelFileError
from lcsnet_seg.gpu import unavailable_reason


def _runtime():
    try:
        return import_runtime()
    except BackendUnavailable as exc:
        pytest.skip(f"no TensorRT runtime ({', '.join(RUNTIME_MODULES)}): {exc}")


@pytest.fixture(scope="module")
def trt():
    module, name = _runtime()
    print(f"TENSORRT runtime module {name} {module.__version__}")
    return module


def resolve(module, qualified: str):
    obj = module
    for part in qualified.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_runtime_name_the_backend_uses_is_there(trt):
    from tensorrt_names import check_source

    checked: list[str] = []
    source = (REPO / "lcsnet_seg" / "backends" / "tensorrt.py").read_text()
    assert check_source(source, "backends/tensorrt.py", checked) == []
    names = sorted({n for n in checked if not n.startswith("tensorrt.")})
    assert "Runtime.deserialize_cuda_engine" in names and "IExecutionContext.execute_async_v3" in names
    missing = []
    for name in names:
        try:
            resolve(trt, name)
        except AttributeError:
            missing.append(name)
    assert missing == [], f"{trt.__name__} {trt.__version__} lacks {missing}"
    print(f"TENSORRT {len(names)} runtime names used by the backend, all present: {', '.join(names)}")


def test_a_corrupt_plan_is_refused(trt):
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    assert runtime.deserialize_cuda_engine(b"not a TensorRT plan" * 64) is None


@pytest.fixture
def gpu_facts(trt):
    if unavailable_reason():
        pytest.skip(f"the backend needs a CUDA GPU: {unavailable_reason()}")
    from lcsnet_seg.backends.tensorrt_runtime import gpu_identity

    return str(trt.__version__), gpu_identity(0)


def engine_with_sidecar(tmp_path: Path, version: str, gpu: tuple[str, str], payload: bytes) -> Path:
    import json

    from lcsnet_seg.backends.base import sha256_file
    from lcsnet_seg.backends.tensorrt_sidecar import sidecar_path
    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.model_info import ModelInfo

    engine = tmp_path / "m.engine"
    engine.write_bytes(payload)
    doc = {
        "format": 1,
        "tensorrt_version": version,
        "gpu_name": gpu[0],
        "compute_capability": gpu[1],
        "engine_sha256": sha256_file(engine),
        "onnx_file": "m.onnx",
        "precision": "fp16",
        "io": [],
        "build": {"version_compatible": True},
        "model_info": json.loads(ModelInfo(classes=load_class_set()).to_json()),
    }
    sidecar_path(engine).write_text(json.dumps(doc))
    return engine


def test_the_backend_refuses_a_corrupt_engine_that_its_sidecar_vouches_for(tmp_path, gpu_facts):
    from lcsnet_seg.backends.tensorrt import TensorRTBackend

    engine = engine_with_sidecar(tmp_path, *gpu_facts, b"\x00" * 4096)
    with pytest.raises(ModelFileError) as err:
        TensorRTBackend(engine)
    text = str(err.value)
    assert f"could not be deserialised by TensorRT {gpu_facts[0]}" in text and "\n" not in text


def test_the_backends_error_paths_are_one_line(tmp_path, gpu_facts):
    from lcsnet_seg.backends.tensorrt import TensorRTBackend

    with pytest.raises(ModelFileError, match="not found"):
        TensorRTBackend(tmp_path / "missing.engine")
    bare = tmp_path / "bare.engine"
    bare.write_bytes(b"x")
    with pytest.raises(ModelFileError, match="has no sidecar bare.engine.json"):
        TensorRTBackend(bare)
    other = engine_with_sidecar(tmp_path, "9.9.9", gpu_facts[1], b"y")
    with pytest.raises(ModelFileError, match=r"built version-compatible with TensorRT 9.9.9.*rebuild it"):
        TensorRTBackend(other)


def test_the_lean_runtime_cannot_build_and_convert_says_so(trt):
    if hasattr(trt, "Builder"):
        pytest.skip("the full TensorRT is installed: it can build")
    from lcsnet_seg.backends.tensorrt_runtime import require_tensorrt

    with pytest.raises(BackendUnavailable, match="only the TensorRT lean runtime .* cannot build one"):
        require_tensorrt(builder=True)
