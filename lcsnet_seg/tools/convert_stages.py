"""The stages behind the convert command (kept apart from argument parsing).

Each stage writes ``FILE.partial``, checks it, and renames it to ``FILE`` only when its parity
holds: a failed stage leaves no file that looks valid. The outputs of the requested stages are
removed first, so an older file of the same name cannot pass for this run's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from lcsnet_seg.errors import ModelFileError
from lcsnet_seg.model_info import ModelInfo, ModelOverrides
from lcsnet_seg.tools.convert_inputs import calibration_batches, model_from_onnx, model_from_weights
from lcsnet_seg.tools.convert_options import ConvertOptions
from lcsnet_seg.tools.exit_codes import EXIT_NO_TENSORRT, EXIT_OK, EXIT_PARITY


def _say(text: str) -> None:
    print(f"[convert] {text}", flush=True)


def _onnx_runner(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def _is_dynamic(path) -> bool:
    from lcsnet_seg.model_info import load_onnx

    dims = load_onnx(path).graph.input[0].type.tensor_type.shape.dim
    return len(dims) == 4 and any(not d.HasField("dim_value") for d in list(dims)[2:])


def _parity_sets(options: ConvertOptions, info: ModelInfo, dynamic: bool) -> list[tuple[str, list]]:
    """(label, batches) per size compared: the input size, and for a dynamic-H/W model a second one."""
    from lcsnet_seg.convert.parity import folder_batches, scene_batches

    if options.parity_images <= 0:
        return []
    h, w = info.input_size
    sizes = [(h, w)]
    if dynamic:  # a second size, three quarters of the first, kept a multiple of 32 for strided encoders
        sizes.append((max(32, h * 3 // 4 // 32 * 32), max(32, w * 3 // 4 // 32 * 32)))
    sets = []
    for size in sizes:
        sized = info.with_overrides(ModelOverrides(input_size=size))
        batches = (
            list(folder_batches(options.parity_folder, sized, options.parity_images))
            if options.parity_folder
            else list(scene_batches(options.parity_images, *size, sized))
        )
        sets.append((f" at {size[0]}x{size[1]}" if dynamic else "", batches))
    return sets


def _check_agreement(label: str, reference, candidate_path, sets, minimum_percent: float) -> bool:
    from lcsnet_seg.convert.parity import compare

    ok = True
    candidate = _onnx_runner(candidate_path)
    for suffix, batches in sets:
        result = compare(label + suffix, reference, candidate, batches)
        passed = 100 * result.argmax_agreement >= minimum_percent
        _say(result.line() + ("" if passed else f"  BELOW {minimum_percent:.2f} %"))
        ok &= passed
    return ok


class Outputs:
    """The files of one run; ``commit`` renames a checked ``.partial`` into place."""

    def __init__(self, out_dir: Path, name: str, precision: str, source: Path) -> None:
        from lcsnet_seg.convert.quantize import quantized_path

        self.paths = {
            "onnx": out_dir / f"{name}.onnx",
            "simplify": out_dir / f"{name}.sim.onnx",
            "quantize": quantized_path(out_dir, name, precision) if precision != "fp32" else None,
            "engine": out_dir / f"{name}.engine",
        }
        self.source = source.resolve()

    def path(self, stage: str) -> Path:
        """The file ``stage`` writes (quantize writes none at fp32, and is not run then)."""
        path = self.paths[stage]
        if path is None:
            raise ValueError(f"the {stage} stage writes no file at this precision")
        return path

    def clear(self, stages) -> None:
        for stage in stages:
            path = self.paths[stage]
            if path is None or path.resolve() == self.source:
                continue
            for stale in (path, Path(str(path) + ".json"), partial(path)):
                stale.unlink(missing_ok=True)


def partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _rejected(path: Path, why: str) -> None:
    partial(path).unlink(missing_ok=True)
    _say(f"{why}: {path.name} not written; conversion failed")


def run_stages(options: ConvertOptions, stages: list[str]) -> int:
    src = Path(options.model)
    if not src.is_file():
        raise ModelFileError(f"input model {src} not found")
    if src.suffix not in (".pth", ".onnx"):
        raise ModelFileError(f"input model {src} must be a .pth or an .onnx file")
    name = options.name or src.name.split(".")[0]
    options.out_dir.mkdir(parents=True, exist_ok=True)
    outputs = Outputs(options.out_dir, name, options.precision or "fp16", src)
    # an ONNX input skips the onnx stage: NAME.onnx beside it may be the user's own export, kept
    outputs.clear([s for s in stages if not (s == "onnx" and src.suffix == ".onnx")])
    try:
        return _run(options, stages, src, name, outputs)
    finally:
        for path in outputs.paths.values():
            if path is not None:
                partial(path).unlink(missing_ok=True)


def _run(options: ConvertOptions, stages, src: Path, name: str, outputs: Outputs) -> int:

    reference = None  # the PyTorch model as a batch -> logits function, when the input is a .pth
    onnx_path = outputs.path("onnx")
    if src.suffix == ".pth":
        if "onnx" not in stages:
            from lcsnet_seg.errors import ConfigError

            raise ConfigError("a .pth input needs the onnx stage; pass --stages onnx[,simplify[,quantize[,engine]]]")
        model, info, reference = model_from_weights(options, name)
        from lcsnet_seg.convert.export import export_onnx

        t = time.perf_counter()
        export_onnx(
            model,
            info,
            partial(onnx_path),
            opset=options.opset,
            dynamic_hw=options.dynamic_hw,
            dynamic_batch=options.dynamic_batch,
        )
        _say(
            f"exported {onnx_path.name} (opset {options.opset}, {'dynamic' if options.dynamic_hw else 'static'} H x W, "
            f"{time.perf_counter() - t:.1f} s)"
        )
        current = partial(onnx_path)
    else:
        info, current = model_from_onnx(options, src, onnx_path, say=_say)
        if "onnx" in stages:
            _say(f"input is ONNX: starting from {current}")
    stages = [s for s in stages if s != "onnx"]
    sets = _parity_sets(options, info, options.dynamic_hw or _is_dynamic(current))

    if reference is not None:
        if sets and not _check_agreement("pytorch vs onnx", reference, current, sets, options.min_agreement):
            _rejected(onnx_path, "parity below --min-agreement")
            return EXIT_PARITY
        os.replace(current, onnx_path)
        _say(f"wrote {onnx_path}")
        current = onnx_path

    if "simplify" in stages:
        from lcsnet_seg.convert.simplify import simplify_onnx

        sim_path = outputs.path("simplify")
        before, after = simplify_onnx(current, partial(sim_path))
        ref = reference or _onnx_runner(current)
        label = f"{'pytorch' if reference else 'onnx'} vs simplified onnx"
        if sets and not _check_agreement(label, ref, partial(sim_path), sets, options.min_agreement):
            _rejected(sim_path, "parity below --min-agreement")
            return EXIT_PARITY
        os.replace(partial(sim_path), sim_path)
        _say(f"wrote {sim_path} ({before} -> {after} nodes)")
        current = sim_path

    precision = options.precision or "fp16"
    if "quantize" in stages and precision != "fp32":
        quantized = _quantize(options, precision, info, current, outputs.path("quantize"), sets)
        if quantized is None:
            return EXIT_PARITY
        current = quantized
    elif "quantize" in stages:
        _say("--precision fp32: nothing to quantise")

    if "engine" in stages:
        from lcsnet_seg.convert.build_engine import EngineOptions, build_engine
        from lcsnet_seg.errors import BackendUnavailable, PrecisionError

        engine_path = outputs.path("engine")
        engine = EngineOptions(
            precision=_onnx_precision(current, options.precision),
            workspace_mb=options.workspace_mb,
            timing_cache=options.timing_cache,
            min_hw=options.min_shape,
            opt_hw=options.opt_shape,
            max_hw=options.max_shape,
            device=options.device,
            allow_tf32=options.allow_tf32,
            version_compatible=options.version_compatible,
            min_precision_share=options.min_precision_share / 100.0,
        )
        try:
            build_engine(current, engine_path, info, engine, log=_say)
        except PrecisionError as exc:
            _rejected(engine_path, str(exc))
            return EXIT_PARITY
        except BackendUnavailable as exc:
            if options.engine_required:
                _say(str(exc))
                return EXIT_NO_TENSORRT
            _say(
                f"engine stage skipped: {exc}. The ONNX files above are this run's result; build the engine on the "
                f"robot with `convert {current.name} --stages engine`"
            )
            return EXIT_OK
        _say(f"wrote {engine_path} and {engine_path.name}.json")
    return EXIT_OK


def _quantize(options: ConvertOptions, precision: str, info: ModelInfo, current: Path, dst: Path, sets) -> Path | None:
    """The quantize stage: NAME.fp16.onnx or NAME.int8.onnx, kept only if it holds its accuracy bar."""
    from lcsnet_seg.convert import quantize

    fp32 = _onnx_runner(current)
    t = time.perf_counter()
    if precision == "fp16":
        quantize.to_fp16(current, partial(dst))
        quantize.check_quantized(partial(dst), "fp16")
        _say(f"converted to fp16 ({time.perf_counter() - t:.1f} s)")
        if sets and not _check_agreement("fp32 vs fp16 onnx", fp32, partial(dst), sets, options.min_agreement_fp16):
            _rejected(dst, "fp16 parity below --min-agreement-fp16")
            return None
    else:
        _, used = quantize.to_int8(current, partial(dst), calibration_batches(options, info), options.calib_method)
        quantize.check_quantized(partial(dst), "int8")
        _say(f"quantised to int8 (Q/DQ, symmetric) on {used} calibration images ({time.perf_counter() - t:.1f} s)")
        if options.parity_images > 0:
            from lcsnet_seg.convert.parity import miou_drop

            result = miou_drop("fp32 vs int8 onnx", fp32, _onnx_runner(partial(dst)), options.parity_images, info)
            ok = result.drop <= options.max_miou_drop
            _say(result.line() + ("" if ok else f"  ABOVE {options.max_miou_drop:.4f}"))
            if not ok:
                _rejected(dst, "int8 mIoU drop above --max-miou-drop")
                return None
    os.replace(partial(dst), dst)
    _say(f"wrote {dst}")
    return dst


def _onnx_precision(path: Path, requested: str | None) -> str:
    """What the ONNX holds (the engine keeps it): int8 with Q/DQ nodes, fp16 with fp16 weights, else fp32.

    ``requested``: --precision, None when not given (then whatever the ONNX holds is built).
    """
    from lcsnet_seg.convert.quantize import count_qdq
    from lcsnet_seg.errors import ConfigError

    counts = count_qdq(path)
    held = "int8" if counts["QuantizeLinear"] else "fp16" if counts["fp16_initializers"] else "fp32"
    if requested is not None and held != requested:
        raise ConfigError(
            f"{path.name} holds {held} but --precision is {requested}: add the quantize stage "
            f"(--stages quantize,engine) or start from NAME.{requested}.onnx"
        )
    return held
