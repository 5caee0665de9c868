"""``python -m losscast_cli`` is the ``losscast`` command."""

from losscast_cli.main import main

raise SystemExit(main())
