#!/usr/bin/env python3
"""Where a torch_cuda node's configure time goes, each figure from a fresh process (a robot's start).

    python3 bench/configure_time.py --compile-dir /tmp/m/lcsnet_demo.compiled [--runs 2] [--precompile]

The compile dir is prepared first (``convert --stages compile`` does the same) unless it already
holds a matching marker. Then, --runs times, a fresh process times the steps of the torch_cuda
backend's start one by one: import torch, CUDA start-up, reading the weights, preparing the module
(batch norm folded, fp16, channels_last), and compiling it from the prepared cache (Dynamo tracing,
then inductor's cached kernels: the first warm-up call); then another fresh process times the
whole factory as the node calls it (``build_segmenter``, including the Segmenter's buffers) and
one first frame (its CUDA graph capture). Target (issue 13): configure on a prepared machine <= 15 s.

--precompile also sets ``torch._dynamo.config.caching_precompile`` (experimental in PyTorch) in
the preparing and the timed processes, to see whether caching Dynamo's own output helps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "lcsnet_seg" / "model" / "weights" / "lcsnet_demo.pth"


def _precompile(on: bool) -> None:
    if on:
        import torch._dynamo.config as dynamo_config

        dynamo_config.caching_precompile = True


def child_steps(args) -> dict:
    """One fresh process: the backend's start, step by step."""
    times, t = {}, time.perf_counter()

    def mark(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        times[name] = round(now - t, 3)
        t = now

    import torch

    mark("import torch")
    _precompile(args.precompile)
    device = torch.device("cuda:0")
    torch.cuda.init()
    torch.empty(1, device=device)
    mark("CUDA start-up")
    from lcsnet_seg.backends import torch_compile as tc
    from lcsnet_seg.model.checkpoint import load_model

    model, meta, _ = load_model(args.model)
    mark("read weights")
    h, w = meta.get("input_size", (384, 512))
    shape = (1, 3, int(h), int(w))
    module = tc.prepare_module(model, device)
    mark("prepare module")
    forward, status, _ = tc.load_compiled(module, args.model, args.compile_dir, device, shape, "fp16", True)
    tc.warm_up(forward, shape, device, tc.PRECISIONS["fp16"])
    mark("compile from the prepared cache")
    return {"steps_s": times, "status": status}


def child_factory(args) -> dict:
    """One fresh process: the node's factory and a first frame, as configure and frame 1 see them."""
    t0 = time.perf_counter()
    _precompile(args.precompile)
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter

    segmenter, why = build_segmenter(
        str(args.model), SegmenterConfig(backend="torch_cuda", compile_dir=args.compile_dir)
    )
    configured = time.perf_counter() - t0
    image = generate_scene(1, 480, 640)[0]
    t1 = time.perf_counter()
    segmenter(image, "rgb8", outputs=("labels",))
    first = time.perf_counter() - t1
    segmenter.close()
    return {"configure_s": round(configured, 3), "first_frame_s": round(first, 3), "why": why}


def run_child(args, role: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--role",
        role,
        "--model",
        str(args.model),
        "--compile-dir",
        str(args.compile_dir),
    ] + (["--precompile"] if args.precompile else [])
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"configure_time: the {role} process failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(time.perf_counter() - t0, 3)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", choices=("main", "steps", "factory", "prepare"), default="main", help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--compile-dir", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--precompile", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    if args.role == "steps":
        print(json.dumps(child_steps(args)))
        return 0
    if args.role == "factory":
        print(json.dumps(child_factory(args)))
        return 0
    if args.role == "prepare":
        _precompile(args.precompile)
        from lcsnet_seg.backends.torch_compile import prepare_compiled_model

        print(json.dumps(prepare_compiled_model(args.model, args.compile_dir)))
        return 0

    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    prepared = run_child(args, "prepare")
    print(
        f"prepared {args.compile_dir}: compile {prepared['compile_seconds']} s "
        f"(process {prepared['process_wall_s']} s){' with caching_precompile' if args.precompile else ''}"
    )
    rows = []
    for i in range(args.runs):
        steps = run_child(args, "steps")
        factory = run_child(args, "factory")
        rows.append({"steps": steps, "factory": factory})
        print(
            f"run {i + 1}: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in steps["steps_s"].items())
            + f" ({steps['status']}); factory {factory['configure_s']:.2f} s, first frame "
            f"{factory['first_frame_s']:.2f} s, process {factory['process_wall_s']:.2f} s"
        )
    median = statistics.median(r["factory"]["configure_s"] for r in rows)
    print(f"median configure (factory) {median:.2f} s; target <= 15 s: {'met' if median <= 15 else 'missed'}")
    if args.json:
        args.json.write_text(
            json.dumps({"precompile": args.precompile, "prepared": prepared, "rows": rows}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
