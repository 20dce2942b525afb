"""MRI-only audit: a verdict per anatomical image that a data steward can act on.

Pure functions on plain data (the participant level's sidecars, read by the
group level, and the images' mean face embeddings). Per image:

``face``
    a face is reconstructable: the scan-level decision found a face
    (:func:`bids_app.presence.scan_decision`) and the eyes, nose and mouth
    are skin of their shape in enough renders.
``partial``
    some features remain (named), e.g. eyes and nose with the mouth cut
    off, or a face behind a plane cut: a person must look.
``removed``
    no face.
``replaced``
    a face is present but it is not the participant's: refacing tools paste
    one template face, so that face is nearly the same in many participants
    (far more alike than two people ever are, :data:`CLUSTER_SIMILARITY`), and
    close to a known template face (:data:`TEMPLATE_SIMILARITY`).

Each verdict carries its evidence (renders with a face, per-feature counts,
cut-plane renders, similarity to the nearest other participant's face) and
a confidence (``high``, ``medium``, ``low``). The de-identification the
image's sidecar claims (``DeidentificationMethod``,
``DeidentificationMethodCodeSequence``, free-text hints in ``ImageType``,
``SeriesDescription``, ``ProtocolName``) is checked against the verdict,
and each image gets an action: ``deface again``, ``check by eye`` or
``fine``. Thresholds and the measured distributions behind them are at each
constant; ``benchmarks/audit.py`` measures how often the verdicts are right.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bids_app import presence as _presence

__all__ = [
    "ACTIONS", "Claim", "FeatureCounts", "ImageRecord", "ImageVerdict", "VERDICTS", "audit_images",
    "count_features", "load_templates", "mean_embedding", "mouth_skin", "nearest_other", "parse_claim",
    "profile_array", "scan_counts", "steward_sentence", "template_similarity",
]

VERDICTS = ("face", "partial", "removed", "replaced")
ACTIONS = ("deface again", "check by eye", "fine")

# ----------------------------------------------------------------------------- thresholds

#: A landmark's patch must be at least this fraction surface (not background
#: or a hole) for the feature to be there.
MIN_SEEN = 0.6
#: A feature is skin of its shape when at most this fraction of its patch lies
#: on one plane (:data:`bids_app.presence.FLAT_MM`). Measured (benchmarks/audit.py
#: --measure, dev seeds): intact faces, eyes median 0.55, mouth 0.5, nose 0.2;
#: plane-cut patches 0.95-1.0.
MAX_FLAT = {"EyeLeft": 0.85, "EyeRight": 0.85, "Nose": 0.8, "Mouth": 0.85}
#: A render shows a cut plane where a face should be when this fraction of
#: the face disc lies on one plane (intact faces below 0.2).
CUT_FLAT = 0.6
#: The nose is there when it stands this far out of the face (mm); the scan
#: decision's own threshold (:data:`bids_app.presence.MIN_RELIEF_MM`).
NOSE_RELIEF_MM = 8.0
#: Eye-to-mouth distances (mm) of a human face (lips where a mouth should be).
EYE_MOUTH_MM = (35.0, 95.0)
#: The mouth must also be skin in the scan's 3D profile: in this box of the
#: face frame (mm from the nose tip: right, superior), at least
#: :data:`MOUTH_SKIN_FRACTION` of the cells within :data:`MOUTH_DEPTH_MM`
#: behind the nose tip. A field of view or a cut ending below the nose
#: leaves little there (measured, heads cut 12 or 20 mm below the nose tip and
#: Colin27: 0-33% skin; intact faces: 59-100%, but 0% and 8% on two dim hard-mode
#: faces), though the detector still puts mouth corners on whatever is below
#: the nose in some renders.
MOUTH_BOX = ((-20.0, 20.0), (-40.0, -20.0))
MOUTH_DEPTH_MM = 50.0
MOUTH_SKIN_FRACTION = 0.5
#: ... unless the renders outweigh the profile: a mouth found (skin of its shape, at a human
#: eye-to-mouth distance) in at least this fraction of the renders stays, whatever the profile
#: (a dim, noisy lower face can fall apart in the head mask, and so in the profile, while the
#: renders still show lips). Measured per scan with a face decided (benchmarks/audit.py
#: --measure; dev seeds 0, 1, 2 with --n 8, default and hard mode, and --heads), mouth found in
#: k of 10 renders: heads whose field of view ends at or below the nose (cut 12 mm below the tip:
#: 0, 0, 1, 2; cut 20 mm below: 0, 0, 0, 5; Colin27: 0) and plane cuts with a face decided
#: (2, 2, 5, 5) at most 5; intact faces (48 simulated, 3 real heads) at least 7, and the two whose
#: profile vetoes the mouth (hard mode, 8% and 0% skin) 8 and 10. 0.7 (7 of 10) lies between.
MOUTH_RENDERS_KEEP = 0.7
#: A feature remains in a scan when it is found in at least this fraction
#: of the renders (rounded up, at least 2).
FEATURE_FRACTION = 0.3
#: Cosine similarity (mean face embeddings of the default model ``sface``)
#: to a known template face (:data:`TEMPLATES_FILE`: the faces refacing
#: tools paste) from which a face counts as that template. Measured
#: (benchmarks/audit.py --measure, dev data): real heads refaced with that
#: template 0.61-0.81; faces of people (real heads intact or cut, simulated
#: seeds 0 and 1) at most 0.58, so 0.65 leaves a margin (the refaced heads
#: at 0.61 are then left to the other signs).
TEMPLATE_SIMILARITY = 0.65
#: Cosine similarity between two participants' faces from which they count
#: as one pasted face; :data:`REPLACED_CLUSTER` other participants that close
#: make a cluster. Measured: simulated participants made from one base head
#: (relatives) up to 0.86, different real people at most 0.6.
CLUSTER_SIMILARITY = 0.9
REPLACED_CLUSTER = 2
#: The template faces, per face model (checked against the model's recognizer file).
TEMPLATES_FILE = Path(__file__).with_name("audit_templates.json")

_FEATURE_NAMES = {"eyes": "eyes", "nose": "nose", "mouth": "mouth"}


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ImageRecord:
    """What the participant level wrote about one anatomical image (plain data)."""

    participant: str  # label without "sub-"
    image: str  # source image name without extension, e.g. sub-01_ses-1_T1w
    suffix: str
    session: str | None = None
    presence: Mapping | None = None  # FacePresence of the embedding sidecar
    rows: Sequence[Mapping] = ()  # embedding sidecar Rows (per render)
    metadata: Mapping | None = None  # SourceMetadata; None: written by an older facerisk
    profile: np.ndarray | None = None  # FaceProfile (profile_array); None: older outputs
    counts: FeatureCounts | None = None  # scan_counts(rows, profile) when computed on loading


@dataclass(frozen=True)
class Claim:
    """What the sidecar says about de-identification."""

    claimed: bool | None  # None: unknown (older outputs without the metadata)
    kind: str  # "deface", "reface", "skull strip", "header", "unspecified", "" (no claim)
    method: str  # short text for the tables

    @property
    def text(self) -> str:
        if self.claimed is None:
            return "unknown"
        return f"yes: {self.method}" if self.claimed else "no"


_HINTS = (
    ("reface", re.compile(r"re-?fac|mri_reface|afni_refacer|refacer", re.I)),
    ("deface", re.compile(r"de-?fac|pydeface|mri_deface|fsl_deface|quickshear|mideface|face.?mask|"
                          r"face.?remov|mask_face|\bfacemask", re.I)),
    ("skull strip", re.compile(r"skull.?strip|brain.?extract|\bbet\b|synthstrip", re.I)),
)
_ANONYMISED = re.compile(r"de-?ident|anonymi[sz]|pseudonymi[sz]", re.I)
#: DICOM PS3.16 CID 7050 code of the option that removes recognisable visual features (faces).
_VISUAL_FEATURES_CODE = "113102"


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_text(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return str(value)


def _kind(text: str) -> str:
    for kind, pattern in _HINTS:
        if pattern.search(text):
            return kind
    return ""


def parse_claim(metadata: Mapping | None) -> Claim:
    """The de-identification an image's sidecar claims (see :data:`bids_app.workflows.participant.CLAIM_FIELDS`).

    ``DeidentificationMethod`` or ``DeidentificationMethodCodeSequence``
    present: a claim (its kind from the text: deface, reface, skull strip;
    the DICOM option "Clean Recognizable Visual Features" counts as
    defacing; other codes alone as header de-identification). Otherwise a
    free-text hint ("defaced" in ``ImageType``, "refaced" in the series
    description, ...) is a claim of that kind. ``None`` (outputs of an older
    facerisk) is unknown.
    """
    if metadata is None:
        return Claim(None, "", "unknown")
    method = _text(metadata.get("DeidentificationMethod")).strip()
    codes = metadata.get("DeidentificationMethodCodeSequence")
    code_list = codes if isinstance(codes, list) else [codes] if isinstance(codes, Mapping) else []
    code_text = "; ".join(str(c.get("CodeMeaning") or c.get("CodeValue")) for c in code_list
                          if isinstance(c, Mapping))
    if method or code_list:
        kind = _kind(method) or _kind(code_text)
        if not kind and any(isinstance(c, Mapping) and (str(c.get("CodeValue")) == _VISUAL_FEATURES_CODE
                                                         or "visual feature" in str(c.get("CodeMeaning", "")).lower())
                            for c in code_list):
            kind = "deface"
        kind = kind or ("header" if code_list and not method else "unspecified")
        return Claim(True, kind, method or code_text or "DeidentificationMethodCodeSequence")
    for key in ("ImageType", "SeriesDescription", "ProtocolName", "ImageComments", "Defaced"):
        value = metadata.get(key)
        if value in (None, False, "", []):
            continue
        text = _text(value) if key != "Defaced" else f"defaced {_text(value) if value is not True else ''}"
        kind = _kind(text)
        if kind:
            return Claim(True, kind, f"{key}: {text.strip()}")
        if _ANONYMISED.search(text):
            return Claim(True, "unspecified", f"{key}: {text.strip()}")
    return Claim(False, "", "")


# ----------------------------------------------------------------------------- per-feature evidence


@dataclass(frozen=True)
class FeatureCounts:
    """Per scan: renders with a detection, and renders in which each feature is skin of its shape."""

    renders: int
    detected: int  # renders with a detection (counted or rejected)
    counted: int  # renders with a face counted by the scan decision
    eyes: int
    nose: int
    mouth: int
    cut: int  # renders showing a plane where the face should be
    measured: bool  # False: outputs of an older facerisk, without per-feature measures
    mouth_skin: float | None = None  # fraction of the profile's mouth box that is skin (None: no profile)

    def need(self) -> int:
        return max(int(np.ceil(FEATURE_FRACTION * self.renders - 1e-9)), 2)

    def keep_mouth(self) -> int:
        """Renders with the mouth from which it stays whatever the 3D profile (:data:`MOUTH_RENDERS_KEEP`)."""
        return max(int(np.ceil(MOUTH_RENDERS_KEEP * self.renders - 1e-9)), self.need() + 1)

    def profile_lacks_mouth(self) -> bool:
        """The scan's 3D profile has too little skin where the mouth should be (:data:`MOUTH_SKIN_FRACTION`)."""
        return self.mouth_skin is not None and self.mouth_skin < MOUTH_SKIN_FRACTION

    def mouth_outweighs_profile(self) -> bool:
        """The profile has no skin where the mouth should be, but the renders show it too often to doubt."""
        return self.profile_lacks_mouth() and self.mouth >= self.keep_mouth()

    def remaining(self) -> list[str]:
        need = self.need()
        found = [name for name in ("eyes", "nose", "mouth") if getattr(self, name) >= need]
        if "mouth" in found and self.profile_lacks_mouth() and not self.mouth_outweighs_profile():
            found.remove("mouth")
        return found


