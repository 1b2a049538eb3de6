"""convert: .pth -> ONNX -> simplified ONNX -> fp16/int8 ONNX -> TensorRT engine, with parity after each stage.

    ros2 run lcsnet_seg convert weights.pth --out-dir models/                   # fp16
    ros2 run lcsnet_seg convert weights.pth --out-dir models/ --precision int8 --calib-bag run1/
    ros2 run lcsnet_seg convert models/lcsnet.fp16.onnx --stages engine
    ros2 run lcsnet_seg convert weights.pth --out-dir models/ --stages compile    # torch_cuda, on the robot's GPU

Exit codes: 0 done (without --stages, also when TensorRT is not here: the engine stage is then skipped with
a note, the ONNX files being the result); 1 bad input or a failed stage; 2 bad arguments; 3 parity below the
threshold; 4 TensorRT (or a GPU) not found for a stage that --stages asked for by name (engine, compile).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcsnet_seg.errors import BackendUnavailable, LcsnetError
from lcsnet_seg.tools.convert_options import ConvertOptions

# all five re-exported: tests and scripts import them from lcsnet_seg.tools.convert
from lcsnet_seg.tools.exit_codes import EXIT_ERROR, EXIT_NO_TENSORRT, EXIT_OK, EXIT_PARITY, EXIT_USAGE  # noqa: F401

STAGES = ("onnx", "simplify", "quantize", "engine")
# What --dynamic-batch alone (its meaning before --max-batch existed: a dynamic batch, no bound) now records.
DYNAMIC_BATCH_DEFAULT = 8
# Not in the default chain: prepares the torch_cuda backend's compiled model for the GPU this runs on.
GPU_STAGES = ("compile",)


def _hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        return h, w
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HEIGHTxWIDTH, e.g. 384x512") from None


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (a percentage, e.g. 99.9)") from None
    if not 1.0 < value <= 100.0:
        hint = f"; did you mean {100 * value:g}?" if 0.0 < value <= 1.0 else ""
        raise argparse.ArgumentTypeError(f"{text} is not a percentage in (1, 100]{hint}")
    return value


def _max_batch(text: str) -> int:
    from lcsnet_seg.model_info import MAX_BATCH_LIMIT

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of images, e.g. 4") from None
    if not 1 <= value <= MAX_BATCH_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is not a batch size in 1..{MAX_BATCH_LIMIT}")
    return value


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="convert", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("model", help="weights .pth (state_dict or a checkpoint holding one), or an .onnx to start from")
    ap.add_argument(
        "--out-dir",
        required=True,
        type=Path,
        help="folder for NAME.onnx, NAME.sim.onnx, NAME.fp16.onnx or NAME.int8.onnx, NAME.engine",
    )
    ap.add_argument("--name", help="output base name (default: the input file's stem)")
    ap.add_argument(
        "--stages",
        default=None,
        help="comma-separated subset of onnx,simplify,quantize,engine (default: those four, the engine only "
        "where TensorRT is installed), or compile: prepare torch.compile's cache for backend torch_cuda on this "
        "GPU (a .pth input)",
    )
    g = ap.add_argument_group("model")
    g.add_argument(
        "--arch",
        default=None,
        help="'lcsnet' (built in) or package.module:function (default: from the checkpoint, else lcsnet)",
    )
    g.add_argument("--num-classes", type=int, help="default: the checkpoint's, else the class file's count")
    g.add_argument("--classes", type=Path, help="classes YAML (default: the checkpoint's, else config/classes.yaml)")
    g.add_argument(
        "--input-size", type=_hw, help="network input HEIGHTxWIDTH (default: the checkpoint's, else 384x512)"
    )
    g.add_argument(
        "--mean",
        type=float,
        nargs=3,
        help="per-channel mean of pixel/255, in the colour order (default: the checkpoint's, else ImageNet's)",
    )
    g.add_argument(
        "--std", type=float, nargs=3, help="per-channel std of pixel/255 (default: the checkpoint's, else ImageNet's)"
    )
    # --colour-order: the option's former spelling, still accepted
    g.add_argument(
        "--color-order",
        "--colour-order",
        dest="color_order",
        choices=("rgb", "bgr"),
        default=None,
        help="channel order the network was trained on (default: the checkpoint's, else rgb; --colour-order: "
        "the former spelling)",
    )
    g.add_argument("--model-version", default=None, help="version string written into the metadata")
    g.add_argument(
        "--output-key",
        help="which output holds the logits when the model returns a dict or tuple "
        "(default: 'out' or 'logits', else the only tensor), or which output of "
        "an ONNX with several",
    )
    g = ap.add_argument_group("ONNX export")
    g.add_argument("--opset", type=int, default=17)
    g.add_argument("--dynamic-hw", action="store_true", help="export with dynamic height and width")
    g.add_argument(
        "--max-batch",
        type=_max_batch,
        default=None,
        metavar="N",
        help="most images one inference takes, e.g. one per camera (default 1; an ONNX input: what its metadata "
        "records). N > 1: the ONNX gets a dynamic batch dimension, parity is also checked on batches of N, the "
        "metadata records max_batch N and the engine's optimisation profile covers batch 1..N",
    )
    g.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="the former way to ask for a dynamic batch dimension, still accepted: the same as "
        f"--max-batch {DYNAMIC_BATCH_DEFAULT} unless --max-batch is given",
    )
    g = ap.add_argument_group("parity")
    g.add_argument("--parity-images", type=int, default=8, help="images compared after each stage (0: skip)")
    g.add_argument("--parity-folder", type=Path, help="compare on these images instead of generated scenes")
    g.add_argument(
        "--min-agreement",
        type=_percent,
        default=99.9,
        metavar="PERCENT",
        help="minimum argmax agreement, in percent, after export and simplify (default 99.9)",
    )
    g.add_argument(
        "--min-agreement-fp16",
        type=_percent,
        default=99.5,
        metavar="PERCENT",
        help="minimum argmax agreement, in percent, of the fp16 ONNX against fp32 (default 99.5)",
    )
    g.add_argument(
        "--max-miou-drop",
        type=float,
        default=0.02,
        help="largest mIoU drop of the int8 ONNX against fp32 on held-out generated scenes (default 0.02)",
    )
    g = ap.add_argument_group("precision (quantize stage) and int8 calibration")
    g.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        default=None,
        help="precision written into the ONNX the engine is built from (default fp16; an engine-only "
        "run builds what its ONNX holds)",
    )
    g.add_argument("--workspace-mb", type=int, default=1024)
    g.add_argument("--timing-cache", type=Path, help="timing cache file, read and updated")
    g.add_argument("--calib-folder", type=Path, help="int8: folder of calibration images")
    g.add_argument("--calib-bag", type=Path, help="int8: rosbag2 recording with calibration images")
    g.add_argument("--calib-topic", default="/camera/image_raw", help="int8: image topic in --calib-bag")
    g.add_argument("--calib-images", type=int, default=200, help="int8: how many calibration images")
    g.add_argument(
        "--calib-method",
        choices=("minmax", "percentile"),
        default="minmax",
        help="int8: activation range from the min/max or the 99.999th percentile",
    )
    g = ap.add_argument_group("TensorRT engine")
    g.add_argument("--device", type=int, default=0, help="CUDA device to build on (the engine runs on that GPU model)")
    g.add_argument(
        "--allow-tf32",
        action="store_true",
        help="let fp32 layers run in TF32 (TensorRT's default, cleared here: an fp32 engine then computes in fp32)",
    )
    g.add_argument(
        "--version-compatible",
        action="store_true",
        help="an engine that newer TensorRT runtimes of the same major version (the lean runtime too) can run",
    )
    g.add_argument(
        "--min-precision-share",
        type=_percent,
        default=90.0,
        metavar="PERCENT",
        help="fp16/int8 engines: at least this share of the convolutions must run in that precision (default 90)",
    )
    g = ap.add_argument_group("compile stage (backend torch_cuda)")
    g.add_argument(
        "--compile-dir",
        type=Path,
        help="where the compiled model's cache goes (default: "
        "OUT_DIR/NAME.compiled); give it to the node as compile_dir",
    )
    g.add_argument("--min-shape", type=_hw)
    g.add_argument("--opt-shape", type=_hw)
    g.add_argument("--max-shape", type=_hw)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    # Named engine stage: no TensorRT is a failure (exit 4). Default chain: the engine is built where TensorRT is.
    named = args.stages is not None
    stages = tuple(s.strip() for s in (args.stages or ",".join(STAGES)).split(",") if s.strip())
    bad = [s for s in stages if s not in STAGES + GPU_STAGES]
    if bad or not stages:
        print(f"convert: --stages {args.stages!r}: choose from {','.join(STAGES + GPU_STAGES)}", file=sys.stderr)
        return EXIT_USAGE
    if args.dynamic_batch and args.max_batch == 1:
        print("convert: --dynamic-batch asks for batches, --max-batch 1 for one image: give one", file=sys.stderr)
        return EXIT_USAGE
    if args.dynamic_batch and args.max_batch is None:
        args.max_batch = DYNAMIC_BATCH_DEFAULT
    options = ConvertOptions.from_arguments(args, stages, engine_required=named)
    if "compile" in stages and Path(args.model).suffix != ".pth":
        print(
            f"convert: --stages compile prepares LCSNet weights (.pth) for backend torch_cuda, got {args.model}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.precision == "int8" and "quantize" in stages and not (args.calib_folder or args.calib_bag):
        print(
            "convert: --precision int8 needs calibration images: give --calib-folder DIR or --calib-bag BAG",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        from lcsnet_seg.tools.convert_stages import run_stages

        chain = [s for s in stages if s in STAGES]
        code = run_stages(options, chain) if chain else EXIT_OK
        return prepare_compiled(options) if "compile" in stages and code == EXIT_OK else code
    except BackendUnavailable as exc:
        print(f"convert: {exc}", file=sys.stderr)
        return EXIT_NO_TENSORRT
    except LcsnetError as exc:
        print(f"convert: {exc}", file=sys.stderr)
        return EXIT_ERROR


def prepare_compiled(options: ConvertOptions) -> int:
    """The compile stage: torch.compile's on-disk cache and its marker, for this GPU, torch and weights."""
    from lcsnet_seg.backends.torch_compile import batch_buckets, prepare_compiled_model

    name = options.name or Path(options.model).stem
    cache_dir = options.compile_dir or options.out_dir / f"{name}.compiled"
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"[convert] compile: torch.compile (inductor) for cuda:{options.device}, cache in {cache_dir} "
        f"(about 25 s the first time, for each batch size of {batch_buckets(options.max_batch or 1)})",
        flush=True,
    )
    marker = prepare_compiled_model(options.model, cache_dir, device=options.device, max_batch=options.max_batch or 1)
    print(
        f"[convert] compile: done in {marker['compile_seconds']} s for {marker.get('gpu', 'this GPU')}; start the "
        f"node with -p backend:=torch_cuda -p model_path:={options.model} -p compile_dir:={cache_dir}",
        flush=True,
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
