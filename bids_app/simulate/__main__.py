"""``python -m bids_app.simulate``."""

from .cli import main

raise SystemExit(main())
