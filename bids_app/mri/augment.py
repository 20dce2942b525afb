"""Moved: the alterations of real heads live in :mod:`bids_app.simulate.augment`.

They are validation tooling (tests, benchmarks, the simulator's hard mode),
not part of the App. ``bids_app.mri.augment`` stays importable, as the very
same module object (private helpers included), for the tests and
benchmarks that import it by this name.
"""

import sys

from bids_app.simulate import augment as _augment

sys.modules[__name__] = _augment
