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
from lcsnet_seg.model_info import ModelInfo, ModelOverrides, read_onnx_model_info
from lcsnet_seg.tools.convert_inputs import calibration_batches, model_from_onnx, model_from_weights
from lcsnet_seg.tools.convert_options import ConvertOptions
from lcsnet_seg.tools.exit_codes import EXIT_NO_TENSORRT, EXIT_OK, EXIT_PARITY


def _say(text: str) -> None:
    print(f"[convert] {text}", flush=True)


def _onnx_runner(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failing run raises, and parity reports it in one line
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def _is_dynamic(path) -> bool:
    from lcsnet_seg.model_info import load_onnx

    dims = load_onnx(path).graph.input[0].type.tensor_type.shape.dim
    return len(dims) == 4 and any(not d.HasField("dim_value") for d in list(dims)[2:])


def _batch_dim(path) -> int | None:
    """The input's fixed batch size, None when the batch dimension is symbolic."""
    from lcsnet_seg.model_info import load_onnx

    dims = list(load_onnx(path).graph.input[0].type.tensor_type.shape.dim)
    return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None


def _parity_sets(options: ConvertOptions, info: ModelInfo, dynamic: bool) -> list[tuple[str, list]]:
    """(label, batches) per size compared: the input size, and for a dynamic-H/W model a second one. With a
    max batch N > 1, each set holds at least N different images (more scenes; a folder's images also mirrored),
    which parity stacks into batches of N."""
    from lcsnet_seg.convert.parity import folder_batches, scene_batches

    if options.parity_images <= 0:
        return []
    count = max(options.parity_images, info.max_batch if info.max_batch > 1 else 0)
    h, w = info.input_size
    sizes = [(h, w)]
    if dynamic:  # a second size, three quarters of the first, kept a multiple of 32 for strided encoders
        sizes.append((max(32, h * 3 // 4 // 32 * 32), max(32, w * 3 // 4 // 32 * 32)))
    sets = []
    for size in sizes:
        sized = info.with_overrides(ModelOverrides(input_size=size))
        batches = (
            _mirrored(list(folder_batches(options.parity_folder, sized, count)), count)
            if options.parity_folder
            else list(scene_batches(count, *size, sized))
        )
        sets.append((f" at {size[0]}x{size[1]}" if dynamic else "", batches))
    return sets


def _mirrored(batches: list, count: int) -> list:
    """``batches`` filled up to ``count`` with mirror images of them (left-right, up-down, both), then copies
    shifted sideways: a batch of N different images from a folder of fewer."""
    import numpy as np

    flips = (lambda b: b[..., ::-1], lambda b: b[..., ::-1, :], lambda b: b[..., ::-1, ::-1])
    made, k = list(batches), 0
    while batches and len(made) < count:
        base, step = batches[k % len(batches)], k // len(batches)
        variant = flips[step](base) if step < len(flips) else np.roll(base, (step - 2) * base.shape[-1] // 7, -1)
        made.append(np.ascontiguousarray(variant))
        k += 1
    return made


def _check_agreement(
    label: str, reference, candidate_path, sets, minimum_percent: float, below: str, batch: int = 1
) -> str | None:
    """Parity of the candidate against ``reference`` on every set, and on batches of ``batch`` images when above 1;
    None when it holds, else why not in one line (``below``: for an argmax agreement below the minimum)."""
    from lcsnet_seg.convert.parity import compare, compare_batched

    why = None
    candidate = _onnx_runner(candidate_path)
    for suffix, batches in sets:
        try:
            if batch > 1:
                result, batched = compare_batched(label + suffix, reference, candidate, batches, batch)
            else:
                result, batched = compare(label + suffix, reference, candidate, batches), None
        except Exception as exc:  # noqa: BLE001 - the runtime's own error types (ONNX Runtime: Fail, InvalidArgument)
            from lcsnet_seg.convert.parity import error_line

            name = Path(candidate_path).name.removesuffix(".partial")
            hint = (
                ": it claims a dynamic batch but fixes it inside (a reshape to the batch the export traced?); fix "
                "the model, or convert with --max-batch 1"
                if batch > 1
                else ""
            )
            return f"{label + suffix}: {name} does not run on one image ({error_line(exc)}){hint}"
        passed = 100 * result.argmax_agreement >= minimum_percent
        _say(result.line() + ("" if passed else f"  BELOW {minimum_percent:.2f} %"))
        if not passed:
            why = why or below
        if batched is not None:
            problem = batched.problem(minimum_percent)
            _say(batched.line() + ("" if problem is None else "  FAILED"))
            why = why or problem
    return why


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
            dynamic_batch=info.max_batch > 1,
        )
        batch = f"batch 1..{info.max_batch}" if info.max_batch > 1 else "batch 1"
        _say(
            f"exported {onnx_path.name} (opset {options.opset}, {'dynamic' if options.dynamic_hw else 'static'} H x W, "
            f"{batch}, {time.perf_counter() - t:.1f} s)"
        )
        current = partial(onnx_path)
    else:
        info, current = model_from_onnx(options, src, onnx_path, say=_say)
        if "onnx" in stages:
            _say(f"input is ONNX: starting from {current}")
    stages = [s for s in stages if s != "onnx"]
    fixed_batch = _batch_dim(current)
    if info.max_batch > 1 and fixed_batch is not None:
        raise ModelFileError(
            f"{current.name} has a fixed batch of {fixed_batch}, so it cannot take batches of {info.max_batch} "
            f"(--max-batch, or its metadata): export it again with a dynamic batch dimension (`convert WEIGHTS.pth "
            f"--max-batch {info.max_batch}`), or convert with --max-batch 1"
        )
    # an ONNX input given another --max-batch: the files this run writes record it (the input is never modified)
    record = src.suffix == ".onnx" and read_onnx_model_info(current).max_batch != info.max_batch
    sets = _parity_sets(options, info, options.dynamic_hw or _is_dynamic(current))
    batch = info.max_batch

    if reference is not None:
        why = _check_agreement(
            "pytorch vs onnx", reference, current, sets, options.min_agreement, "parity below --min-agreement", batch
        )
        if sets and why:
            _rejected(onnx_path, why)
            return EXIT_PARITY
        os.replace(current, onnx_path)
        _say(f"wrote {onnx_path}")
        current = onnx_path

    if "simplify" in stages:
        from lcsnet_seg.convert.simplify import simplify_onnx

        sim_path = outputs.path("simplify")
        before, after = simplify_onnx(current, partial(sim_path))
        if record:
            _record_info(partial(sim_path), info)
        ref = reference or _onnx_runner(current)
        label = f"{'pytorch' if reference else 'onnx'} vs simplified onnx"
        why = _check_agreement(
            label, ref, partial(sim_path), sets, options.min_agreement, "parity below --min-agreement", batch
        )
        if sets and why:
            _rejected(sim_path, why)
            return EXIT_PARITY
        os.replace(partial(sim_path), sim_path)
        _say(f"wrote {sim_path} ({before} -> {after} nodes)")
        current = sim_path

    precision = options.precision or "fp16"
    if "quantize" in stages and precision != "fp32":
        quantized = _quantize(options, precision, info, current, outputs.path("quantize"), sets, record)
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
            max_batch=batch,
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


def _quantize(
    options: ConvertOptions, precision: str, info: ModelInfo, current: Path, dst: Path, sets, record: bool
) -> Path | None:
    """The quantize stage: NAME.fp16.onnx or NAME.int8.onnx, kept only if it holds its accuracy bar (and, with a
    max batch above 1, gives each image the same result in a batch as alone). ``record``: write ``info`` into it."""
    from lcsnet_seg.convert import quantize

    fp32 = _onnx_runner(current)
    t = time.perf_counter()
    if precision == "fp16":
        quantize.to_fp16(current, partial(dst))
        quantize.check_quantized(partial(dst), "fp16")
        if record:
            _record_info(partial(dst), info)
        _say(f"converted to fp16 ({time.perf_counter() - t:.1f} s)")
        why = _check_agreement(
            "fp32 vs fp16 onnx",
            fp32,
            partial(dst),
            sets,
            options.min_agreement_fp16,
            "fp16 parity below --min-agreement-fp16",
            info.max_batch,
        )
        if sets and why:
            _rejected(dst, why)
            return None
    else:
        _, used = quantize.to_int8(current, partial(dst), calibration_batches(options, info), options.calib_method)
        quantize.check_quantized(partial(dst), "int8")
        if record:
            _record_info(partial(dst), info)
        _say(f"quantised to int8 (Q/DQ, symmetric) on {used} calibration images ({time.perf_counter() - t:.1f} s)")
        if options.parity_images > 0:
            from lcsnet_seg.convert.parity import miou_drop

            result = miou_drop("fp32 vs int8 onnx", fp32, _onnx_runner(partial(dst)), options.parity_images, info)
            ok = result.drop <= options.max_miou_drop
            _say(result.line() + ("" if ok else f"  ABOVE {options.max_miou_drop:.4f}"))
            if not ok:
                _rejected(dst, "int8 mIoU drop above --max-miou-drop")
                return None
        if sets and info.max_batch > 1:  # its accuracy is judged by the mIoU above; here only batch independence
            problem = _int8_batch_problem(fp32, partial(dst), sets[0][1], info.max_batch, options.min_agreement)
            if problem:
                _rejected(dst, problem)
                return None
    os.replace(partial(dst), dst)
    _say(f"wrote {dst}")
    return dst


def _int8_batch_problem(fp32, path: Path, batches: list, batch: int, minimum_percent: float) -> str | None:
    from lcsnet_seg.convert.parity import compare_batched

    _, batched = compare_batched("fp32 vs int8 onnx", fp32, _onnx_runner(path), batches, batch)
    problem = batched.problem(minimum_percent, judge_reference=False)
    _say(batched.line() + ("" if problem is None else "  FAILED"))
    return problem


def _record_info(path: Path, info: ModelInfo) -> None:
    """Write ``info`` into the ONNX at ``path`` (an ONNX input converted with another --max-batch)."""
    import onnx

    from lcsnet_seg.model_info import load_onnx, set_onnx_model_info

    proto = load_onnx(path, weights=True)
    set_onnx_model_info(proto, info)
    onnx.save(proto, str(path))


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
