"""Model bundles, the unit of deployment: a directory (or a `.tar` of its files) with `manifest.json`,
`model.onnx`, `weights.esq` and optional TFLite variants.

    bundle = load_bundle("bundles/laq_mlp_emodb")      # read within limits, checked, verified
    bundle.input_kind, bundle.graph, bundle.labels      # what the model takes, its graph, its labels
    write_bundle(path, manifest=..., files=...)         # the host exporter's last step

The package: `read` (the bytes of a folder or tar: manifest first, bounded by `edge_ser.limits`), `load` (the
Bundle, verification), `manifest` (the schema and its check),
`onnx_reader` (the graph from model.onnx, numpy + stdlib only) and `write` (atomic writing). docs/bundle.md
is the format.
"""

from edge_ser.bundle.fusion import FusionBundle
from edge_ser.bundle.load import Bundle, load_bundle
from edge_ser.bundle.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    MANIFEST_SCHEMA_VERSION,
    MANIFEST_SUM_NAME,
    MODEL_NAME,
    REQUIRED_FILES,
    TFLITE_VARIANTS,
    WEIGHTS_NAME,
    normalized_input,
    validate_manifest,
)
from edge_ser.bundle.onnx_reader import read_onnx_graph
from edge_ser.bundle.read import manifest_sum_line
from edge_ser.bundle.write import write_bundle, write_fusion_bundle

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "MANIFEST_SCHEMA_VERSION",
    "MANIFEST_SUM_NAME",
    "MODEL_NAME",
    "REQUIRED_FILES",
    "TFLITE_VARIANTS",
    "WEIGHTS_NAME",
    "Bundle",
    "FusionBundle",
    "load_bundle",
    "manifest_sum_line",
    "normalized_input",
    "read_onnx_graph",
    "validate_manifest",
    "write_bundle",
    "write_fusion_bundle",
]
