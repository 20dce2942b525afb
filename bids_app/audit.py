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
    (far more alike than two people ever are, :data:`REPLACED_SIMILARITY`).

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

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ACTIONS", "Claim", "FeatureCounts", "ImageRecord", "ImageVerdict", "VERDICTS", "audit_images",
    "count_features", "mean_embedding", "nearest_other", "parse_claim", "steward_sentence",
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
#: A feature remains in a scan when it is found in at least this fraction
#: of the renders (rounded up, at least 2).
FEATURE_FRACTION = 0.3
#: Cosine similarity of mean MRI-face embeddings (default model ``sface``)
#: above which two images of different participants show the same face: a
#: pasted template. Measured: different people (simulated, default and
#: hard mode, and real heads) at most ~0.6; refaced pairs 0.8+.
REPLACED_SIMILARITY = 0.75
#: Other participants' faces that must be that close for a confident
#: ``replaced`` (one is a pair: the same person enrolled twice looks alike too).
REPLACED_CLUSTER = 2

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

    def need(self) -> int:
        return max(int(np.ceil(FEATURE_FRACTION * self.renders - 1e-9)), 2)

    def remaining(self) -> list[str]:
        need = self.need()
        return [name for name in ("eyes", "nose", "mouth") if getattr(self, name) >= need]


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


def nearest_other(means: Sequence[np.ndarray | None], owners: Sequence[str],
                  threshold: float = REPLACED_SIMILARITY) -> list[tuple[float | None, int, str | None]]:
    """Per image: the highest cosine similarity to an image of *another* participant, how many
    other participants have an image at least ``threshold`` similar, and who is nearest.

    Images of the same participant (two sessions of one person) are never
    compared: they are alike for the right reason.
    """
    index = [i for i, m in enumerate(means) if m is not None]
    out: list[tuple[float | None, int, str | None]] = [(None, 0, None)] * len(means)
    if len(index) < 2:
        return out
    matrix = np.stack([means[i] for i in index])
    sims = matrix @ matrix.T
    who = np.array([owners[i] for i in index])
    for row, i in enumerate(index):
        other = who != owners[i]
        if not other.any():
            continue
        s = np.where(other, sims[row], -np.inf)
        best = int(np.argmax(s))
        close = {str(w) for w in who[other & (sims[row] >= threshold)]}
        out[i] = (float(s[best]), len(close), str(who[best]))
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
    flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        c = self.counts
        return {
            "participant_id": f"sub-{self.participant}", "session": self.session, "image": self.image,
            "suffix": self.suffix, "verdict": self.verdict, "confidence": self.confidence,
            "remaining": self.remaining, "evidence": self.evidence,
            "claimed": self.claim.claimed, "claim_kind": self.claim.kind, "claim": self.claim.text,
            "action": self.action, "reason": self.reason, "claimed_but_face": self.claimed_but_face,
            "other_sequence_face": self.other_sequence_face,
            "nearest_similarity": self.nearest_similarity,
            "nearest_participant": f"sub-{self.nearest_participant}" if self.nearest_participant else None,
            "renders": c.renders if c else None, "renders_face": c.counted if c else None,
            "eyes": c.eyes if c and c.measured else None, "nose": c.nose if c and c.measured else None,
            "mouth": c.mouth if c and c.measured else None, "cut": c.cut if c and c.measured else None,
        }


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else "none"


def _verdict(record: ImageRecord, counts: FeatureCounts, similar: tuple[float | None, int, str | None]):
    """``(verdict, confidence, remaining features, evidence text)`` for one image."""
    presence = record.presence
    if presence is None:  # outputs older than the scan decision: the renders with a face decide
        need = max(int(np.ceil(0.4 * counts.renders - 1e-9)), 1)
        presence = {"FacePresent": counts.counted >= need, "Support": counts.counted, "MinSupport": need}
    face = bool(presence.get("FacePresent"))
    support, need = int(presence.get("Support") or 0), int(presence.get("MinSupport") or 1)
    review = bool(presence.get("Review"))
    remaining = counts.remaining() if counts.measured else (["eyes", "nose", "mouth"] if face else [])
    sim, close, nearest = similar
    parts = [f"{counts.counted}/{counts.renders} renders with a face"]
    if counts.measured:
        parts.append(f"eyes {counts.eyes}, nose {counts.nose}, mouth {counts.mouth} renders")
        if counts.cut:
            parts.append(f"a cut plane in {counts.cut}")
    else:
        parts.append("no per-feature measures (older outputs)")
    if sim is not None:
        parts.append(f"nearest other participant's face {sim:.2f}"
                     + (f" ({close} at least {REPLACED_SIMILARITY:g})" if close else ""))
    evidence = "; ".join(parts)

    if face:
        if sim is not None and close >= 1 and sim >= REPLACED_SIMILARITY and len(remaining) >= 2:
            confidence = "high" if close >= REPLACED_CLUSTER else "low"
            return "replaced", confidence, remaining, evidence
        missing = [f for f in ("eyes", "nose", "mouth") if f not in remaining]
        if counts.measured and (missing or counts.cut >= counts.need()):
            if not remaining:  # a face decided, yet no feature passes: look at it
                return "partial", "low", remaining, evidence
            return "partial", "medium", remaining, evidence
        margin = support - need
        confidence = "high" if margin >= 2 else "medium" if margin >= 1 else "low"
        return "face", confidence, remaining, evidence
    if counts.measured and len(remaining) >= 2:
        return "partial", "low", remaining, evidence
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
    if v.confidence == "low":
        if v.verdict == "replaced":
            return "check by eye", ("the face is nearly the same as one other participant's: a pasted template, "
                                    "or the same person twice")
        return "check by eye", "no face decided, but some renders found a nose in 3D"
    if v.verdict == "replaced":
        return "fine", "a template face (refaced): not the participant's"
    return "fine", "no face"


def audit_images(records: Sequence[ImageRecord], means: Sequence[np.ndarray | None]) -> list[ImageVerdict]:
    """Verdicts, claims checked and actions for every image (same order as ``records``).

    ``means``: each image's :func:`mean_embedding` (None without a face).
    """
    similar = nearest_other(means, [r.participant for r in records])
    verdicts = []
    for record, sim in zip(records, similar):
        counts = count_features(record.rows)
        verdict, confidence, remaining, evidence = _verdict(record, counts, sim)
        claim = parse_claim(record.metadata)
        verdicts.append(ImageVerdict(
            record.participant, record.session, record.image, record.suffix, verdict, confidence, remaining,
            evidence, claim, claimed_but_face=bool(claim.claimed) and verdict in ("face", "partial"),
            nearest_similarity=sim[0], nearest_participant=sim[2], counts=counts))
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
