"""The JSON sidecar written beside a TensorRT engine, and the check that an engine fits this machine.

A serialized engine is tied to the TensorRT version and GPU architecture that built it, and to
the ONNX it was built from. The sidecar records all three plus the ModelInfo, so the loader can
refuse a stale or foreign engine with a clear message instead of a deserialisation crash.
"""

from __future__ import annotations

import json
from pathlib import Path

from lcsnet_seg.backends.base import sha256_file
from lcsnet_seg.errors import ModelFileError
from lcsnet_seg.model_info import ModelInfo

SIDECAR_FORMAT = 1


def sidecar_path(engine_path) -> Path:
    return Path(str(engine_path) + ".json")


def write_sidecar(
    engine_path,
    *,
    info: ModelInfo,
    onnx_path,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    precision: str,
    io: list[dict],
    profile: dict | None,
    build: dict | None = None,
    layers: dict | None = None,
) -> Path:
    """``build``: how it was built (version_compatible, tf32, ...); ``layers``: what the engine inspector says
    each layer runs in (tensorrt_layers.precision_report)."""
    doc = {
        "format": SIDECAR_FORMAT,
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "precision": precision,
        "io": io,
        "profile": profile,
        "build": build or {},
        "layers": layers,
        "onnx_file": Path(onnx_path).name,
        "onnx_sha256": sha256_file(onnx_path),
        "engine_sha256": sha256_file(engine_path),
        "model_info": json.loads(info.to_json()),
    }
    path = sidecar_path(engine_path)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(engine_path, parse_info: bool = True) -> dict:
    """The sidecar of ``engine_path`` as a dict; with ``parse_info``, its ModelInfo under ``model_info_parsed``."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise ModelFileError(
            f"engine {engine_path} has no sidecar {path.name}; rebuild it with "
            "`ros2 run lcsnet_seg convert MODEL.onnx --stages engine`"
        )
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or doc.get("format") != SIDECAR_FORMAT:
            raise ValueError("unknown format")
        if parse_info:
            doc["model_info_parsed"] = ModelInfo.from_json(json.dumps(doc["model_info"]), source=str(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"engine sidecar {path} is unreadable ({exc}); rebuild the engine") from None
    return doc


def load_engine_sidecar(
    engine_path, *, tensorrt_version: str, compute_capability: str, onnx_path=None
) -> tuple[dict, str | None]:
    """Read the sidecar and refuse a foreign or stale engine before TensorRT touches it; returns (the sidecar,
    a note when the engine was accepted although it was built by another TensorRT: a version-compatible one).

    The fit (TensorRT version, GPU, engine and source ONNX hashes) is checked before the ModelInfo
    is parsed, so an engine from another TensorRT is named as such, whatever its sidecar holds.
    ``onnx_path`` defaults to the ONNX the sidecar names, beside the engine, where it exists.
    """
    doc = read_sidecar(engine_path, parse_info=False)
    source = onnx_path or (Path(engine_path).parent / str(doc.get("onnx_file", "")))
    note = check_engine_fits(
        engine_path,
        doc,
        tensorrt_version=tensorrt_version,
        compute_capability=compute_capability,
        onnx_path=source if Path(source).is_file() else None,
    )
    return read_sidecar(engine_path), note


def profile_batch_range(doc: dict) -> tuple[int, int]:
    """(fewest, most) images one inference of the sidecar's engine takes: its optimisation profile's batch range
    (``convert --max-batch N``: 1..N); (1, 1) for an engine without a profile (static) or one written before the
    range was recorded, whose profile is then read from its min/max shapes."""
    profile = doc.get("profile")
    if not isinstance(profile, dict):
        return 1, 1
    try:
        low = int(profile["min_batch"] if "min_batch" in profile else profile["min"][0])
        high = int(profile["max_batch"] if "max_batch" in profile else profile["max"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return 1, 1
    return low, high


def version_compatible(doc: dict) -> bool:
    """Whether the sidecar says its engine was built with --version-compatible (BuilderFlag.VERSION_COMPATIBLE)."""
    build = doc.get("build")
    return bool(isinstance(build, dict) and build.get("version_compatible"))


def check_engine_fits(
    engine_path, doc: dict, *, tensorrt_version: str, compute_capability: str, onnx_path=None
) -> str | None:
    """Raise ModelFileError when the engine was built by another TensorRT, for another GPU, or from another ONNX.
    A version-compatible engine may run on a runtime of the same major version that is as new or newer than the
    one that built it; the returned note says so (None when the versions are equal)."""
    from lcsnet_seg.backends.tensorrt_compat import version_tuple

    problems, note = [], None
    built = str(doc.get("tensorrt_version"))
    if built != tensorrt_version:
        runtime_v, built_v = version_tuple(tensorrt_version), version_tuple(built)
        same_major_newer = bool(built_v) and runtime_v[:1] == built_v[:1] and runtime_v >= built_v
        if version_compatible(doc) and same_major_newer:
            note = f"version-compatible engine built with TensorRT {built}, running on TensorRT {tensorrt_version}"
        elif version_compatible(doc):
            problems.append(
                f"built version-compatible with TensorRT {built}, which runs on {built.split('.')[0]}.x runtimes "
                f"as new or newer, not on {tensorrt_version}"
            )
        else:
            problems.append(f"built with TensorRT {built}, this machine has {tensorrt_version}")
    if doc.get("compute_capability") != compute_capability:
        problems.append(
            f"built for compute capability {doc.get('compute_capability')} "
            f"({doc.get('gpu_name')}), this GPU is {compute_capability}"
        )
    recorded = doc.get("engine_sha256")
    if engine_path is not None and Path(engine_path).is_file() and recorded not in (None, sha256_file(engine_path)):
        problems.append("the engine file changed after its sidecar was written")
    if onnx_path is not None and Path(onnx_path).is_file() and doc.get("onnx_sha256") != sha256_file(onnx_path):
        problems.append(f"the source ONNX {Path(onnx_path).name} changed since the engine was built (stale)")
    if problems:
        raise ModelFileError(
            f"engine {engine_path} does not fit: " + "; ".join(problems) + "; rebuild it on this machine with "
            "`ros2 run lcsnet_seg convert MODEL.onnx --stages engine`"
        )
    return note
