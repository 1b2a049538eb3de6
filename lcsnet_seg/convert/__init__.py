"""Offline conversion: .pth -> ONNX -> simplified ONNX -> TensorRT engine, with parity checks."""
