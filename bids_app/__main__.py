"""``python -m bids_app`` runs the ``facerisk`` command line."""

from bids_app.cli.run import main

if __name__ == "__main__":
    raise SystemExit(main())
