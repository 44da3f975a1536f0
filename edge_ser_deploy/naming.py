"""The name of a deployed bundle on the device, `ROOT/versions/<label>-<sha12>`, written once.

`label` says which bundle it is wherever the name shows (`ls ROOT/versions`, the `current` link, a deploy's or
a fleet's report, a rollback message): the bundle's folder name (a `.tar`'s file name without its suffix), since
bundles of one model differ there only (bundles/ser_emodb and bundles/ser_ravdess are both `functionals_mlp`);
the model's name when the folder name says nothing ("bundle", as training writes `out/<run>/bundle`). `sha12`
is the first 12 hex digits of sha256(manifest.json), which pins every file: the same bundle always gets the same
name, so a second deploy finds it on the device and uploads nothing.

A name written by an older edge-ser (`<model>-<sha12>`, whatever the folder) stays valid on the device:
rollback, `previous` and pruning read the `current` link's target as it is and never recompute a name.

Standard library only and self-contained on purpose: `edge-ser firstboot` runs this very file on the device
(whose wheel carries no edge_ser_deploy), so `edge-ser deploy` and first boot name a bundle the same way. The
Ansible role (deploy/ansible/roles/edge_ser/tasks/rollout.yml) writes the same rule in Jinja;
tests/test_ansible.py checks that it agrees.
"""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import unquote, urlsplit

LABEL_MAX = 64
"""Characters of the label at most (edge-ser-activate accepts version names of up to 200)."""
GENERIC_NAMES = ("", "bundle")
"""Folder names that say nothing about the bundle: the model's name is used instead."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TAR_SUFFIX = re.compile(r"\.tar$", re.IGNORECASE)
"""A bundle file is a plain .tar (edge_ser.bundle refuses compressed ones)."""


def safe_component(text: str) -> str:
    """`text` as one path component edge-ser-activate accepts: each run of other characters becomes '_', no
    leading or trailing '.', '_' or '-' (so never '.', '..' or a hidden name), at most LABEL_MAX characters;
    "" when nothing is left."""
    return _UNSAFE.sub("_", text).strip("._-")[:LABEL_MAX].rstrip("._-")


def source_name(source: str | os.PathLike[str]) -> str:
    """The name a bundle was given by: the last component of a local path (made absolute first, so `.` is the
    folder's own name; a symbolic link is not followed) or of a URL's path (percent-decoded; no query)."""
    text = os.fspath(source)
    if "://" in text:
        return unquote(urlsplit(text).path.rstrip("/").rpartition("/")[2])
    return os.path.basename(os.path.abspath(text))


def version_label(source_name: str, model: str) -> str:
    """The readable half of a version name: the first of `source_name` (the bundle folder's or .tar's name, no
    directories; without its .tar suffix) and `model`, made safe, that is not generic; else "bundle"."""
    for name in (_TAR_SUFFIX.sub("", source_name), model):
        label = safe_component(name)
        if label.lower() not in GENERIC_NAMES:
            return label
    return "bundle"


def version_name(source_name: str, manifest: bytes, model: str) -> str:
    """`<label>-<sha12>`: the bundle's name under ROOT/versions on the device (`manifest`: the bytes of the
    manifest.json that is shipped, `model`: the manifest's model name)."""
    return f"{version_label(source_name, model)}-{hashlib.sha256(manifest).hexdigest()[:12]}"
