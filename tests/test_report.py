"""Tests for the group HTML report (bids_app.report)."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bids_app import rank
from bids_app.report import cmc_svg, image_data_uri, render_group_report


def face_image(seed: int, size: int = 256, rgba: bool = False) -> np.ndarray:
    """A crude but real face-like picture: skin ellipse, eyes, nose, mouth, noise."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGBA" if rgba else "RGB", (size, size), (200, 210, 225))
    d = ImageDraw.Draw(im)
    skin = tuple(int(v) for v in rng.integers(150, 240, 3))
    d.ellipse([size * 0.2, size * 0.1, size * 0.8, size * 0.9], fill=skin)
    for x in (0.37, 0.63):
        d.ellipse([size * (x - 0.05), size * 0.38, size * (x + 0.05), size * 0.45], fill=(40, 30, 30))
    d.polygon([(size * 0.5, size * 0.45), (size * 0.45, size * 0.6), (size * 0.55, size * 0.6)], fill=(120, 80, 70))
    d.arc([size * 0.38, size * 0.62, size * 0.62, size * 0.75], 20, 160, fill=(90, 20, 20), width=4)
    arr = np.asarray(im).astype(np.int16)
    arr[..., :3] += rng.integers(-8, 9, size=arr[..., :3].shape, dtype=np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8)


def make_context(n: int = 6, photos: bool = True, tmp_path=None) -> dict:
    rng = np.random.default_rng(1)
    ids = [f"sub-{i + 1:02d}" for i in range(n)]
    base = rng.normal(size=(n, 32))
    gallery = np.repeat(base, 3, axis=0) + rng.normal(scale=1.6, size=(3 * n, 32))
    probes = np.repeat(base, 2, axis=0) + rng.normal(scale=1.6, size=(2 * n, 32))
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    probes[[2 * n - 2, 2 * n - 1]] = np.nan  # last participant: no face in any photo
    sim = rank.cosine_similarity(probes, gallery)
    photo = rank.identity_scores_nejm(sim, np.repeat(np.arange(n), 3), n)
    person = rank.aggregate_by_person(photo, np.repeat(np.arange(n), 2), n)
    ranks = rank.true_ranks(person, np.arange(n))
    idx, scores = rank.top_matches(person, k=5)
    summary = rank.summarise(ranks, n)

    participants = []
    for i, pid in enumerate(ids):
        usable = bool(np.isfinite(ranks[i]))
        photo_src = face_image(100 + i)
        if tmp_path is not None and i == 0:  # one thumbnail from a file path
            path = tmp_path / "photo.png"
            Image.fromarray(photo_src).save(path)
            photo_src = path
        participants.append(
            {
                "participant_id": pid,
                "rank": int(ranks[i]) if usable else None,
                "render_uri": image_data_uri(face_image(i)),
                "photo_uri": image_data_uri(photo_src) if photos else None,
                "matches": [{"participant_id": ids[j], "score": float(s)} for j, s in zip(idx[i], scores[i])]
                if (photos and usable) else [],
                "renders_detected": 3 if i else 2,
                "renders_total": 3,
            }
        )
    return {
        "title": "facerisk report: ds-test",
        "generated": "2026-11-26T14:30:00+00:00",
        "version": "0.1.0",
        "dataset_name": "Test <dataset> & co",
        "n_participants": n,
        "n_with_photos": n - 1 if photos else 0,
        "n_identities": n,
        "summary": summary if photos else None,
        "detection": {"renders_total": 3 * n, "renders_detected": 3 * n - 1, "rate": (3 * n - 1) / (3 * n)},
        "cmc_svg": cmc_svg(rank.cmc_curve(ranks, n)) if photos else "",
        "participants": participants,
        "parameters": {"seed": 1234, "n_renders": 3, "modality": "FLAIR", "top_k": 50, "ties": "max"},
        "methods_html": "<p>Face re-identification risk was assessed with <em>facerisk</em>.</p>",
    }, ranks, summary


