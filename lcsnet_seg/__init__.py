"""lcsnet_seg: real-time indoor semantic segmentation for ROS 2 robots.

Importing the package pulls in numpy only. torch, tensorrt and cuda are imported lazily by the
modules that need them, so the ONNX Runtime CPU path runs without any of them.
"""

__version__ = "0.1.0"
