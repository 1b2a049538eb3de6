"""One reader of model facts for every model kind: ``read_model_info(path, overrides)``.

- ``.onnx``: the ``lcsnet_seg`` metadata convert writes. An ONNX exported elsewhere, without it, is taken
  when the overrides say what the file cannot (mean and std; classes where config/classes.yaml does not
  fit its class count); its input size then comes from the graph when the graph fixes it.
- ``.engine``: the JSON sidecar convert writes beside it.
- ``.pth``: the checkpoint's own entries (model/checkpoint.py, docs/MODELS.md); what it does not say is
  filled from config/classes.yaml and the package defaults.

Configuration (``ModelOverrides``: node parameters, evaluate and convert options) is laid over the
result. The backends, the node (through its backend), evaluate in both modes, the demo and the fleet
all read model facts here.
"""

from __future__ import annotations

from pathlib import Path

from lcsnet_seg.backends.base import check_model_path
from lcsnet_seg.errors import ModelFileError
from lcsnet_seg.model_info import METADATA_KEY, ModelInfo, ModelOverrides, has_model_info, load_onnx, onnx_model_info

MODEL_SUFFIXES = (".onnx", ".engine", ".pth")


def read_model_info(path, overrides: ModelOverrides | None = None) -> ModelInfo:
    """The facts of the model file ``path`` with ``overrides`` applied (see the module)."""
    check_model_path(path)
    suffix = Path(path).suffix
    if suffix == ".onnx":
        return onnx_file_info(load_onnx(path), path, overrides)
    if suffix == ".engine":
        from lcsnet_seg.backends.tensorrt_sidecar import read_sidecar

        return read_sidecar(path)["model_info_parsed"].with_overrides(overrides)
    if suffix == ".pth":
        from lcsnet_seg.model.checkpoint import read_checkpoint_info

        return read_checkpoint_info(path).with_overrides(overrides)
    raise ModelFileError(f"model file {path} is not one of {', '.join(MODEL_SUFFIXES)}; give an ONNX, engine or .pth")


def onnx_file_info(model, path, overrides: ModelOverrides | None) -> ModelInfo:
    """ModelInfo of a loaded ONNX (``model``: onnx.ModelProto) with ``overrides`` applied; a model without
    lcsnet_seg metadata is described by the overrides alone (see the module)."""
    if has_model_info(model):
        return onnx_model_info(model, path).with_overrides(overrides)
    overrides = overrides or ModelOverrides()
    if overrides.mean is None or overrides.std is None:
        raise ModelFileError(
            f"model file {path} has no '{METADATA_KEY}' metadata (class names, mean/std, input size): give mean "
            "and std (node parameters; classes_file and input_size where config/classes.yaml or the graph do not "
            "fit), or write the metadata in with `convert MODEL.onnx --out-dir DIR --classes FILE --input-size HxW "
            "--mean R G B --std R G B`"
        )
    from lcsnet_seg.classes import load_class_set

    inputs, outputs = graph_io(model)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError(
            f"model file {path} has {len(inputs)} inputs and {len(outputs)} outputs; "
            "expected one image input and one logits output"
        )
    channels = _dims(outputs[0])[1] if len(_dims(outputs[0])) == 4 else None
    classes = overrides.classes or load_class_set(expected_count=channels if isinstance(channels, int) else None)
    size = overrides.input_size
    if size is None:
        dims = _dims(inputs[0])
        if len(dims) != 4 or not all(isinstance(d, int) for d in dims[2:]):
            raise ModelFileError(
                f"model file {path} has no '{METADATA_KEY}' metadata and a dynamic input size: give input_size"
            )
        size = (int(dims[2]), int(dims[3]))
    return ModelInfo(
        classes=classes,
        input_size=size,
        mean=overrides.mean,
        std=overrides.std,
        color_order=overrides.color_order or "rgb",
        model_name=Path(path).stem,
    )


def graph_io(model) -> tuple[list, list]:
    """The graph's real inputs (initializers excluded) and its outputs, as onnx ValueInfoProtos."""
    initializers = {i.name for i in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers], list(model.graph.output)


def _dims(value) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else "?" for d in value.type.tensor_type.shape.dim]
