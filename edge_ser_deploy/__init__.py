"""Workstation tools that put edge-ser on devices: `deploy` (a bundle to one device over SSH, verified, switched
atomically, health-checked, rolled back on failure) and `firstboot` (cloud-init files for a fresh SD card or
image). They run on the workstation, not on the device: the device wheel built by scripts/wheelhouse.py
carries only `edge_ser`. The fleet playbook is `deploy/ansible`; the install scripts are `deploy/pi`,
`deploy/jetson`.
"""
