"""Scoring feature vectors with ONNX models through onnxruntime."""
