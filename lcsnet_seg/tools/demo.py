"""demo: the segmentation node on a generated indoor camera stream (the README's main job).

    demo --model out/demo/model/lcsnet_demo.sim.onnx --out-dir out/demo --frames 48

Starts ``segmentation_node`` as its own process, sends it generated camera frames on /camera/image_raw
(ros/demo.py), and writes OUT/overlays/frame_NNN.png, OUT/node.log and OUT/summary.json + summary.md: mIoU
against the generator's ground truth, end-to-end latency, throughput and the node's own stage times
(eval/demo_report.py). Exit codes: 0 every frame answered, 1 the node did not come up or frames got no result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcsnet_seg.model import DEMO_ONNX
from lcsnet_seg.tools.exit_codes import EXIT_ERROR, EXIT_OK


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEMO_ONNX, help="model for the node (default: the packaged demo)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--out-dir", type=Path, default=Path("out/demo"))
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--save", type=int, default=8, help="how many overlay images to write")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the node to come up")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from lcsnet_seg.errors import LcsnetError
    from lcsnet_seg.eval.demo_report import demo_summary, write_demo_summary
    from lcsnet_seg.ros.demo import run_demo

    try:
        run = run_demo(args)
    except LcsnetError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return EXIT_ERROR
    write_demo_summary(args.out_dir, demo_summary(run))
    if not run.latencies_ms:
        print(f"demo: no results came back from the node; see {args.out_dir / 'node.log'}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK if run.lost == 0 else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
