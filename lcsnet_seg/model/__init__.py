"""LCSNet (PyTorch), the demo scene generator and training. Importing a submodule may import torch;
importing this package does not."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEMO_ONNX = WEIGHTS_DIR / "lcsnet_demo.onnx"
"""The packaged demo model (simplified ONNX with metadata): the default model of the node and tools."""
DEMO_PTH = WEIGHTS_DIR / "lcsnet_demo.pth"
