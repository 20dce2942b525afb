"""Report images made once at the participant level, and a shared report that never shows a full image.

The participant outputs here hold real image files (renders with their
sidecars and photo crops of sharp random texture); the group level is run on
them and every image of the group page and of every participant page is
decoded and measured.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re

import numpy as np
import pytest
from PIL import Image

from bids_app.report.thumbs import THUMB_PX, thumbnail_bytes, thumbnail_path, thumbnail_uri, write_thumbnails
from bids_app.workflows.group import run_group

from helpers import write_record, write_synthetic
from test_group import settings_for

N = 6


def _texture(rng, size=256) -> np.ndarray:
    """Sharp detail everywhere: what a full image keeps and a blurred one must not."""
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def write_outputs_with_images(out, prepared: bool = True):
    """Synthetic participants with render and photo-crop PNGs (and render sidecars with a detection);
    ``prepared``: thumbnails written as the participant level writes them."""
    write_synthetic(out, N, noise=2.0)
    rng = np.random.default_rng(1)
    for sub in sorted(out.glob("sub-*")):
        for kind, suffix in (("anat", "FLAIR"), ("photo", "photo")):
            sidecar_path = sub / kind / f"{sub.name}_desc-faces_{suffix}.json"
            meta = json.loads(sidecar_path.read_text())
            for i, row in enumerate(meta["Rows"][:3], start=1):
                name = f"{sub.name}_desc-{'render' if kind == 'anat' else 'photo'}{i:02d}_{suffix}.png"
                Image.fromarray(_texture(rng)).save(sub / kind / name)
                row["File"] = name
                if kind == "anat":
                    (sub / kind / name).with_suffix(".json").write_text(json.dumps(
                        {"ImageSize": [256, 256], "Face": {"Detected": True, "Box": [60, 50, 120, 150],
                                                            "Landmarks": [[100, 100], [150, 100], [125, 130],
                                                                          [105, 160], [145, 160]]}}))
            sidecar_path.write_text(json.dumps(meta))
        if prepared:
            write_thumbnails(sub)
        write_record(out, sub.name[len("sub-"):])


def report_images(out) -> list[np.ndarray]:
    """Every image inlined in facerisk.html and the participant pages, decoded."""
    images = []
    for page in sorted(out.glob("*.html")):
        for uri in re.findall(r'src="(data:image/[^"]+)"', page.read_text()):
            images.append(np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("L"),
                                     float))
    return images


def detail(image: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (grey levels)."""
    return float(np.abs(np.diff(image, axis=1)).mean())


def test_participant_thumbnails_are_read_not_remade(tmp_path):
    rng = np.random.default_rng(0)
    sub = tmp_path / "sub-01"
    (sub / "anat").mkdir(parents=True)
    (sub / "photo").mkdir()
    render = sub / "anat" / "sub-01_desc-render01_FLAIR.png"
    crop = sub / "photo" / "sub-01_desc-photo01_photo.png"
    Image.fromarray(_texture(rng, 512)).save(render)
    Image.fromarray(_texture(rng, 112)).save(crop)
    (sub / "anat" / "sub-01_desc-qcrenders_FLAIR.png").write_bytes(render.read_bytes())  # not shown
    written = write_thumbnails(sub)
    assert sorted(p.relative_to(sub).as_posix() for p in written) == [
        "figures/sub-01_desc-photo01_photo_thumb-blurred.jpg", "figures/sub-01_desc-photo01_photo_thumb-full.jpg",
        "figures/sub-01_desc-render01_FLAIR_thumb-blurred.jpg", "figures/sub-01_desc-render01_FLAIR_thumb-full.jpg"]
    for mode in ("full", "blurred"):
        data = thumbnail_path(render, mode).read_bytes()
        # the thumbnail made at report time from the image is the same file, byte for byte
        assert data == thumbnail_bytes(render, mode)
        assert max(Image.open(io.BytesIO(data)).size) == THUMB_PX
        made = [0]
        assert thumbnail_uri(render, mode, made) == "data:image/jpeg;base64," + base64.b64encode(data).decode()
        assert made == [0]
    assert thumbnail_uri(render, "none") is None
    # the report reads the file the participant level wrote (here replaced by a marker)
    thumbnail_path(crop, "full").write_bytes(b"marker")
    assert base64.b64decode(thumbnail_uri(crop, "full").split(",", 1)[1]) == b"marker"
    # without it, the thumbnail is made from the image, and counted
    thumbnail_path(crop, "full").unlink()
    made = [0]
    assert base64.b64decode(thumbnail_uri(crop, "full", made).split(",", 1)[1]) == thumbnail_bytes(crop, "full")
    assert made == [1]
    # a rerun that no longer has the photo leaves no thumbnail of it
    crop.unlink()
    write_thumbnails(sub)
    assert sorted(p.name for p in (sub / "figures").iterdir()) == [
        "sub-01_desc-render01_FLAIR_thumb-blurred.jpg", "sub-01_desc-render01_FLAIR_thumb-full.jpg"]


