"""facerisk: how re-identifiable are participants from the face in their head MRI?"""

import os as _os

# numpy advises the kernel to back every large array with transparent huge pages. Where the
# kernel compacts memory on such advice (``/sys/kernel/mm/transparent_hugepage/defrag`` set to
# "madvise", as on the machines measured), a process's first arrays each wait for it: about 1 s
# of system time in the first head reconstruction, 0.4-0.7 s of the first participant's run
# (README, "Performance"). numpy reads this variable once, when it is first imported, which the
# ``facerisk`` command does after this; NUMPY_MADVISE_HUGEPAGE=1 in the environment keeps the advice.
_os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

__version__ = "0.1.0"
__packagename__ = "facerisk"
