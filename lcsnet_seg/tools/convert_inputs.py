"""What convert starts from: weights (+ architecture) or an ONNX, and where calibration images come from."""

from __future__ import annotations

import os
from pathlib import Path

from lcsnet_seg.errors import ConfigError, ModelFileError
from lcsnet_seg.model_info import METADATA_KEY, ModelInfo
from lcsnet_seg.tools.convert_options import ConvertOptions


def model_info_from_args(options: ConvertOptions, checkpoint_meta: dict | None, num_classes: int | None) -> ModelInfo:
    """The ModelInfo convert writes: a checkpoint's own facts (``checkpoint_meta``; None for an ONNX from
    elsewhere, which says nothing), with what the command line gives laid over them (--classes, --input-size,
    --mean, --std, --color-order; --name and --model-version name it; --max-batch bounds its batch)."""
    from dataclasses import replace

    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.model.checkpoint import checkpoint_model_info
    from lcsnet_seg.model_info import DEFAULT_INPUT_SIZE, ModelOverrides

    overrides = ModelOverrides.of(
        input_size=options.input_size,
        mean=options.mean,
        std=options.std,
        color_order=options.color_order,
        classes=load_class_set(options.classes, expected_count=num_classes) if options.classes else None,
    )
    if checkpoint_meta is None:  # an ONNX exported elsewhere: the command line describes it (model_from_onnx checks)
        info = ModelInfo(classes=overrides.classes or load_class_set(), input_size=DEFAULT_INPUT_SIZE)
    else:
        info = checkpoint_model_info(checkpoint_meta, num_classes or len(load_class_set()), options.model)
    info = info.with_overrides(overrides)
    return replace(
        info,
        model_name=options.name or info.model_name,
        model_version=options.model_version or info.model_version,
        max_batch=options.max_batch or info.max_batch,
    )


def model_from_weights(options: ConvertOptions, name: str):
    """(model returning one logits tensor, ModelInfo, batch -> logits numpy function) for a .pth."""
    import numpy as np
    import torch

    from lcsnet_seg.model.checkpoint import load_model
    from lcsnet_seg.model.logits import logits_only

    model, meta, num_classes = load_model(options.model, options.arch, options.num_classes, options.classes)
    info = model_info_from_args(options, meta, num_classes)
    model = logits_only(model, info, options.output_key)

    def run_pytorch(batch):
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()

    return model, info, run_pytorch


def model_from_onnx(options: ConvertOptions, src: Path, onnx_path: Path, say) -> tuple[ModelInfo, Path]:
    """ModelInfo of an ONNX input, and the file to go on from.

    An ONNX with lcsnet_seg metadata goes on as it is. One exported elsewhere is accepted when
    --classes, --input-size, --mean and --std describe it: the metadata is written into
    ``onnx_path`` (the input is never modified in place) and that file goes on.
    """
    from dataclasses import replace

    import onnx

    from lcsnet_seg.model_info import has_model_info, load_onnx, onnx_model_info, set_onnx_model_info

    proto = load_onnx(src, weights=True)
    if has_model_info(proto):  # its own facts; --max-batch may bound its batch anew (the stages then record it)
        info = onnx_model_info(proto, src)
        return (replace(info, max_batch=options.max_batch) if options.max_batch else info), src
    missing = [
        flag
        for flag, value in (
            ("--classes", options.classes),
            ("--input-size", options.input_size),
            ("--mean", options.mean),
            ("--std", options.std),
        )
        if not value
    ]
    if missing:
        raise ModelFileError(
            f"model file {src} has no '{METADATA_KEY}' metadata; to convert an ONNX exported "
            f"elsewhere describe it with --classes, --input-size, --mean and --std "
            f"(missing: {', '.join(missing)})"
        )
    info = model_info_from_args(options, None, None)
    _keep_one_output(proto, src, options.output_key)
    set_onnx_model_info(proto, info)
    partial = onnx_path.with_name(onnx_path.name + ".partial")
    onnx.save(proto, str(partial))
    _check_fits(partial, src, info)
    os.replace(partial, onnx_path)
    say(f"{src.name} had no lcsnet_seg metadata: wrote {onnx_path} with the metadata from the command line")
    return info, onnx_path


def _keep_one_output(proto, src: Path, key: str | None) -> None:
    names = [o.name for o in proto.graph.output]
    if len(names) == 1 and key in (None, names[0]):
        return
    if key is None or key not in names:
        raise ModelFileError(
            f"model file {src} has outputs {', '.join(names)}; choose the logits with --output-key NAME"
            if key is None
            else f"--output-key {key!r} is not an output of {src} ({', '.join(names)})"
        )
    kept = [o for o in proto.graph.output if o.name == key]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)  # the simplify stage removes the nodes that only fed the others


def _check_fits(path: Path, src: Path, info: ModelInfo) -> None:
    """The backend's own checks (one image input, N x C x h x w logits matching the classes), naming ``src``."""
    from lcsnet_seg.backends.onnxruntime import OnnxRuntimeBackend

    try:
        OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"]).close()
    except ModelFileError as exc:
        path.unlink(missing_ok=True)
        raise ModelFileError(str(exc).replace(str(path), str(src))) from None


def calibration_batches(options: ConvertOptions, info: ModelInfo):
    """int8 calibration images from --calib-folder or --calib-bag, preprocessed as the node does."""
    from lcsnet_seg.convert.parity import folder_batches

    if options.calib_folder:
        return folder_batches(options.calib_folder, info, options.calib_images)
    if options.calib_bag:
        from lcsnet_seg.eval.bag_io import bag_image_batches

        return bag_image_batches(options.calib_bag, options.calib_topic, info, options.calib_images)
    raise ConfigError("--precision int8 needs calibration images: give --calib-folder DIR or --calib-bag BAG")
