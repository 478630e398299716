"""``python -m bridge``: the same as the ``ansible-bridge`` command."""

from bridge.cli import main

raise SystemExit(main())
