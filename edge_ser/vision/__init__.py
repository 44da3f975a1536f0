"""Vision input for edge-ser: the one face crop the live runtime and training share.

Only numpy is imported here; opencv is imported lazily when a `FaceCropper` is built.
"""

from __future__ import annotations

from edge_ser.vision.face import FaceCrop, FaceCropper, FaceCropSpec, center_box, to_grey

__all__ = ["FaceCrop", "FaceCropSpec", "FaceCropper", "center_box", "to_grey"]