class TagChecker(HTMLParser):
    """Checks nesting of non-void elements and collects img/src and href values."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
            "circle", "line", "rect", "polyline"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.imgs: list[str] = []
        self.urls: list[str] = []
        self.counts: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        for key in ("src", "href", "xlink:href", "action", "data", "poster"):
            if key in a:
                self.urls.append(a[key] or "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def parse(html: str) -> TagChecker:
    c = TagChecker()
    c.feed(html)
    c.close()
    return c


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    ctx, ranks, summary = make_context(tmp_path=tmp_path_factory.mktemp("img"))
    return render_group_report(ctx), ctx, ranks, summary


def test_warning_first_and_prominent(report):
    html = report[0]
    assert "contains identifying images of research participants" in html
    assert "identifiable personal data" in html
    body = html[html.index("<body"):]
    # the warning comes before any image or number
    assert body.index('class="warning"') < body.index('id="summary"') < body.index("<img")


def test_self_contained(report):
    html = report[0]
    c = parse(html)
    assert c.imgs and all(src.startswith("data:image/") for src in c.imgs)
    for url in c.urls:
        assert not re.match(r"\s*(https?:)?//", url), url
        # images inline; links only within the page or to files beside it (pages, the full table)
        assert url.startswith(("data:image/", "#")) or re.fullmatch(r"sub-[A-Za-z0-9]+\.html|group_desc-ranks\.tsv",
                                                                    url), url
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert "@import" not in html and "url(" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "Content-Security-Policy" in html


def test_html_balanced(report):
    c = parse(report[0])
    assert c.errors == []
    assert c.stack == []
    for tag in ("html", "head", "body", "table", "tbody", "section", "svg", "style"):
        assert c.counts.get(tag, 0) >= 1, tag
    assert c.counts["tr"] == 1 + len(report[1]["participants"])
    assert c.counts["img"] == 2 * len(report[1]["participants"])


def test_numbers_formatted(report):
    html, ctx, ranks, summary = report
    t1, t5 = summary["top1"], summary["top5"]
    for m in (t1, t5):
        assert f"{100 * m['rate']:.1f}%" in html
        assert f"{100 * m['ci_low']:.1f}%" in html and f"{100 * m['ci_high']:.1f}%" in html
        assert f"{100 * m['chance']:.1f}%" in html
        assert f"{m['hits']} of {m['n']} participants" in html
    assert "Wilson" in html and "chance level" in html
    # detection 17 of 18 renders -> 94.4%
    assert "94.4%" in html and "17" in html
    # scores with three decimals, and the own MRI marked in the matches
    first = ctx["participants"][0]["matches"][0]["score"]
    assert f"{first:.3f}" in html
    assert "own MRI" in html and 'class="true"' in html
    # ranks: n/a for the participant without a usable photo
    assert np.isnan(ranks[-1])
    row = re.search(r'<tr id="sub-06">(.*?)</tr>', html, re.S).group(1)
    assert "n/a" in row


def test_escaping(report):
    html = report[0]
    assert "Test &lt;dataset&gt; &amp; co" in html
    assert "<dataset>" not in html
    # trusted methods HTML is inserted as is
    assert "<em>facerisk</em>" in html


def test_cmc_svg_present(report):
    html = report[0]
    svg = html[html.index("<svg"): html.index("</svg>")]
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    assert "polyline" in svg and "top-1" in svg


def test_no_photo_variant():
    ctx, _, _ = make_context(photos=False)
    html = render_group_report(ctx)
    c = parse(html)
    assert c.errors == [] and c.stack == []
    assert "No participant photos were found" in html
    assert "Renders with a detected face" in html and "94.4%" in html
    assert "17" in html and "18 renders" in html
    assert "Wilson" not in html and "<svg" not in html
    assert "contains identifying images of research participants" in html
    assert all(src.startswith("data:image/") for src in c.imgs)
    assert "no photo" in html


def test_minimal_context_and_bad_uri():
    html = render_group_report({"title": "t", "participants": [{"participant_id": "sub-01"}]})
    assert "No participant photos" in html and "n/a" in html
    with pytest.raises(ValueError):
        render_group_report({"title": "t", "participants": [
            {"participant_id": "sub-01", "render_uri": "https://example.org/x.png"}]})
    with pytest.raises(KeyError):
        render_group_report({"participants": []})


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_image_data_uri(fmt, tmp_path):
    arr = face_image(3, size=400, rgba=True)
    uri = image_data_uri(arr, max_side=160, fmt=fmt)
    mime, b64 = re.match(r"data:(image/\w+);base64,(.*)$", uri).groups()
    assert mime == ("image/jpeg" if fmt == "JPEG" else "image/png")
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert max(im.size) == 160 and im.format == fmt
    # floats in [0, 1], grey images and small images (never enlarged)
    grey = image_data_uri(np.linspace(0, 1, 50 * 40).reshape(50, 40))
    im = Image.open(io.BytesIO(base64.b64decode(grey.split(",", 1)[1])))
    assert im.size == (40, 50)


def test_image_data_uri_strips_metadata(tmp_path):
    path = tmp_path / "p.jpg"
    exif = Image.Exif()
    exif[0x010F] = "SecretCameraMaker"
    Image.fromarray(face_image(5)).save(path, exif=exif)
    uri = image_data_uri(path)
    raw = base64.b64decode(uri.split(",", 1)[1])
    assert b"SecretCameraMaker" not in raw


def test_cmc_svg_edge_cases():
    assert cmc_svg(np.array([])) == ""
    assert cmc_svg(np.array([np.nan, np.nan])) == ""
    svg = cmc_svg(np.array([1.0]))
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def _polyline(svg: str) -> list[str]:
    return re.search(r'<polyline points="([^"]*)"', svg).group(1).split()


def test_cmc_svg_of_a_large_cohort_is_small_and_exact_at_the_quoted_ranks():
    """100 000 ranks: a few kB (not megabytes), yet ranks 1, 5, 10 and N drawn at their value.

    The curve rises by less than a pixel per rank at first, so ranks 5 and 10
    are kept because the report quotes them, not because the curve jumps there.
    """
    n = 100_000
    r = np.arange(1, n + 1)
    cmc = 0.5 + 0.5 * (1.0 - np.exp(-(r - 1) / 300.0))
    svg = cmc_svg(cmc)
    assert len(svg) < 50_000
    points = _polyline(svg)
    assert len(points) <= 600
    # plot area from the frame: <rect x=left y=top width=pw height=ph>
    left, top, pw, ph = map(float, re.search(
        r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', svg).groups())
    for rank_ in (1, 5, 10, n):
        x = left + (rank_ - 1) / (n - 1) * pw
        y = top + (1.0 - cmc[rank_ - 1]) * ph
        assert f"{x:.1f},{y:.1f}" in points, rank_
    assert points[0] == f"{left:.1f},{top + 0.5 * ph:.1f}" and points[-1] == f"{left + pw:.1f},{top:.1f}"


def test_cmc_thinning_is_a_step_curve_within_tolerance():
    from bids_app.report.figures import _cmc_step_ranks

    rng = np.random.default_rng(3)
    n = 20_000
    cmc = rank.cmc_curve(np.where(rng.random(n) < 0.6, rng.integers(1, 4, n), rng.integers(1, n + 1, n)), n)
    tol = 1 / 244
    kept = _cmc_step_ranks(cmc, tol, keep=(1, 5, 10))
    assert {1, 5, 10, n} <= set(kept.tolist()) and (np.diff(kept) > 0).all()
    assert len(kept) <= 1 / tol + 5
    # drawn: flat at the last kept rank's value; every jump of a pixel or more is kept
    drawn = cmc[kept[np.searchsorted(kept, np.arange(1, n + 1), side="right") - 1] - 1]
    assert np.abs(drawn - cmc).max() < tol
    assert set(np.flatnonzero(np.diff(cmc) >= tol) + 2) <= set(kept.tolist())
    # a small cohort is drawn exactly, at every rank where its curve changes, as before
    small = rank.cmc_curve(np.array([1, 1, 2, 4, 4, 6]), 6)
    kept = _cmc_step_ranks(small, tol)
    assert kept.tolist() == [1, 2, 4, 6]
    # the full polyline of before (two vertices a rank) less the corners that repeat a
    # neighbour, but for rank 5's
    assert _polyline(cmc_svg(small)) == [
        "52.0,176.7", "130.4,176.7", "130.4,136.0", "287.2,136.0", "287.2,54.7", "365.6,54.7",
        "444.0,54.7", "444.0,14.0"]


def test_left_out_participants_are_listed_up_to_a_limit():
    from bids_app.report.html import MAX_EXCLUDED

    excluded = [{"participant_id": f"sub-{i:05d}", "reason": "no record"} for i in range(MAX_EXCLUDED + 500)]
    html = render_group_report({"title": "t", "participants": [], "excluded": excluded})
    assert f"{MAX_EXCLUDED + 500} participant folder(s) were not used" in html
    assert html.count("<td>no record</td>") == MAX_EXCLUDED
    assert f"The first {MAX_EXCLUDED} are listed" in html
    few = render_group_report({"title": "t", "participants": [], "excluded": excluded[:3]})
    assert few.count("<td>no record</td>") == 3 and "are listed" not in few


def test_first_screen_is_the_audit_with_claimed_but_face_first():
    """The audit (bids_app.audit on plain evidence) on the report's first screen: the steward's
    sentence, counts per action, the images that claim defacing but show a face, then the table."""
    from bids_app import audit
    from bids_app.report.audit import audit_context

    def record(label, present, metadata, suffix="T1w"):
        rows = [{"Detected": present, "Score": 0.9 if present else None, "NoseReliefMm": 20.0,
                 "EyeMouthMm": 55.0, "Features": {"Seen": dict.fromkeys(("EyeLeft", "EyeRight", "Nose", "Mouth"), 1.0),
                                                  "Flat": dict.fromkeys(("EyeLeft", "EyeRight", "Nose", "Mouth"), 0.4),
                                                  "FaceFlat": 0.1}} if present else {"Detected": False}
                for _ in range(10)]
        return audit.ImageRecord(label, f"sub-{label}_{suffix}", suffix,
                                 presence={"FacePresent": present, "Support": 10 if present else 0, "MinSupport": 4},
                                 rows=rows, metadata=metadata)

    claim = {"DeidentificationMethod": ["pydeface <2.0>"]}
    rng = np.random.default_rng(0)
    records = [record("01", False, claim), record("02", True, claim), record("03", True, {})]
    faces = rng.normal(size=(2, 16))
    verdicts = audit.audit_images(records, [None, *(faces / np.linalg.norm(faces, axis=1, keepdims=True))])
    counts = audit.action_counts(verdicts)
    summary = {"audit": {**counts, "sentence": audit.steward_sentence(counts, "0.1.0", "2026-11-30")}}
    data = {"audit_rows": [v.to_json() for v in sorted(verdicts, key=audit.priority)]}
    ctx, _, _ = make_context(photos=False)
    ctx["audit"] = audit_context(summary, data)
    html = render_group_report(ctx)
    c = parse(html)
    assert c.errors == [] and c.stack == []
    body = html[html.index("<body"):]
    sentence = ("Of 3 anatomical images from 3 participants, 2 (66.7%) still show a reconstructable face and "
                "must be defaced again, 0 need a visual check, and 1 shows no face or a replaced face "
                "(facerisk 0.1.0, 2026-11-30).")
    assert body.index('id="warning"') < body.index(sentence) < body.index('id="claimed-but-face"') \
        < body.index('id="audit-actions"') < body.index('id="summary"')
    listed = body[body.index('id="claimed-but-face"'):body.index('id="audit-actions"')]
    assert "sub-02_T1w" in listed and "sub-03_T1w" not in listed
    assert "pydeface &lt;2.0&gt;" in listed  # sidecar text is escaped
    assert audit_context({}, {}) is None  # older group outputs: no audit section
