"""Train LCSNet on generated indoor scenes (the demo weights were made with this script).

    python -m lcsnet_seg.tools.train --minutes 6 --out lcsnet_demo.pth

Runs on CUDA when available (bf16 autocast, channels-last), else on the CPU. The learning rate
follows a warm-up and cosine schedule over the wall-clock budget, so a run of any length ends
annealed. Scenes come from seeds 0..; held-out evaluation uses seeds from HELD_OUT_SEED up.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from lcsnet_seg.classes import IGNORE_LABEL, load_class_set
from lcsnet_seg.eval.metrics import ConfusionMatrix
from lcsnet_seg.model.lcsnet import LCSNet
from lcsnet_seg.model.scene import generate_scene
from lcsnet_seg.model_info import IMAGENET_MEAN, IMAGENET_STD

HELD_OUT_SEED = 1_000_000_000


class SceneDataset(Dataset):
    """Item i: (normalised CHW float32 image, H x W int64 labels) of the scene with seed first_seed + i."""

    def __init__(self, first_seed: int, length: int, height: int, width: int, flip: bool = False) -> None:
        self.first_seed, self.length, self.height, self.width, self.flip = first_seed, length, height, width, flip
        self.mean = np.asarray(IMAGENET_MEAN, np.float32) * 255
        self.inv_std = 1 / (np.asarray(IMAGENET_STD, np.float32) * 255)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        seed = self.first_seed + index
        image, labels = generate_scene(seed, self.height, self.width)
        if self.flip and seed % 2:
            image, labels = image[:, ::-1], labels[:, ::-1]
        x = ((image.astype(np.float32) - self.mean) * self.inv_std).transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels.astype(np.int64))


def evaluate(
    model: torch.nn.Module,
    device: torch.device,
    num_classes: int,
    scenes: int,
    height: int,
    width: int,
    first_seed: int = HELD_OUT_SEED,
    workers: int = 0,
) -> ConfusionMatrix:
    cm = ConfusionMatrix(num_classes)
    loader = DataLoader(SceneDataset(first_seed, scenes, height, width), batch_size=16, num_workers=workers)
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            pred = model(x.to(device)).argmax(1).cpu().numpy()
            cm.update(y.numpy(), pred)
    return cm


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="checkpoint path to write (.pth)")
    ap.add_argument("--minutes", type=float, default=6.0, help="wall-clock training budget")
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--eval-scenes", type=int, default=128)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: time only)")
    args = ap.parse_args(argv)

    classes = load_class_set()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = LCSNet(num_classes=len(classes)).to(device)
    # torch's stubs leave memory_format out of Module.to's overloads; Module.to accepts it
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    data = SceneDataset(0, 10**8, args.height, args.width, flip=True)
    loader = DataLoader(
        data,
        batch_size=args.batch,
        shuffle=False,
        num_workers=args.workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
        prefetch_factor=4 if args.workers else None,
    )
    counts = torch.ones(len(classes), device=device)
    budget = args.minutes * 60
    start = time.time()
    step, wait = 0, 0.0
    t_fetch = time.time()
    for x, y in loader:
        wait += time.time() - t_fetch
        frac = min(1.0, (time.time() - start) / budget)
        warm = min(1.0, (step + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = args.lr * warm * 0.5 * (1 + math.cos(math.pi * frac))
        x = x.to(device, non_blocking=True).to(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        # Class weights ~ 1/sqrt(frequency) from running pixel counts: small classes still matter.
        counts += torch.bincount(y[y != IGNORE_LABEL].flatten(), minlength=len(classes))[: len(classes)]
        weight = (counts.sum() / counts).sqrt()
        weight = weight / weight.mean()
        model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, weight=weight, ignore_index=IGNORE_LABEL)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0 or step == 1:
            el = time.time() - start
            print(
                f"step {step:6d}  loss {loss.item():.4f}  lr {opt.param_groups[0]['lr']:.2e}  "
                f"{step * args.batch / el:6.1f} img/s  data-wait {100 * wait / el:4.1f}%  {el:6.0f}s",
                flush=True,
            )
        if frac >= 1.0 or (args.max_steps and step >= args.max_steps):
            break
        t_fetch = time.time()
    train_seconds = time.time() - start

    model = model.float().to(memory_format=torch.contiguous_format)
    scores = evaluate(
        model, device, len(classes), args.eval_scenes, args.height, args.width, workers=args.workers
    ).scores()
    print(f"held-out mIoU {scores.miou:.4f}  pixel accuracy {scores.pixel_accuracy:.4f}")
    for name, iou in zip(classes.names, scores.per_class_iou):
        print(f"  {name:18s} {iou:.4f}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(
        {
            "state_dict": state,
            "arch": "lcsnet",
            "num_classes": len(classes),
            # the model's own facts (docs/MODELS.md, "What a checkpoint may carry"): read back by the node and convert
            "input_size": [args.height, args.width],
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "color_order": "rgb",
            "classes": classes.to_records(),
            "train": {
                "steps": step,
                "batch": args.batch,
                "seconds": round(train_seconds, 1),
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                "held_out_miou": round(scores.miou, 4),
                "held_out_scenes": args.eval_scenes,
            },
        },
        args.out,
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
