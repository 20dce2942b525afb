"""Face backends side by side: verification on real photos, detection on MRI renders, speed.

Run from the repository root::

    python benchmarks/backends.py [--pack DIR ...] [--heads DIR] [--photos DIR] [--no-renders]

Photos (real people, each image one identity):

* NASA's astronaut portrait (``skimage.data.astronaut``) and five augmented
  copies (mirror, +30% brightness, 8 degree rotation, JPEG quality 35, 0.6x
  scale);
* the six people of insightface's ``t1.jpg``, each cut out with a margin,
  with the same augmentations;
* ``../shared/data/photos/*.jpg`` when present (three photos of one person,
  one partial face, one other person; the identity is the file name up to
  the first ``_`` or digit).

Per backend: faces found, verification AUC over all pairs of embedded images
(same person vs different people), the lowest same-person and highest
different-person cosine, and median detection and embedding time per face.

Renders: every head in ``../shared/data/heads`` is reconstructed and rendered
from 10 seeded views (``bids_app.mri`` + ``bids_app.render``); the table gives
the share of renders with a face at the render threshold (pass 1) and with
the two-pass fallback. Skipped with a note if those modules fail.
"""

from __future__ import annotations

import argparse
import importlib.resources
import io
import re
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bids_app.face import FaceModel, load_face_model  # noqa: E402
from bids_app.photos import read_photo  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
RENDER_MIN_SCORE = 0.5
PHOTO_MIN_SCORE = 0.6


# --------------------------------------------------------------------------- photo set


def augmentations(image: np.ndarray) -> dict[str, np.ndarray]:
    """The original and five augmented copies of *image*."""
    h, w = image.shape[:2]
    out = {"orig": image, "flip": np.ascontiguousarray(image[:, ::-1])}
    out["bright"] = np.clip(image.astype(np.float32) * 1.3 + 20, 0, 255).astype(np.uint8)
    rot = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), 8.0, 1.0)
    out["rot8"] = cv2.warpAffine(image, rot, (w, h), borderMode=cv2.BORDER_REPLICATE)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=35)
    out["jpeg35"] = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    out["scale0.6"] = cv2.resize(image, (round(w * 0.6), round(h * 0.6)), interpolation=cv2.INTER_AREA)
    return out


def photo_set(photos_dir: Path | None) -> list[tuple[str, str, np.ndarray]]:
    """``(identity, label, image)`` for every benchmark photo."""
    from skimage import data

    items: list[tuple[str, str, np.ndarray]] = []
    for aug, img in augmentations(data.astronaut()).items():
        items.append(("astronaut", f"astronaut/{aug}", img))

    path = importlib.resources.files("insightface") / "data/images/t1.jpg"
    with Image.open(str(path)) as im:
        group = np.asarray(im.convert("RGB"))
    finder = load_face_model("sface")
    height, width = group.shape[:2]
    for k, det in enumerate(finder.detect(group)):
        cx, cy = det.center
        half = 1.1 * max(det.box[2], det.box[3])
        x0, x1 = int(max(0, cx - half)), int(min(width, cx + half))
        y0, y1 = int(max(0, cy - half)), int(min(height, cy + half))
        crop = np.ascontiguousarray(group[y0:y1, x0:x1])
        for aug, img in augmentations(crop).items():
            items.append((f"t1-{k}", f"t1-{k}/{aug}", img))

    if photos_dir is not None and photos_dir.is_dir():
        for file in sorted(photos_dir.glob("*.jpg")):
            identity = re.split(r"[_\d]", file.stem)[0]
            items.append((identity, f"photos/{file.name}", read_photo(file)))
    return items


def auc(same: np.ndarray, diff: np.ndarray) -> float:
    """Probability that a random same-person pair scores above a different-person pair."""
    if not len(same) or not len(diff):
        return float("nan")
    scores = np.concatenate([same, diff])
    ranks = np.empty(len(scores))
    order = np.argsort(scores, kind="mergesort")
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks of ties
        tie = scores == value
        ranks[tie] = ranks[tie].mean()
    r_same = ranks[: len(same)].sum()
    return float((r_same - len(same) * (len(same) + 1) / 2) / (len(same) * len(diff)))


@dataclass
class PhotoResult:
    found: int = 0
    total: int = 0
    auc: float = float("nan")
    min_same: float = float("nan")
    max_diff: float = float("nan")
    det_ms: list[float] = field(default_factory=list)
    emb_ms: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    worst_same: str = ""
    worst_diff: str = ""


