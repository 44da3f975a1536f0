"""`edge-ser deploy` and `edge-ser firstboot`, registered into the one `edge-ser` command through the
entry-point group `edge_ser.commands` (pyproject.toml). Workstation tools: a device wheel does not carry them."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add `deploy` and `firstboot` to `edge-ser`."""
    p = sub.add_parser(
        "deploy",
        help="copy a bundle to a device over SSH, verify it there, switch to it, health-check, roll back",
        description="Verify the bundle here, copy it over SSH into ROOT/versions/<bundle>-<sha>, check every "
        "file's sha256 on the device, switch ROOT/current atomically, restart the service and run a health "
        "check; any failure after the switch (a failed or timed-out step, a lost connection, Ctrl-C) switches back "
        "to the previous version. Exit codes: 1 rolled back (130 when interrupted), 3 NOT rolled back (device "
        "unreachable: it rolls back at its next start), 2 other errors (nothing switched). Example: "
        "edge-ser deploy bundles/ser_emodb pi@pi-kitchen.local",
    )
    from edge_ser_deploy.deploy import add_deploy_args, cmd_deploy

    add_deploy_args(p)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser(
        "firstboot",
        help="write cloud-init first-boot files (user, SSH key, Wi-Fi, hostname, edge-ser install) for an image",
        description="Generate user-data, network-config and meta-data for the boot partition of a freshly "
        "written Raspberry Pi OS / Ubuntu image, so the device installs edge-ser from a wheelhouse and starts "
        "the demo on its first boot. The files are checked with cloud-init's own schema when it is installed. "
        "Example: EDGE_SER_WIFI_PASSWORD=... edge-ser firstboot --hostname pi-kitchen --ssh-key "
        "~/.ssh/id_ed25519.pub --wifi-ssid Home --country GB --wheelhouse wheelhouse/pi-trixie --bundle-path "
        "bundles/ser_emodb --out /media/$USER/bootfs",
    )
    from edge_ser_deploy.firstboot import add_firstboot_args, cmd_firstboot

    add_firstboot_args(p)
    p.set_defaults(func=cmd_firstboot)