@pytest.mark.parametrize("prepared", [True, False], ids=["thumbnails", "older-outputs"])
def test_shared_report_never_carries_a_full_image(tmp_path, prepared):
    out = tmp_path / "out"
    write_outputs_with_images(out, prepared)
    # control: the full report shows the detail, so the measure below can tell
    run_group(settings_for(tmp_path, out, report_images="full"))
    full = report_images(out)
    assert len(full) > 3 * N and min(detail(im) for im in full) > 20
    run_group(settings_for(tmp_path, out, report_images="blurred"))
    blurred = report_images(out)
    assert len(blurred) == len(full)
    assert max(detail(im) for im in blurred) < 3
    if prepared:  # a blurred thumbnail that went missing is remade blurred, never replaced by the full one
        for thumb in out.glob("sub-*/figures/*_thumb-blurred.jpg"):
            thumb.unlink()
        run_group(settings_for(tmp_path, out, reports_only=True))
        assert max(detail(im) for im in report_images(out)) < 3
    run_group(settings_for(tmp_path, out, report_images="none"))
    pages = sorted(out.glob("*.html"))
    assert len(pages) == N + 1
    for page in pages:
        assert "<img" not in page.read_text() and "data:image" not in page.read_text()


def test_render_detections_are_drawn_over_the_render_and_rebuilt_the_same(tmp_path):
    out = tmp_path / "out"
    write_outputs_with_images(out)
    run_group(settings_for(tmp_path, out))
    page = (out / "sub-1.html").read_text()
    assert page.count('<div class="shot">') == 3
    assert page.count('<rect x="60" y="50" width="120" height="150"') == 3
    assert page.count("<circle") == 15
    # --reports-only rebuilds the same pages, images included, byte for byte
    before = {p.name: p.read_bytes() for p in out.glob("*.html")}
    for p in out.glob("*.html"):
        p.unlink()
    run_group(settings_for(tmp_path, out, reports_only=True))
    assert {p.name: p.read_bytes() for p in out.glob("*.html")} == before


def test_progress_lines_for_loading_ranking_and_report(tmp_path, caplog):
    out = tmp_path / "out"
    write_outputs_with_images(out)
    with caplog.at_level(logging.INFO, logger="facerisk"):
        run_group(settings_for(tmp_path, out))
    lines = [r.getMessage() for r in caplog.records]
    for stage, unit in (("loading: completion records", "participants"),
                        ("loading: embeddings (desc-faces)", "participants"),
                        ("ranking: photos against MRI faces", "photos"),
                        ("report: participant pages", "pages")):
        done = [line for line in lines if line.startswith(f"{stage}: ")]
        assert done, (stage, lines)
        # stage, count, rate, and "done" at the end (time left before it)
        assert re.fullmatch(rf"{re.escape(stage)}: (\d+) of \1 {unit} \(100%\) in [\d.]+ s, \S+ {unit}/s, "
                            r"done", done[-1]), done[-1]


def test_progress_says_time_left_while_running_and_done_at_the_end(caplog):
    from bids_app.progress import Progress

    with caplog.at_level(logging.INFO, logger="facerisk"):
        progress = Progress("ranking: photos", 10, "photos", every_s=0.0)
        progress(4)
        progress(10)
        Progress("loading: embeddings", 0, "participants", every_s=0.0)(0)  # nothing to load: no "nan s left"
    lines = [r.getMessage() for r in caplog.records]
    assert re.search(r"4 of 10 photos \(40%\) .*(about \d+ s left|time left not known yet)$", lines[0]), lines[0]
    assert lines[1].endswith("done") and lines[2].endswith("done") and "nan" not in " ".join(lines)
