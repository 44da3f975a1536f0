"""`python -m edge_ser` is the same as the `edge-ser` command."""

from edge_ser.cli import main

raise SystemExit(main())
