"""edge-ser host side: data sets, training, quantization and export (needs the `host` extra: torch, onnx)."""