def run_photos(model: FaceModel, items: list[tuple[str, str, np.ndarray]]) -> PhotoResult:
    res = PhotoResult(total=len(items))
    ids: list[str] = []
    labels: list[str] = []
    vecs: list[np.ndarray] = []
    for identity, label, image in items:
        start = time.perf_counter()
        dets = model.detect(image, min_score=PHOTO_MIN_SCORE)
        res.det_ms.append(1000 * (time.perf_counter() - start))
        if not dets:
            res.missed.append(label)
            continue
        start = time.perf_counter()
        vec = model.embed(image, dets[0])
        res.emb_ms.append(1000 * (time.perf_counter() - start))
        ids.append(identity)
        labels.append(label)
        vecs.append(vec)
    res.found = len(vecs)
    if len(vecs) > 1:
        emb = np.stack(vecs)
        sim = emb @ emb.T
        iu = np.triu_indices(len(ids), 1)
        same_mask = np.array(ids)[:, None] == np.array(ids)[None, :]
        same, diff = sim[iu][same_mask[iu]], sim[iu][~same_mask[iu]]
        res.auc = auc(same, diff)
        pairs = list(zip(*iu))
        same_pairs = [p for p in pairs if same_mask[p]]
        diff_pairs = [p for p in pairs if not same_mask[p]]
        if same_pairs:
            i, j = min(same_pairs, key=lambda p: sim[p])
            res.min_same, res.worst_same = float(sim[i, j]), f"{labels[i]} ~ {labels[j]}"
        if diff_pairs:
            i, j = max(diff_pairs, key=lambda p: sim[p])
            res.max_diff, res.worst_diff = float(sim[i, j]), f"{labels[i]} ~ {labels[j]}"
    return res


# --------------------------------------------------------------------------- renders


def render_heads(heads_dir: Path, n_views: int = 10) -> list[tuple[str, np.ndarray]] | str:
    """``(label, image)`` of every render, or a note saying why there are none."""
    try:
        from bids_app.mri import load_head, reconstruct_head
        from bids_app.render import render_views, sample_view_params
    except Exception as err:  # another part of the project, possibly unfinished
        return f"renders skipped: bids_app.mri / bids_app.render unavailable ({type(err).__name__}: {err})"
    heads = sorted(heads_dir.glob("*.nii*")) if heads_dir.is_dir() else []
    if not heads:
        return f"renders skipped: no heads in {heads_dir}"
    out: list[tuple[str, np.ndarray]] = []
    notes = []
    for head in heads:
        try:
            data, affine, zooms = load_head(head)[:3]
            head_3d = reconstruct_head(data, affine, zooms)
            surface, frame = head_3d.surface, head_3d.frame
            views = sample_view_params(1234, n_views)
            for k, item in enumerate(render_views(surface, frame, views), start=1):
                image = item[0] if isinstance(item, tuple) else item
                out.append((f"{head.name.split('_')[0]}/{k:02d}", np.ascontiguousarray(image)))
        except Exception as err:
            notes.append(f"{head.name}: {type(err).__name__}: {err}")
    if not out:
        return "renders skipped: " + "; ".join(notes)
    for note in notes:
        print(f"note: render failed for {note}")
    return out


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack", action="append", default=[], help="insightface model pack folder")
    parser.add_argument("--photos", type=Path, default=SHARED / "photos")
    parser.add_argument("--heads", type=Path, default=SHARED / "heads")
    parser.add_argument("--no-renders", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    names = ["sface", "dlib", *args.pack]
    models: dict[str, FaceModel] = {}
    for name in names:
        try:
            models[name] = load_face_model(name)
        except Exception as err:
            print(f"note: backend {name} skipped: {err}")

    items = photo_set(args.photos)
    n_ids = len({i for i, _, _ in items})
    print(f"photos: {len(items)} images of {n_ids} people (detection threshold {PHOTO_MIN_SCORE})")
    header = (
        f"{'backend':<14}{'dim':>5}{'faces':>9}{'AUC':>8}{'min same':>10}{'max diff':>10}"
        f"{'det ms':>9}{'emb ms':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, model in models.items():
        model.detect(items[0][2])  # warm-up
        res = run_photos(model, items)
        print(
            f"{name:<14}{model.dim:>5}{f'{res.found}/{res.total}':>9}{res.auc:>8.3f}"
            f"{res.min_same:>10.3f}{res.max_diff:>10.3f}"
            f"{statistics.median(res.det_ms):>9.1f}{statistics.median(res.emb_ms):>9.1f}"
        )
        print(f"{'':<14}lowest same: {res.worst_same}; highest different: {res.worst_diff}")
        if res.missed:
            print(f"{'':<14}no face: {', '.join(res.missed)}")
    print("det ms: median detection time per image (images 300-2048 px); emb ms: per face (align + embed)")

    if args.no_renders:
        return 0
    print()
    start = time.perf_counter()
    renders = render_heads(args.heads)
    if isinstance(renders, str):
        print(renders)
        return 0
    n_heads = len({label.split("/")[0] for label, _ in renders})
    print(
        f"renders: {len(renders)} views of {n_heads} real heads "
        f"(rendered in {time.perf_counter() - start:.0f} s; threshold {RENDER_MIN_SCORE})"
    )
    header = f"{'backend':<14}{'pass 1':>10}{'2 passes':>10}{'median score':>14}"
    print(header)
    print("-" * len(header))
    for name, model in models.items():
        first = both = 0
        scores = []
        missed = []
        for label, image in renders:
            dets, npass = model.detect_with_fallback(image, min_score=RENDER_MIN_SCORE)
            first += npass == 1
            both += npass > 0
            if dets:
                scores.append(dets[0].score)
            else:
                missed.append(label)
        n = len(renders)
        med = statistics.median(scores) if scores else float("nan")
        print(f"{name:<14}{first / n:>10.0%}{both / n:>10.0%}{med:>14.3f}")
        if missed:
            print(f"{'':<14}no face: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
