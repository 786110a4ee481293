"""``python -m volatility.api``: the same as ``volatility serve``."""

from volatility.api.command import main

raise SystemExit(main())