def mouth_skin(profile: np.ndarray | None) -> float | None:
    """Fraction of the profile's mouth box (:data:`MOUTH_BOX`) that is skin near the face
    (``profile``: :func:`bids_app.presence.face_profile`, on :func:`~bids_app.presence.profile_grid`)."""
    if profile is None:
        return None
    xs, zs = _presence.profile_grid()
    if profile.shape != (zs.size, xs.size):
        return None
    (x0, x1), (z0, z1) = MOUTH_BOX
    box = profile[np.ix_((zs >= z0) & (zs <= z1), (xs >= x0) & (xs <= x1))]
    return float(np.mean(np.isfinite(box) & (box >= -MOUTH_DEPTH_MM)))


def _num(value) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _feature_ok(features: Mapping, name: str) -> bool:
    seen = _num((features.get("Seen") or {}).get(name))
    flat = _num((features.get("Flat") or {}).get(name))
    return bool(seen >= MIN_SEEN and flat <= MAX_FLAT[name])


def count_features(rows: Sequence[Mapping]) -> FeatureCounts:
    """Count, over one scan's renders (embedding sidecar ``Rows``), the renders showing each feature.

    Eyes: both eye landmarks on skin that is not one plane. Nose: its patch
    not flat and the nose standing :data:`NOSE_RELIEF_MM` out of the face.
    Mouth: its patch not flat and at a human eye-to-mouth distance. Cut: the
    face disc mostly one plane (:data:`CUT_FLAT`).
    """
    eyes = nose = mouth = cut = detected = counted = 0
    measured = False
    for row in rows:
        counted += bool(row.get("Detected"))
        features = row.get("Features")
        if not isinstance(features, Mapping):
            continue
        measured = True
        detected += 1
        relief = _num(row.get("NoseReliefMm") if row.get("Detected") else features.get("NoseReliefMm"))
        eye_mouth = _num(row.get("EyeMouthMm") if row.get("Detected") else features.get("EyeMouthMm"))
        eyes += _feature_ok(features, "EyeLeft") and _feature_ok(features, "EyeRight")
        nose += _feature_ok(features, "Nose") and relief >= NOSE_RELIEF_MM
        mouth += _feature_ok(features, "Mouth") and EYE_MOUTH_MM[0] <= eye_mouth <= EYE_MOUTH_MM[1]
        cut += _num(features.get("FaceFlat")) >= CUT_FLAT
    return FeatureCounts(len(rows), detected, counted, eyes, nose, mouth, cut, measured)


