"""What `deploy` and `firstboot` can ship: one bundle's own files. A fusion bundle is a manifest that refers to
its branch bundles as folders beside (or inside) it, so it cannot go alone."""

from __future__ import annotations

from typing import Any

from edge_ser.errors import ConfigError


def refuse_fusion(bundle: Any, where: str) -> None:
    """ConfigError naming `where` when `bundle` (a loaded bundle) is a fusion bundle, with what to do instead."""
    from edge_ser.bundle.fusion import FusionBundle

    if not isinstance(bundle, FusionBundle):
        return
    paths = ", ".join(f"{b['name']} at {b['path']}" for b in bundle.manifest["fusion"]["branches"])
    raise ConfigError(
        f"{where}: {bundle.root.name} is a fusion bundle whose branches are other bundle folders ({paths}); this "
        "command ships one bundle's own files, so the device would get the rule without its models. Copy the "
        "folders side by side instead (e.g. `scp -r bundles/av_fusion bundles/av_fn_audio bundles/face_fer "
        "pi@HOST:bundles/`) and run the fusion folder there (deploy/README.md)"
    )


__all__ = ["refuse_fusion"]
