"""LCSNet (PyTorch), the demo scene generator and training. Importing a submodule may import torch."""
