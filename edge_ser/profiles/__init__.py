"""Device profiles for roofline reports: load one by name ("pi4", "orin-nano-8gb-super"), by path, or "host".

A profile is one YAML file in `firmware_profiles/` (schema in `firmware_profiles/README.md`), checked field by
field by `edge_ser.profiles.profile` (the dataclasses, the validation and the roofline math); "host" is measured
on this machine by `edge_ser.hostbench`. pyyaml is imported only when a YAML file is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edge_ser.errors import MissingDependencyError
from edge_ser.fileio import read_regular_file
from edge_ser.profiles.profile import (
    HOST,
    PRECISIONS,
    SCHEMA_VERSION,
    UNITS,
    Cache,
    Cpu,
    Figure,
    Gpu,
    Memory,
    Peak,
    PowerMode,
    Profile,
    ProfileError,
    Roofline,
    RooflineChoice,
    ridge_point,
    roofline_bound,
)

MAX_PROFILE_BYTES = 1 << 20
"""A profile is a few KB of YAML; a bigger file is refused before it is read."""


def profile_dirs() -> list[Path]:
    """Folders searched for `<name>.yaml`: each entry of $EDGE_SER_PROFILES (os.pathsep-separated), then the
    profiles an installed wheel carries (`edge_ser/profiles/firmware/`, copied in by scripts/wheelhouse.py),
    then the repository's `firmware_profiles/` (a checkout)."""
    dirs = [Path(p) for p in os.environ.get("EDGE_SER_PROFILES", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    dirs += [d for d in (here / "firmware", here.parents[1] / "firmware_profiles") if d.is_dir()]
    # a checkout's edge_ser/profiles/firmware links to firmware_profiles/ (so `pip install .` carries them): once
    out: list[Path] = []
    for d in dirs:
        if all(d.resolve() != o.resolve() for o in out):
            out.append(d)
    return out


def available_profiles() -> list[str]:
    """Names `load_profile` accepts: every `*.yaml` in `profile_dirs()`, plus "host" (measured on the spot)."""
    names = {p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names - {HOST}) + [HOST]  # "host" is always the measurement, never a file


def load_profile(name_or_path: str | os.PathLike[str]) -> Profile:
    """Load and validate a profile by name ("pi4", "orin-nano-8gb-super", "host") or by path to a YAML file.

    "host" measures this machine with `edge_ser.hostbench` (or reuses its cached measurement).
    Raises `ProfileError` for an unknown name, an unreadable file or an invalid profile.
    """
    text = os.fspath(name_or_path)
    if text == HOST:
        from edge_ser.hostbench import host_profile

        return host_profile()
    path = Path(text)
    looks_like_path = path.suffix in (".yaml", ".yml") or os.sep in text or (os.altsep or os.sep) in text
    if not looks_like_path:
        for d in profile_dirs():
            candidate = d / f"{text}.yaml"
            if candidate.is_file():
                path = candidate
                break
        else:
            raise ProfileError(
                f"{text}: no such profile (available: {', '.join(available_profiles())}); "
                "or pass the path to a .yaml file"
            )
    return _load_file(path)


def _load_file(path: Path) -> Profile:
    label = path.name
    if not path.exists():
        # `--profile pi4.yaml` from another folder: the shipped profile of that name is one word away
        shipped = (
            path.stem if path.name == f"{path.stem}.yaml" and path.stem in available_profiles() else None
        )
        raise ProfileError(
            f"{path}: profile file not found"
            + (
                f" (the shipped profile of that name is --profile {shipped})"
                if shipped and shipped != HOST
                else ""
            )
            + f"; shipped profiles: {', '.join(available_profiles())}"
        )
    data = read_regular_file(path, limit=MAX_PROFILE_BYTES, error=ProfileError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProfileError(f"{path}: cannot read profile: {e}") from e
    data = _parse_yaml(text, label)
    return Profile.from_dict(data, origin=str(path), expect_name=path.stem)


def _parse_yaml(text: str, label: str) -> Any:
    try:
        import yaml
    except ImportError as e:
        raise MissingDependencyError("pyyaml", "device", "reading firmware profiles") from e

    class _StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses a key given twice in one mapping (PyYAML silently keeps the last)."""

    def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                line = key_node.start_mark.line + 1
                raise ProfileError(f"{label}: line {line}: key {key!r} given twice in the same mapping")
            out[key] = loader.construct_object(value_node, deep=True)
        return out

    _StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" line {mark.line + 1}, column {mark.column + 1}:"
        raise ProfileError(f"{label}:{where} not valid YAML: {getattr(e, 'problem', None) or e}") from e
    return data


__all__ = [
    "HOST",
    "MAX_PROFILE_BYTES",
    "PRECISIONS",
    "SCHEMA_VERSION",
    "UNITS",
    "Cache",
    "Cpu",
    "Figure",
    "Gpu",
    "Memory",
    "Peak",
    "PowerMode",
    "Profile",
    "ProfileError",
    "Roofline",
    "RooflineChoice",
    "available_profiles",
    "load_profile",
    "profile_dirs",
    "ridge_point",
    "roofline_bound",
]
