"""Export: ONNX graphs (float, weight-free, QDQ) and model bundles with packed weights."""
