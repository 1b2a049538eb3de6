"""A robot team's own models, as the tests bring them: tiny networks whose logits are 1/1, 1/4 or 1/8 of their
input (LCSNet-like, SegFormer-like, DDRNet-like), saved as checkpoints that carry their own facts (mean/std,
input size, classes and palette, colour order) the way docs/MODELS.md describes. Random weights, seeded.

Importable as ``user_models`` (the test folder is on the path): ``--arch user_models:strided_4`` builds one.
"""

from __future__ import annotations

from pathlib import Path

# a class set of the user's own: the default names, other colours (so a palette that travels can be told apart)
CLASS_RECORDS = [
    {"id": i, "name": name, "color": [(37 * i + 50) % 256, (91 * i + 20) % 256, (53 * i + 200) % 256]}
    for i, name in enumerate(
        ["wall", "floor", "whiteboard", "projection screen", "table", "chair", "computer", "other"]
    )
]
MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
INPUT_SIZE = [96, 128]


def _strided(num_classes: int, stride: int):
    import torch

    torch.manual_seed(stride)
    layers = [torch.nn.AvgPool2d(stride)] if stride > 1 else []
    layers += [torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, num_classes, 1)]
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():  # wider logits than the default init: clear argmax margins
        for p in model.parameters():
            p.mul_(3.0)
    return model


def strided_1(num_classes: int):
    return _strided(num_classes, 1)


def strided_4(num_classes: int):
    return _strided(num_classes, 4)


def strided_8(num_classes: int):
    return _strided(num_classes, 8)


def save_checkpoint(path: Path, stride: int, *, with_facts: bool = True) -> Path:
    """A checkpoint of strided_<stride> as a training script saves it: weights plus what the model expects."""
    import torch

    model = {1: strided_1, 4: strided_4, 8: strided_8}[stride](len(CLASS_RECORDS))
    checkpoint = {"state_dict": model.state_dict(), "arch": f"user_models:strided_{stride}", "num_classes": 8}
    if with_facts:
        checkpoint.update(
            input_size=INPUT_SIZE, mean=MEAN, std=STD, classes=CLASS_RECORDS, color_order="rgb", model_version="user-1"
        )
    torch.save(checkpoint, path)
    return path


def _batch_dependent(num_classes: int, kind: str):
    import torch

    class BatchDependent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(11)
            self.head = torch.nn.Conv2d(3, num_classes, 3, padding=1)
            with torch.no_grad():
                self.head.weight.mul_(3.0)

        def forward(self, x):
            if kind == "mixing":  # every image minus the batch's mean image
                x = x - x.mean(0, keepdim=True) + 0.1 * x
            y = self.head(x)
            if kind == "baked":  # a Python int: the trace records the batch it saw (2) as a constant
                n = int(y.shape[0])
                y = y.reshape(n, -1).reshape(n, num_classes, y.shape[2], y.shape[3])
            return y

    return BatchDependent()


def batch_mixing(num_classes: int):
    return _batch_dependent(num_classes, "mixing")


def batch_baked(num_classes: int):
    return _batch_dependent(num_classes, "baked")


def save_batch_dependent(path: Path, kind: str) -> Path:
    """A checkpoint of a model whose ONNX claims a dynamic batch but whose images are not independent in a batch:
    ``mixing`` (each image minus the batch mean) or ``baked`` (a reshape to the batch of 2 the export traces)."""
    import torch

    model = {"mixing": batch_mixing, "baked": batch_baked}[kind](len(CLASS_RECORDS))
    torch.save(
        {
            "state_dict": model.state_dict(),
            "arch": f"user_models:batch_{kind}",
            "num_classes": 8,
            "input_size": [64, 96],
        },
        path,
    )
    return path
