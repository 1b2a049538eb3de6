#!/usr/bin/env python3
"""Fleet evaluation benchmark: N generated bags scored by one process, then on Ray with 1, 2, ... workers.

    .venv/bin/python bench/fleet_eval.py                                  # CPU: 16 bags x 60 frames, 1 and 2 workers
    python3 bench/fleet_eval.py --backend torch_cuda --model lcsnet_seg/model/weights/lcsnet_demo.pth   # 1, 2, 4 workers

Each configuration scores the same bags (640x480 rgb8 with labels, made by make_demo_bag, kept
in --bag-dir between runs) with the same options and no output bags. The single-process run
builds the segmenter once and scores the bags one after another, as `evaluate` does for one bag;
the Ray runs are `evaluate`'s fleet path, timed from Ray's start to the written fleet report
(Ray start-up and every worker's model load included). ratio = median single-process wall / this
wall. On a shared machine use --repeat: every round runs every configuration, in a rotated order.
The fleet confusion matrix of every Ray run is checked against the sum of the single-process ones.
With a GPU backend, k workers on g GPUs run with --workers-per-gpu ceil(k / g) (they share the GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# Ray workers are started by this process's Ray instance and inherit its environment: the same package.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
IMAGE_TOPIC, LABEL_TOPIC = "/camera/image_raw", "/camera/labels"


def make_bags(bag_dir: Path, count: int, frames: int, jobs: int) -> list[Path]:
    """count bags of generated scenes (distinct seeds); bags already there with the right size are reused."""
    from lcsnet_seg.eval import bag_io

    bag_dir.mkdir(parents=True, exist_ok=True)
    bags = [bag_dir / f"room_{i:03d}" for i in range(count)]

    def ensure(k_bag):
        k, bag = k_bag
        if bag.exists():
            try:
                reader = bag_io.open_reader(bag)
                ok = bag_io.connection(reader, IMAGE_TOPIC, bag_io.IMAGE_TYPES, "image").msgcount == frames
                reader.close()
                if ok:
                    return
            except Exception:  # noqa: BLE001 - a broken leftover is remade
                pass
            shutil.rmtree(bag)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lcsnet_seg.tools.make_demo_bag",
                str(bag),
                "--frames",
                str(frames),
                "--seed",
                str(3_700_000_000 + 1000 * k),
            ],
            check=True,
            capture_output=True,
            cwd=REPO,
        )

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        list(pool.map(ensure, enumerate(bags)))
    return bags


def single_process(bags, model: Path, backend: str, options) -> tuple[float, np.ndarray, float]:
    from lcsnet_seg.eval.bag_eval import score_bag, segmenter_replay
    from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter

    t0 = time.perf_counter()
    segmenter, why = build_segmenter(model, SegmenterConfig(backend=backend))
    replay = segmenter_replay(segmenter, options, why, progress=lambda it, **_: it)
    matrix, latencies = None, []
    for bag in bags:
        scorer = score_bag(bag, options, None, replay).scorer
        matrix = scorer.cm.matrix.copy() if matrix is None else matrix + scorer.cm.matrix
        latencies += scorer.latencies_ms
    elapsed = time.perf_counter() - t0
    segmenter.close()  # frees the GPU (or CPU threads) before the Ray workers start
    return elapsed, matrix, float(np.mean(latencies))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bags", type=int, default=16)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument(
        "--workers",
        default=None,
        help="comma-separated Ray worker counts to time (default: 1,2 "
        "on the CPU; 1,2,4 with a GPU backend, sharing the GPUs)",
    )
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--model", type=Path, default=REPO / "lcsnet_seg" / "model" / "weights" / "lcsnet_demo.onnx")
    ap.add_argument("--bag-dir", type=Path, default=Path(tempfile.gettempdir()) / "lcsnet_fleet_bench_bags")
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds, each running every configuration (order rotated between rounds)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    from lcsnet_seg.eval.bag_eval import BagOptions
    from lcsnet_seg.eval.fleet_run import evaluate_fleet

    cores = os.cpu_count() or 1
    gpu = args.backend in ("torch_cuda", "tensorrt")
    gpus = 0
    if gpu:
        import torch

        gpus = max(1, torch.cuda.device_count())
    if args.workers is None:
        args.workers = "1,2,4" if gpu else "1,2"
    t0 = time.perf_counter()
    bags = make_bags(args.bag_dir, args.bags, args.frames, cores)
    print(
        f"{len(bags)} bags of {args.frames} frames in {args.bag_dir} ({time.perf_counter() - t0:.1f} s to make "
        "or check)",
        flush=True,
    )
    options = BagOptions(IMAGE_TOPIC, LABEL_TOPIC, write_output_bag=False)
    plan = ["single"] + [int(w) for w in args.workers.split(",")]
    rows, base_matrix = [], None
    for round_ in range(args.repeat):
        for config in plan[round_ % len(plan) :] + plan[: round_ % len(plan)]:  # rotate the order each round
            if config == "single":
                wall, matrix, frame_ms = single_process(bags, args.model, args.backend, options)
                base_matrix = matrix if base_matrix is None else base_matrix
                row = {
                    "run": "single process",
                    "workers": 1,
                    "wall_s": wall,
                    "frame_ms": frame_ms,
                    "matrix_equals_single_process": bool(np.array_equal(matrix, base_matrix)),
                }
            else:
                with tempfile.TemporaryDirectory() as out:
                    t = time.perf_counter()
                    doc = evaluate_fleet(
                        bags,
                        Path(out),
                        model=args.model,
                        backend=args.backend,
                        options=options,
                        workers=config,
                        num_cpus=cores,
                        workers_per_gpu=-(-config // gpus) if gpu else 1,
                    )
                    wall = time.perf_counter() - t
                row = {
                    "run": f"Ray, {config} worker{'s' if config > 1 else ''}",
                    "workers": config,
                    "wall_s": wall,
                    "ray_start_s": doc["run"]["ray_start_s"],
                    "bags_scored": doc["bags_scored"],
                    "frame_ms": doc["latency_ms"]["mean"],
                    "fleet_matrix": doc["confusion_matrix"],
                }
            row.update(round=round_ + 1, load_1min=os.getloadavg()[0])
            rows.append(row)
            print(f"round {round_ + 1}, {row['run']}: {wall:.1f} s", flush=True)
    singles = [r["wall_s"] for r in rows if r["run"] == "single process"]
    for row in rows:
        if "fleet_matrix" in row:
            row["matrix_equals_single_process"] = row.pop("fleet_matrix") == base_matrix.tolist()
        row["ratio"] = float(np.median(singles)) / row["wall_s"]
    for row in rows:
        row["bags_per_minute"] = 60 * len(bags) / row["wall_s"]
    print(
        f"\nmachine: {platform.machine()}, {cores} cores, Python {platform.python_version()}, backend "
        f"{args.backend}, model {args.model.name}, {len(bags)} bags x {args.frames} frames 640x480\n"
    )
    # load: the 1-minute load average as the run ended (above the core count: others were using the machine)
    # ratio: median single-process wall / this wall; ms/frame: segmenter time per frame (mean), which
    # grows when the workers compete for the cores
    print(
        "| round | run | wall s | bags/minute | single process / this | ms/frame | Ray start s | matrix = single | load |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['round']} | {r['run']} | {r['wall_s']:.1f} | {r['bags_per_minute']:.1f} | {r['ratio']:.2f} | "
            f"{r['frame_ms']:.1f} | {r.get('ray_start_s', 0):.1f} | {r['matrix_equals_single_process']} | "
            f"{r['load_1min']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.platform(), "cores": cores, "rows": rows}, indent=2))
    return 0 if all(r["matrix_equals_single_process"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
