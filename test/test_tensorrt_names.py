"""Every TensorRT name the package uses exists in TensorRT 10.3 (JetPack 6) and in 11.x, or is guarded by a version
check: what broke real users (EXPLICIT_BATCH, removed in 11; SAME_COMPUTE_CAPABILITY, newer than 10.3). The name
lists are data taken from NVIDIA's bindings (test/data/tensorrt_api/README.md); the check is test/tensorrt_names.py."""

import textwrap

import pytest
from conftest import REPO
from tensorrt_names import check_source, load_names, tensorrt_modules

PACKAGE = REPO / "lcsnet_seg"


def test_the_name_lists_are_those_of_the_two_versions():
    old, new = load_names("10.3"), load_names("11")
    assert len(old) > 1500 and len(new) > 1500
    assert (
        "NetworkDefinitionCreationFlag.EXPLICIT_BATCH" in old
        and "NetworkDefinitionCreationFlag.EXPLICIT_BATCH" not in new
    )
    assert "HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY" in new
    assert "HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY" not in old


def test_the_package_uses_only_names_both_versions_have():
    modules = tensorrt_modules(PACKAGE)
    assert {p.name for p in modules} >= {"tensorrt.py", "build_engine.py", "tensorrt_compat.py"}
    checked: list[str] = []
    findings = [str(f) for p in modules for f in check_source(p.read_text(), str(p.relative_to(REPO)), checked)]
    assert findings == []
    # the check sees what the code calls, not only module attributes: a broken inference cannot pass vacuously
    for name in (
        "Runtime.deserialize_cuda_engine",
        "IExecutionContext.execute_async_v3",
        "IExecutionContext.set_input_shape",
        "IBuilderConfig.clear_flag",
        "BuilderFlag.TF32",
        "EngineInspector.get_engine_information",
        "Builder.build_serialized_network",
    ):
        assert name in checked, name


def planted(body: str) -> list[str]:
    return [f.name for f in check_source(textwrap.dedent(body))]


def test_a_planted_explicit_batch_fails():
    assert planted("""
        def make(trt, builder):
            return builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    """) == ["NetworkDefinitionCreationFlag.EXPLICIT_BATCH"]


def test_an_unguarded_same_compute_capability_fails_and_a_guarded_one_passes():
    unguarded = """
        def configure(trt, config):
            config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
    """
    assert planted(unguarded) == ["HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY"]
    guarded = """
        def configure(trt, config):
            if version_at_least(trt, 10, 9):
                config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
    """
    assert planted(guarded) == []


@pytest.mark.parametrize(
    "body, name",
    [
        (
            "def f(engine: trtt.ICudaEngine):\n    return engine.create_execution_context_without_device_memory()",
            "ICudaEngine.create_execution_context_without_device_memory",
        ),
        (
            "def f(trt, network):\n    layer = network.get_layer(0)\n    layer.precision = trt.DataType.HALF",
            "ILayer.precision",
        ),
        ("def f(trt, config):\n    config.set_flag(trt.BuilderFlag.FP16)", "BuilderFlag.FP16"),
        ("def f(trt):\n    return trt.IStreamReader", "IStreamReader"),
        ("def f(trt):\n    return trt.TacticSource.CUDNN", "TacticSource.CUDNN"),
        ("def f(t):\n    t.set_dynamic_range(-1.0, 1.0)", ".set_dynamic_range"),
        (
            "def f(trt):\n    r = trt.Runtime(None)\n    return r.deserialise_cuda_engine(b'')",
            "Runtime.deserialise_cuda_engine",
        ),
    ],
)
def test_other_names_that_broke_users_fail_too(body, name):
    assert name in planted(body)


def test_guards_by_getattr_and_hasattr_pass():
    assert (
        planted("""
        def flags(trt):
            flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
            if hasattr(trt, "IStreamReader"):
                reader = trt.IStreamReader
            return flag
    """)
        == []
    )
