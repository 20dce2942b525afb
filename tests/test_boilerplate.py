"""Tests for bids_app.boilerplate (logs/CITATION.{md,html,bib})."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from bids_app import boilerplate, presence

VERSIONS = {
    "nibabel": "5.4.2",
    "pybids": "0.22.0",
    "pyvista": "0.49.1",
    "vtk": "9.7.2",
    "onnxruntime": "1.32.0",
    "opencv": "5.0.0.93",
}
PARAMS = {
    "version": "0.1.0",
    "modality": "FLAIR",
    "n_renders": 12,
    "seed": 98765,
    "dim": 128,
    "top_k": 50,
    "n_identities": 84,
    "versions": VERSIONS,
}


@pytest.fixture(scope="module")
def out():
    return boilerplate.render_citation(PARAMS)


def test_keys(out):
    assert set(out) == {"md", "html", "bib"}
    assert all(isinstance(v, str) and v.endswith("\n") for v in out.values())


@pytest.mark.parametrize("fmt", ["md", "html", "bib"])
def test_versions_in_all_outputs(out, fmt):
    text = out[fmt]
    assert "0.1.0" in text
    for version in VERSIONS.values():
        assert version in text, (fmt, version)


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_parameters_in_text(out, fmt):
    text = out[fmt]
    for needle in ("facerisk", "FLAIR", "12 times", "seed 98765", "128-D", "top-50", "YuNet", "SFace",
                   "84 MRI identities", "Wilson"):
        assert needle in text, (fmt, needle)
    assert "Schwarz" in text and "10.1056/NEJMc1908881" in text


def test_html_has_no_external_links(out):
    html = out["html"]
    assert "http://" not in html and "https://" not in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith("#ref-") for h in hrefs)
    # every in-text citation points at a listed reference
    ids = set(re.findall(r'id="(ref-[^"]+)"', html))
    assert {h[1:] for h in hrefs} <= ids


def test_html_balanced(out):
    class Checker(HTMLParser):
        void = {"br", "img", "meta", "hr"}

        def __init__(self):
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag not in self.void:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack and self.stack[-1] == tag, (tag, self.stack)
            self.stack.pop()

    c = Checker()
    c.feed(out["html"])
    c.close()
    assert c.stack == []


def _bib_entries(bib: str) -> list[tuple[str, str, str]]:
    """Split BibTeX into (type, key, body), checking brace balance."""
    entries = []
    i = 0
    while (at := bib.find("@", i)) != -1:
        m = re.match(r"@(\w+)\{([^,\s]+),", bib[at:])
        assert m, bib[at : at + 40]
        depth, j = 0, at + m.start(0) + len("@" + m.group(1))
        for j in range(j, len(bib)):
            if bib[j] == "{" and bib[j - 1] != "\\":
                depth += 1
            elif bib[j] == "}" and bib[j - 1] != "\\":
                depth -= 1
                if depth == 0:
                    break
        assert depth == 0, f"unbalanced braces in {m.group(2)}"
        entries.append((m.group(1).lower(), m.group(2), bib[at : j + 1]))
        i = j + 1
    # nothing but whitespace between entries
    assert re.sub(r"@\w+\{[^@]*\}\s*", "", bib).strip() == ""
    return entries


def test_bib_parses(out):
    entries = _bib_entries(out["bib"])
    types = {t for t, _, _ in entries}
    keys = [k for _, k, _ in entries]
    assert types <= {"article", "misc", "book"}
    assert len(keys) == len(set(keys))
    for key in ("facerisk", "schwarz2019", "bids2016", "bidsapps2017", "pybids2019", "nibabel",
                "pyvista2019", "vtk2006", "yunet2023", "sface2021"):
        assert key in keys
    bodies = dict((k, b) for _, k, b in entries)
    assert "doi = {10.1056/NEJMc1908881}" in bodies["schwarz2019"]
    assert "doi = {10.1007/s11633-023-1423-y}" in bodies["yunet2023"]
    assert "Version 5.4.2" in bodies["nibabel"]
    for _, _, body in entries:
        assert re.search(r"\btitle = \{", body) and re.search(r"\bauthor = \{", body)


def test_face_model_and_aliases():
    out = boilerplate.render_citation({
        **PARAMS, "face_model": "buffalo_l", "modality": "FLAIR, T1w",
        "render_min_score": 0.5, "photo_min_score": 0.6, "min_nose_relief": 9.0,
        "versions": {"opencv-python-headless": "5.0.0.93", "insightface": "2.1"},
    })
    md = out["md"]
    assert "nose relief of at least 9.0 mm" in md and "9.0 mm" in out["html"]
    assert f"at least {100 * presence.MIN_SUPPORT_FRACTION:g}% of its renders" in md
    assert "buffalo_l face model" in md and "YuNet" not in md
    assert "OpenCV 5.0.0.93 and InsightFace 2.1" in md
    assert "at least 0.5 in renders and 0.6 in photos" in md
    assert "FLAIR or T1w image" in md
    # the default face model is YuNet + SFace, and None falls back to defaults
    assert "YuNet" in boilerplate.render_citation({**PARAMS, "face_model": None})["md"]
    # the nose check is described only when it was on
    assert "depth map" in md
    assert "depth map" not in boilerplate.render_citation({**PARAMS, "min_nose_relief": 0})["md"]


def test_only_cited_references_are_listed():
    out = boilerplate.render_citation({**PARAMS, "detector": "dlib-hog", "recognizer": "dlib-resnet"})
    keys = [k for _, k, _ in _bib_entries(out["bib"])]
    assert "yunet2023" not in keys and "sface2021" not in keys
    assert "YuNet" not in out["md"] and "Wu W" not in out["html"]
    assert "dlib-resnet" in out["md"]


def test_no_photos_variant():
    out = boilerplate.render_citation({**PARAMS, "photos": False})
    assert "No participant photos" in out["md"]
    assert "top-50" in out["html"]


def test_html_escapes_values():
    out = boilerplate.render_citation({**PARAMS, "modality": "<b>T1w</b>"})
    assert "<b>T1w</b>" not in out["html"] and "&lt;b&gt;T1w&lt;/b&gt;" in out["html"]
    _bib_entries(boilerplate.render_citation({**PARAMS, "versions": {"nibabel": "5_{x}&%"}})["bib"])


def test_modality_list_and_bad_ties():
    out = boilerplate.render_citation({**PARAMS, "modality": ["FLAIR", "T1w", "T2w"]})
    assert "FLAIR, T1w or T2w" in out["md"]
    with pytest.raises(ValueError):
        boilerplate.render_citation({**PARAMS, "ties": "dense"})


def test_template_dir_and_versions():
    d = boilerplate.template_dir()
    for name in ("methods_body.j2", "methods.md.j2", "methods.html.j2", "references.bib.j2", "references.json"):
        assert (d / name).is_file()
    v = boilerplate.software_versions(["numpy", "facerisk", "not-a-package-xyz"])
    assert "numpy" in v and "facerisk" in v and "not-a-package-xyz" not in v
