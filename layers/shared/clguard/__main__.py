"""``python -m clguard``: the operator's command (``clguard.cli.main``)."""

from __future__ import annotations

from clguard.cli.main import main

raise SystemExit(main())
