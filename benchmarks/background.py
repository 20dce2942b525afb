#!/usr/bin/env python
"""Background roughness: the distribution behind ``presence.NOISY_BACKGROUND_ROUGHNESS``, and its cost.

For every real head (``benchmarks/robustness.py``'s: the bundled demo heads and, when present,
../shared/data/heads) as stored, FLAIR-like, with Rician noise of 4% and 8% added, with the field
of view ending 15 mm inside the face, with Rician noise of 4-25% added, and as MP2RAGE UNI images
(``augment.mp2rage_uni``: default noise, 1% noise, cropped 15 mm into the face), and for every
scan of the simulated cohorts given, prints :func:`bids_app.mri.background.background_roughness`
(and for the real heads the share of the image's outer shell the intensity mask fills,
:func:`~bids_app.mri.background.shell_filled`), then the range per kind and the median time of
the roughness measure (5 runs on each stored head).

    python benchmarks/background.py [--cohort OUT [OUT ...]]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bids_app.mri import augment, head_mask, load_head  # noqa: E402
from bids_app.mri.background import background_roughness, shell_filled  # noqa: E402
from bids_app.presence import MIN_SHELL_FILLED, NOISY_BACKGROUND_ROUGHNESS  # noqa: E402

#: The alterations measured on each real head: name -> (is an MP2RAGE UNI image, maker).
ALTERATIONS = {
    "as stored": (False, lambda d, a: (d, a)),
    "FLAIR": (False, lambda d, a: augment.remap_contrast(d, a, "FLAIR")),
    "noise 4%": (False, lambda d, a: augment.add_noise(d, a, 0.04)),
    "noise 8%": (False, lambda d, a: augment.add_noise(d, a, 0.08)),
    "noise 15%": (False, lambda d, a: augment.add_noise(d, a, 0.15)),
    "noise 25%": (False, lambda d, a: augment.add_noise(d, a, 0.25)),
    "crop-15mm": (False, lambda d, a: augment.crop_front(d, a, 15.0)),
    "mp2rage-uni": (True, lambda d, a: augment.mp2rage_uni(d, a)),
    "mp2rage-uni noise 1%": (True, lambda d, a: augment.mp2rage_uni(d, a, noise=0.01)),
    "mp2rage-uni-crop-15mm": (True, lambda d, a: augment.mp2rage_uni(*augment.crop_front(d, a, 15.0))),
}


def main(argv: list[str] | None = None) -> int:
    from participant_speed import default_heads

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cohort", nargs="*", type=Path, default=[], help="simulated cohorts (facerisk-simulate)")
    args = ap.parse_args(argv)

    values: dict[str, list[float]] = defaultdict(list)
    filled: dict[str, list[float]] = defaultdict(list)  # the intensity mask's share of the shell
    times = []
    for path in default_heads():
        vol = load_head(path)
        for _ in range(5):
            start = time.perf_counter()
            background_roughness(vol.data)
            times.append(time.perf_counter() - start)
        row = []
        for name, (_, make) in ALTERATIONS.items():
            data = make(vol.data, vol.affine)[0]
            value = background_roughness(data)
            values[name].append(value)
            filled[name].append(shell_filled(head_mask(data, vol.zooms)))
            row.append(f"{name} {value:.3f}/{filled[name][-1]:.2f}")
        print(f"{path.name.split('.')[0]:26s} " + "  ".join(row), flush=True)
    for cohort in args.cohort:
        for folder in sorted(cohort.glob("bids*")):
            kind = f"simulated {folder.name}"
            for path in sorted(folder.glob("sub-*/anat/*.nii*")):
                values[kind].append(background_roughness(load_head(path).data))
            if values[kind]:
                print(f"{cohort.name}/{folder.name}: {len(values[kind])} scans", flush=True)

    print(f"\nbackground roughness per kind (rough from {NOISY_BACKGROUND_ROUGHNESS}), and the share of the "
          f"image's outer shell the intensity mask fills (the mask from the smoothness from {MIN_SHELL_FILLED} "
          "on a rough background; real heads only):")
    for name, v in values.items():
        uni = ALTERATIONS.get(name, (False,))[0]
        f = filled.get(name, [])
        told = [x >= NOISY_BACKGROUND_ROUGHNESS and (not f or f[i] >= MIN_SHELL_FILLED) for i, x in enumerate(v)]
        wrong = sum(t != uni for t in told)
        shell = f"  shell filled {min(f):.2f}-{max(f):.2f}" if f else ""
        print(f"  {name:34s} n={len(v):3d}  {min(v):.3f}-{max(v):.3f}{shell}  "
              f"{'UNI' if uni else 'ordinary'}, smoothness mask wrongly used or not: {wrong}")
    if times:
        print(f"\ntime per measure: median {1000 * statistics.median(times):.0f} ms "
              f"({1000 * min(times):.0f}-{1000 * max(times):.0f} ms, {len(times)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
