"""``python -m bridge``: the same as the ``ansible-bridge`` command."""

from bridge.cli.main import main

raise SystemExit(main())
