"""The stages behind the convert command (kept apart from argument parsing)."""

from __future__ import annotations

import time
from pathlib import Path

from lcsnet_seg.errors import BackendUnavailable, ConfigError, ModelFileError
from lcsnet_seg.model_info import ModelInfo, read_onnx_model_info


def _say(text: str) -> None:
    print(f"[convert] {text}", flush=True)


def _model_info(args, checkpoint_meta: dict, num_classes: int) -> ModelInfo:
    from lcsnet_seg.classes import load_class_set

    classes = load_class_set(args.classes, expected_count=num_classes)
    size = args.input_size or tuple(checkpoint_meta.get("input_size", (384, 512)))
    kwargs = dict(classes=classes, input_size=(int(size[0]), int(size[1])), colour_order=args.colour_order,
                  model_name=args.name or "lcsnet",
                  model_version=args.model_version or str(checkpoint_meta.get("version", "unversioned")))
    if args.mean:
        kwargs["mean"] = tuple(args.mean)
    if args.std:
        kwargs["std"] = tuple(args.std)
    return ModelInfo(**kwargs)


def _parity_batches(args, info: ModelInfo):
    from lcsnet_seg.convert.parity import folder_batches, scene_batches

    h, w = info.input_size
    if args.parity_folder:
        return list(folder_batches(args.parity_folder, info, args.parity_images))
    return list(scene_batches(args.parity_images, h, w, info))


def _onnx_runner(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def _check_parity(args, label: str, reference, onnx_path, batches) -> bool:
    from lcsnet_seg.convert.parity import compare

    result = compare(label, reference, _onnx_runner(onnx_path), batches)
    ok = result.argmax_agreement >= args.min_agreement
    _say(result.line() + ("" if ok else f"  BELOW {100 * args.min_agreement:.2f} %"))
    return ok


def run_stages(args, stages: list[str]) -> int:
    from lcsnet_seg.tools.convert import EXIT_NO_TENSORRT, EXIT_OK, EXIT_PARITY

    src = Path(args.model)
    if not src.is_file():
        raise ModelFileError(f"input model {src} not found")
    name = args.name or src.name.split(".")[0]
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, sim_path = out / f"{name}.onnx", out / f"{name}.sim.onnx"
    reference = None  # the PyTorch model as a batch -> logits function, when the input is a .pth
    parity_ok = True
    current = None

    if src.suffix == ".pth":
        import numpy as np
        import torch

        from lcsnet_seg.convert.checkpoint import load_model

        model, meta, num_classes = load_model(src, args.arch, args.num_classes, args.classes)
        info = _model_info(args, meta, num_classes)

        def run_pytorch(batch):
            with torch.no_grad():
                return model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()

        reference = run_pytorch

        if "onnx" not in stages:
            raise ConfigError("a .pth input needs the onnx stage; pass --stages onnx[,simplify[,engine]]")
        from lcsnet_seg.convert.export import export_onnx

        t = time.perf_counter()
        export_onnx(model, info, onnx_path, opset=args.opset, dynamic_hw=args.dynamic_hw,
                    dynamic_batch=args.dynamic_batch)
        _say(f"wrote {onnx_path} (opset {args.opset}, {'dynamic' if args.dynamic_hw else 'static'} H x W, "
             f"{time.perf_counter() - t:.1f} s)")
        current = onnx_path
    elif src.suffix == ".onnx":
        info = read_onnx_model_info(src)
        current = src
        if "onnx" in stages:
            stages = [s for s in stages if s != "onnx"]
            _say(f"input is ONNX: starting from {src}")
    else:
        raise ModelFileError(f"input model {src} must be a .pth or an .onnx file")

    batches = _parity_batches(args, info) if args.parity_images > 0 else []
    if reference is not None and batches:
        parity_ok &= _check_parity(args, "pytorch vs onnx", reference, current, batches)

    if "simplify" in stages:
        from lcsnet_seg.convert.simplify import simplify_onnx

        before, after = simplify_onnx(current, sim_path)
        _say(f"wrote {sim_path} ({before} -> {after} nodes)")
        if batches:
            ref = reference or _onnx_runner(current)
            parity_ok &= _check_parity(args, f"{'pytorch' if reference else 'onnx'} vs simplified onnx", ref,
                                       sim_path, batches)
        current = sim_path

    if not parity_ok:
        _say(f"parity below {100 * args.min_agreement:.2f} % argmax agreement: conversion failed")
        return EXIT_PARITY

    if "engine" in stages:
        from lcsnet_seg.convert.build_engine import EngineOptions, build_engine

        engine_path = out / f"{name}.engine"
        calib = None
        if args.precision == "int8":
            calib = _calibration_batches(args, info)
        options = EngineOptions(precision=args.precision, workspace_mb=args.workspace_mb,
                                timing_cache=args.timing_cache, min_hw=args.min_shape, opt_hw=args.opt_shape,
                                max_hw=args.max_shape, calibration_batches=calib, calibration_cache=args.calib_cache)
        try:
            build_engine(current, engine_path, info, options, log=_say)
        except BackendUnavailable as exc:
            _say(str(exc))
            return EXIT_NO_TENSORRT
        _say(f"wrote {engine_path} and {engine_path.name}.json")
    return EXIT_OK


def _calibration_batches(args, info: ModelInfo):
    from lcsnet_seg.convert.parity import folder_batches

    if args.calib_folder:
        return iter(folder_batches(args.calib_folder, info, args.calib_images))
    if args.calib_bag:
        from lcsnet_seg.eval.bag_io import bag_image_batches

        return iter(bag_image_batches(args.calib_bag, args.calib_topic, info, args.calib_images))
    return None
