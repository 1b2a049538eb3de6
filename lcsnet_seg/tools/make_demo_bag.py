"""make_demo_bag: write a rosbag2 recording of generated indoor scenes with ground-truth labels.

    ros2 run lcsnet_seg make_demo_bag out/demo_bag --frames 60 --storage mcap

Topics: /camera/image_raw (sensor_msgs/Image rgb8), /camera/labels (mono8 class ids, same header
stamp as its image) and, with --compressed, /camera/image_raw/compressed (JPEG). Frames are 0.1 s
apart (10 Hz) from --start-time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

IMAGE_TOPIC = "/camera/image_raw"
LABEL_TOPIC = "/camera/labels"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
FIRST_SEED = 3_500_000_000  # outside the training range


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="make_demo_bag", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="output bag folder (must not exist)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--rate", type=float, default=10.0, help="frames per second of the recording")
    ap.add_argument("--compressed", action="store_true", help="also write JPEG frames on " + COMPRESSED_TOPIC)
    ap.add_argument("--seed", type=int, default=FIRST_SEED)
    ap.add_argument("--start-time", type=float, default=1_700_000_000.0, help="first stamp, seconds")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    import cv2
    from tqdm import tqdm

    from lcsnet_seg.errors import LcsnetError
    from lcsnet_seg.eval.bag_io import COMPRESSED, BagWriter, typestore
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.tools.exit_codes import EXIT_ERROR, EXIT_OK, EXIT_USAGE

    if args.frames < 1 or args.rate <= 0:
        print("make_demo_bag: --frames must be at least 1 and --rate positive", file=sys.stderr)
        return EXIT_USAGE
    try:
        writer = BagWriter(args.out, args.storage, choose_another="give another OUT path")
    except LcsnetError as exc:
        print(f"make_demo_bag: {exc}", file=sys.stderr)
        return EXIT_ERROR
    store = typestore()
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    Compressed = store.types[COMPRESSED]
    try:
        for i in tqdm(range(args.frames), desc="writing scenes", unit="frame"):
            image, labels = generate_scene(args.seed + i, args.height, args.width)
            t_ns = int(round(args.start_time * 1e9)) + int(round(i * 1e9 / args.rate))
            header = Header(
                stamp=Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000), frame_id="camera_optical"
            )
            writer.write_image(IMAGE_TOPIC, t_ns, header, image, "rgb8")
            writer.write_image(LABEL_TOPIC, t_ns, header, labels, "mono8")
            if args.compressed:
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                msg = Compressed(header=header, format="jpeg", data=np.frombuffer(jpeg.tobytes(), np.uint8))
                writer.write_raw(COMPRESSED_TOPIC, COMPRESSED, t_ns, store.serialize_cdr(msg, COMPRESSED))
    finally:
        writer.close()
    print(
        f"make_demo_bag: wrote {args.frames} frames ({args.width}x{args.height}, {args.storage}) to {args.out}: "
        f"{IMAGE_TOPIC}, {LABEL_TOPIC}" + (f", {COMPRESSED_TOPIC}" if args.compressed else "")
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