def scan_counts(rows: Sequence[Mapping], profile: np.ndarray | None, with_metadata: bool) -> FeatureCounts:
    """:func:`count_features` of a scan's rows, with the mouth check of its 3D profile: all the
    audit needs of the per-render evidence (the group level keeps this, not the rows, in memory)."""
    counts = count_features(rows)
    if with_metadata and not counts.measured and not counts.counted:  # no detection at all
        counts = FeatureCounts(counts.renders, 0, counts.counted, 0, 0, 0, 0, True)
    return dataclasses.replace(counts, mouth_skin=mouth_skin(profile))


# ----------------------------------------------------------------------------- similarity


def mean_embedding(vectors: np.ndarray) -> np.ndarray | None:
    """The L2-normalised mean of the rows with a face (None when no row has one)."""
    vectors = np.asarray(vectors, float)
    ok = np.isfinite(vectors).all(axis=1) if vectors.size else np.zeros(len(vectors), bool)
    if not ok.any():
        return None
    mean = vectors[ok].mean(axis=0)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 0 else None


#: Images compared with all others at once in :func:`nearest_other` (memory: block x images x 8 bytes).
NEAREST_BLOCK = 128


def nearest_other(means: Sequence[np.ndarray | None], owners: Sequence[str],
                  threshold: float = CLUSTER_SIMILARITY) -> list[tuple[float | None, int, str | None]]:
    """Per image: the highest cosine similarity to an image of *another* participant, how many
    other participants have an image at least ``threshold`` similar, and who is nearest.

    Images of the same participant (two sessions of one person) are never
    compared: they are alike for the right reason. Computed by blocks of
    :data:`NEAREST_BLOCK` images, so memory stays bounded for 100k+ images.
    """
    index = [i for i, m in enumerate(means) if m is not None]
    out: list[tuple[float | None, int, str | None]] = [(None, 0, None)] * len(means)
    if len(index) < 2:
        return out
    matrix = np.stack([np.asarray(means[i], float) for i in index])
    names, codes = np.unique(np.array([str(owners[i]) for i in index]), return_inverse=True)
    for start in range(0, len(index), NEAREST_BLOCK):
        rows = np.arange(start, min(start + NEAREST_BLOCK, len(index)))
        sims = matrix[rows] @ matrix.T
        sims[codes[rows][:, None] == codes[None, :]] = -np.inf  # the participant's own images
        best = np.argmax(sims, axis=1)
        hit_row, hit_col = np.nonzero(sims >= threshold)
        pairs = np.unique(hit_row * len(names) + codes[hit_col])  # (row, other participant), once
        close = np.bincount(pairs // len(names), minlength=len(rows))
        for k, row in enumerate(rows):
            if np.isfinite(sims[k, best[k]]):
                out[index[row]] = (float(sims[k, best[k]]), int(close[k]), str(names[codes[best[k]]]))
    return out


def profile_array(profile: Mapping | None) -> np.ndarray | None:
    """The ``FaceProfile`` of an embedding sidecar as a float array (None when absent)."""
    if not isinstance(profile, Mapping) or not profile.get("AnteriorMm"):
        return None
    return np.array([[np.nan if v is None else float(v) for v in row] for row in profile["AnteriorMm"]], float)


def load_templates(model_info: Mapping | None) -> list[tuple[str, np.ndarray]]:
    """The known template faces for this face model (empty when none is bundled for it)."""
    try:
        data = json.loads(TEMPLATES_FILE.read_text())
    except (OSError, ValueError):
        return []
    info = model_info or {}
    entry = (data.get("Models") or {}).get(info.get("Name"))
    if not entry:
        return []
    ours = ((info.get("Files") or {}).get("recognizer") or {}).get("SHA256")
    if ours != (entry.get("Recognizer") or {}).get("SHA256"):
        return []
    return [(t["Name"], np.asarray(t["Embedding"], float)) for t in entry.get("Templates", [])]


def template_similarity(means: Sequence[np.ndarray | None],
                        templates: Sequence[tuple[str, np.ndarray]]) -> list[tuple[float | None, str | None]]:
    """Per image, the highest cosine similarity to a known template face, and which."""
    out: list[tuple[float | None, str | None]] = []
    for mean in means:
        if mean is None or not templates:
            out.append((None, None))
            continue
        sims = [float(mean @ (t / np.linalg.norm(t))) for _, t in templates]
        k = int(np.argmax(sims))
        out.append((sims[k], templates[k][0]))
    return out


# ----------------------------------------------------------------------------- verdicts


@dataclass
class ImageVerdict:
    """The audit of one image: verdict, confidence, evidence, claim and action."""

    participant: str
    session: str | None
    image: str
    suffix: str
    verdict: str
    confidence: str
    remaining: list[str]
    evidence: str
    claim: Claim
    action: str = ""
    reason: str = ""
    claimed_but_face: bool = False
    other_sequence_face: bool = False
    nearest_similarity: float | None = None
    nearest_participant: str | None = None
    counts: FeatureCounts | None = None
    n_alike: int = 0  # other participants' faces at least CLUSTER_SIMILARITY alike
    template_similarity: float | None = None
    template: str | None = None
    flags: list[str] = field(default_factory=list)
    cut_by_edge: bool = False
    """No face decided, but the image's edge cuts off the front of the head (:func:`_cut_by_edge`)."""
    noisy_background: bool = False
    """No face decided on a background of noise (:func:`_noisy_background`)."""

    def to_json(self) -> dict:
        c = self.counts
        return {
            "participant_id": f"sub-{self.participant}", "session": self.session, "image": self.image,
            "suffix": self.suffix, "verdict": self.verdict, "confidence": self.confidence,
            "remaining": self.remaining, "evidence": self.evidence,
            "claimed": self.claim.claimed, "claim_kind": self.claim.kind, "claim": self.claim.text,
            "action": self.action, "reason": self.reason, "claimed_but_face": self.claimed_but_face,
            "other_sequence_face": self.other_sequence_face, "flags": list(self.flags),
            "cut_by_edge": self.cut_by_edge, "noisy_background": self.noisy_background,
            "nearest_similarity": self.nearest_similarity,
            "nearest_participant": f"sub-{self.nearest_participant}" if self.nearest_participant else None,
            "n_alike": self.n_alike, "template_similarity": self.template_similarity, "template": self.template,
            "renders": c.renders if c else None, "renders_face": c.counted if c else None,
            "eyes": c.eyes if c and c.measured else None, "nose": c.nose if c and c.measured else None,
            "mouth": c.mouth if c and c.measured else None, "cut": c.cut if c and c.measured else None,
        }


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else "none"


def _face_decided(record: ImageRecord, counts: FeatureCounts) -> tuple[bool, int, int]:
    """The participant level's scan decision: face present, supporting renders, renders needed."""
    presence = record.presence
    if presence is None:  # outputs older than the scan decision: the renders with a face decide
        need = _presence.min_support(counts.renders)
        return counts.counted >= need, counts.counted, need
    return (bool(presence.get("FacePresent")), int(presence.get("Support") or 0),
            int(presence.get("MinSupport") or 1))


def _cut_by_edge(record: ImageRecord) -> bool:
    """The participant level decided no face while the image's edge cuts off the front of the head
    (``FacePresence.CutByImageEdge``, :func:`bids_app.presence.scan_decision`; absent in older outputs)."""
    presence = record.presence or {}
    return bool(presence.get("CutByImageEdge")) and not presence.get("FacePresent")


def _noisy_background(record: ImageRecord) -> bool:
    """The participant level decided no face on an image whose background is noise (an MP2RAGE UNI
    image or a very noisy scan; ``FacePresence.NoisyBackground``, :mod:`bids_app.mri.background`;
    absent in older outputs)."""
    presence = record.presence or {}
    return bool(presence.get("NoisyBackground")) and not presence.get("FacePresent")


def _verdict(record: ImageRecord, counts: FeatureCounts, similar: tuple[float | None, int, str | None],
             template: tuple[float | None, str | None], claim: Claim):
    """``(verdict, confidence, remaining features, evidence text)`` for one image."""
    face, support, need = _face_decided(record, counts)
    review = bool((record.presence or {}).get("Review"))
    remaining = counts.remaining() if counts.measured else (["eyes", "nose", "mouth"] if face else [])
    sim, close, nearest = similar
    parts = [f"{counts.counted}/{counts.renders} renders with a face"]
    if counts.measured:
        skin = ""
        if counts.mouth_skin is not None:
            skin = f" (mouth region {100 * counts.mouth_skin:.0f}% skin in 3D"
            if counts.mouth_outweighs_profile():
                skin += f", outweighed by the mouth in {counts.mouth} of {counts.renders} renders"
            skin += ")"
        parts.append(f"eyes {counts.eyes}, nose {counts.nose}, mouth {counts.mouth} renders{skin}")
        if counts.cut:
            parts.append(f"a cut plane in {counts.cut}")
    else:
        parts.append("no per-feature measures (older outputs)")
    if _cut_by_edge(record):
        parts.append(f"the image's edge cuts off {record.presence.get('FaceCutMm2') or 0:.0f} mm^2 of the "
                     "front of the head")
    if _noisy_background(record):
        parts.append(f"the background is noise (roughness {record.presence.get('BackgroundRoughness') or 0:.2f})"
                     + ("; the head was masked from the image's smoothness"
                        if record.presence.get("MaskFromSmoothness") else ""))
    t_sim, t_name = template
    if sim is not None:
        parts.append(f"similarity to the nearest other participant's face {sim:.2f}"
                     + (f" ({close} at least {CLUSTER_SIMILARITY:g})" if close else ""))
    if t_sim is not None:
        parts.append(f"similarity to a template face ({t_name}) {t_sim:.2f}")
    evidence = "; ".join(parts)

    if face:
        is_template = t_sim is not None and t_sim >= TEMPLATE_SIMILARITY
        in_cluster = close >= REPLACED_CLUSTER
        if is_template or in_cluster or claim.kind == "reface":
            # measured signs: a face like a known template's, a cluster of alike faces. Both, or one
            # and a sidecar that says the image was de-identified: high. One sign alone (relatives, one
            # person enrolled again) or the sidecar's refacing claim alone (real refacers paste faces
            # unknown here; a failed refacing leaves the participant's face): medium, a person looks.
            signs = int(is_template) + int(in_cluster)
            confidence = "high" if signs == 2 or (signs and claim.claimed) else "medium"
            if claim.kind == "reface":
                evidence += "; the sidecar says it was refaced"
            return "replaced", confidence, remaining, evidence
        missing = [f for f in ("eyes", "nose", "mouth") if f not in remaining]
        if counts.measured and (missing or counts.cut >= counts.need()):
            if not remaining:  # a face decided, yet no feature passes: look at it
                return "partial", "low", remaining, evidence
            return "partial", "medium", remaining, evidence
        margin = support - need
        confidence = "high" if margin >= 2 else "medium" if margin >= 1 else "low"
        if counts.measured and counts.mouth_outweighs_profile() and confidence == "high":
            confidence = "medium"  # the renders and the 3D profile disagree on the mouth
        return "face", confidence, remaining, evidence
    # No face decided: features that pass their shape test alone are not a face (measured:
    # the irregular surface a face mask leaves passes the eyes' flatness test in some renders).
    confidence = "low" if review else "medium" if counts.detected > counts.need() else "high"
    return "removed", confidence, [], evidence


def _action(v: ImageVerdict) -> tuple[str, str]:
    if v.verdict == "face":
        if v.claimed_but_face:
            return "deface again", f"claims de-identification ({v.claim.method}) but a face is reconstructable"
        if v.other_sequence_face:
            return "deface again", "a face is reconstructable while this participant's T1w was de-identified"
        return "deface again", "a face is reconstructable"
    if v.verdict == "partial":
        what = f"{_join(v.remaining)} remain" if v.remaining else "traces of a face remain"
        return "check by eye", what + (f"; claims de-identification ({v.claim.method})" if v.claim.claimed else "")
    if v.verdict == "replaced" and v.confidence != "high":
        if v.claim.kind == "reface" and not (v.n_alike >= REPLACED_CLUSTER or (
                v.template_similarity or -1.0) >= TEMPLATE_SIMILARITY):
            return "check by eye", ("the sidecar says refaced, but the face is not measured as a known "
                                    "template's or as shared with other participants: check that it is not "
                                    "the participant's own")
        return "check by eye", ("a face like a refacing template's or like several other participants', "
                                "but the sidecar does not say it was de-identified")
    if v.confidence == "low" and v.cut_by_edge:
        return "check by eye", ("no face decided, but the image's field of view cuts off the front of the head: "
                                "a face cut by the image's edge can still be recognisable")
    if v.confidence == "low" and v.noisy_background:
        return "check by eye", ("no face decided, but the image's background is noise (an MP2RAGE UNI image or "
                                "a very noisy scan), so the head's skin is less certain: look at the renders "
                                "(for an MP2RAGE, audit the second inversion image too)")
    if v.confidence == "low":
        return "check by eye", "no face decided, but some renders found a nose in 3D"
    if v.verdict == "replaced":
        return "fine", "a template face (refaced): not the participant's"
    return "fine", "no face"


def audit_images(records: Sequence[ImageRecord], means: Sequence[np.ndarray | None],
                 templates: Sequence[tuple[str, np.ndarray]] = ()) -> list[ImageVerdict]:
    """Verdicts, claims checked and actions for every image (same order as ``records``).

    ``means``: each image's :func:`mean_embedding` (None without a face);
    ``templates``: known template faces of the same face model (:func:`load_templates`).
    """
    owners = [r.participant for r in records]
    similar = nearest_other(means, owners)
    all_counts = [record.counts or scan_counts(record.rows, record.profile, record.metadata is not None)
                  for record in records]
    near_template = template_similarity(means, templates)
    verdicts = []
    for record, counts, sim, template in zip(records, all_counts, similar, near_template):
        claim = parse_claim(record.metadata)
        verdict, confidence, remaining, evidence = _verdict(record, counts, sim, template, claim)
        verdicts.append(ImageVerdict(
            record.participant, record.session, record.image, record.suffix, verdict, confidence, remaining,
            evidence, claim, claimed_but_face=bool(claim.claimed) and verdict in ("face", "partial"),
            nearest_similarity=sim[0], nearest_participant=sim[2], counts=counts, n_alike=sim[1],
            template_similarity=template[0], template=template[1], cut_by_edge=_cut_by_edge(record),
            noisy_background=_noisy_background(record)))
    # other sequences that show a face while the same participant's (and session's) T1w was de-identified
    deidentified = {(v.participant, v.session) for v in verdicts if v.suffix == "T1w" and (
        v.verdict in ("removed", "replaced") or v.claim.claimed)}
    for v in verdicts:
        v.other_sequence_face = (v.suffix != "T1w" and v.verdict in ("face", "partial")
                                 and (v.participant, v.session) in deidentified)
        v.action, v.reason = _action(v)
        if v.other_sequence_face and "T1w" not in v.reason:
            v.reason += "; this participant's T1w was de-identified"
        if v.claimed_but_face:
            v.flags.append("claims de-identification but shows a face")
        if v.other_sequence_face:
            v.flags.append("shows a face while the T1w was de-identified")
    return verdicts


def priority(v: ImageVerdict) -> tuple:
    """Sort key: claimed-but-face first, then other sequences with a face, then by action."""
    return (not v.claimed_but_face, not v.other_sequence_face, ACTIONS.index(v.action),
            v.participant, v.session or "", v.image)


def action_counts(verdicts: Sequence[ImageVerdict]) -> dict:
    """Counts per verdict, per action and of the flags, for the summary."""
    return {
        "n_images": len(verdicts),
        "n_participants": len({v.participant for v in verdicts}),
        "verdicts": {k: sum(v.verdict == k for v in verdicts) for k in VERDICTS},
        "actions": {k: sum(v.action == k for v in verdicts) for k in ACTIONS},
        "claimed": sum(bool(v.claim.claimed) for v in verdicts),
        "claim_unknown": sum(v.claim.claimed is None for v in verdicts),
        "claimed_but_face": sum(v.claimed_but_face for v in verdicts),
        "other_sequence_face": sum(v.other_sequence_face for v in verdicts),
    }


def steward_sentence(counts: Mapping, version: str, date: str) -> str:
    """One sentence with the numbers, for a data-sharing request."""
    n, people = counts["n_images"], counts["n_participants"]
    again, check, fine = (counts["actions"][k] for k in ACTIONS)

    def pct(k: int) -> str:
        return f"{100.0 * k / n:.1f}%" if n else "0%"

    images = "image" if n == 1 else "images"
    return (f"Of {n} anatomical {images} from {people} participant{'s' if people != 1 else ''}, "
            f"{again} ({pct(again)}) still show{'s' if again == 1 else ''} a reconstructable face and must be "
            f"defaced again, {check} need{'s' if check == 1 else ''} a visual check, and {fine} show"
            f"{'s' if fine == 1 else ''} no face or a replaced face (facerisk {version}, {date}).")
