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

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ACTIONS", "Claim", "FeatureCounts", "ImageRecord", "ImageVerdict", "VERDICTS", "audit_images",
    "count_features", "mean_embedding", "nearest_other", "parse_claim", "profile_array", "profile_distances",
    "same_surface", "steward_sentence",
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
#: leaves nothing there, though the detector still puts mouth corners on
#: whatever is below the nose in some renders.
MOUTH_BOX = ((-20.0, 20.0), (-40.0, -20.0))
MOUTH_DEPTH_MM = 50.0
MOUTH_SKIN_FRACTION = 0.5
#: A feature remains in a scan when it is found in at least this fraction
#: of the renders (rounded up, at least 2).
FEATURE_FRACTION = 0.3
#: Two faces are the same surface (a refacing tool's template pasted on
#: both) when their 3D profiles (:func:`bids_app.presence.face_profile`)
#: differ by at most this RMS (mm), after taking out a plane (a tilt of the
#: face frame) and the worst tenth of the cells (hair, the edge of a paste).
#: Measured (benchmarks/audit.py --measure): see :func:`profile_distance`.
SAME_SURFACE_MM = 1.5
#: Fewest grid cells with surface in both profiles for a comparison.
MIN_PROFILE_CELLS = 150
#: Other participants with the same face surface needed for a confident
#: ``replaced`` (one alone is a pair: the same person enrolled twice, too).
REPLACED_CLUSTER = 2
#: Cosine similarity of mean face embeddings reported as evidence only: it
#: does not separate refaced faces from relatives (measured on simulated
#: cohorts made from three base heads: different participants up to 0.86,
#: refaced real heads 0.58-0.77 to each other).
REPLACED_SIMILARITY = 0.75
#: Beyond this many images, profiles are compared with each image's
#: nearest neighbours by embedding only (the cost grows as the square).
PROFILE_ALL_PAIRS = 3000
PROFILE_NEIGHBOURS = 50

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

    def remaining(self) -> list[str]:
        need = self.need()
        found = [name for name in ("eyes", "nose", "mouth") if getattr(self, name) >= need]
        if self.mouth_skin is not None and self.mouth_skin < MOUTH_SKIN_FRACTION and "mouth" in found:
            found.remove("mouth")
        return found


def mouth_skin(profile: np.ndarray | None, step: float = 4.0, right=(-36.0, 36.0),
               superior=(-48.0, 40.0)) -> float | None:
    """Fraction of the profile's mouth box (:data:`MOUTH_BOX`) that is skin near the face."""
    if profile is None:
        return None
    xs = np.arange(right[0], right[1] + 1e-6, step)
    zs = np.arange(superior[0], superior[1] + 1e-6, step)
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


def profile_array(profile: Mapping | None) -> np.ndarray | None:
    """The ``FaceProfile`` of an embedding sidecar as a float array (None when absent)."""
    if not isinstance(profile, Mapping) or not profile.get("AnteriorMm"):
        return None
    return np.array([[np.nan if v is None else float(v) for v in row] for row in profile["AnteriorMm"]], float)


def _design(shape: tuple[int, int]) -> np.ndarray:
    zs, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return np.stack([np.ones(zs.size), xs.ravel() - shape[1] / 2, zs.ravel() - shape[0] / 2], axis=1)


def profile_distances(one: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Distance (mm) of profile ``one`` (rows x cols) to each of ``others`` (n x rows x cols).

    Per pair: the difference on the cells where both have surface, minus its
    least-squares plane (a tilt or shift of the face frame), then the RMS of
    the smallest 90% of the residuals. NaN with fewer than
    :data:`MIN_PROFILE_CELLS` common cells.
    """
    design = _design(one.shape)
    diff = (others - one[None]).reshape(len(others), -1)
    ok = np.isfinite(diff)
    out = np.full(len(others), np.nan)
    for k in np.flatnonzero(ok.sum(axis=1) >= MIN_PROFILE_CELLS):
        a, b = design[ok[k]], diff[k, ok[k]]
        residual = np.abs(b - a @ np.linalg.lstsq(a, b, rcond=None)[0])
        kept = np.sort(residual)[: max(int(0.9 * residual.size), 1)]
        out[k] = float(np.sqrt(np.mean(kept ** 2)))
    return out


def same_surface(profiles: Sequence[np.ndarray | None], owners: Sequence[str], faces: Sequence[bool],
                 means: Sequence[np.ndarray | None]) -> list[tuple[float | None, int, str | None]]:
    """Per image with a face: the smallest profile distance to a face of *another* participant,
    how many other participants have a face within :data:`SAME_SURFACE_MM`, and the nearest.

    Images of one participant (two sessions) are never compared. With more than
    :data:`PROFILE_ALL_PAIRS` faces, only each image's :data:`PROFILE_NEIGHBOURS`
    nearest faces by embedding are compared.
    """
    out: list[tuple[float | None, int, str | None]] = [(None, 0, None)] * len(profiles)
    index = [i for i, (p, f) in enumerate(zip(profiles, faces)) if f and p is not None]
    if len(index) < 2 or len({p.shape for p in (profiles[i] for i in index)}) != 1:
        return out
    stack = np.stack([profiles[i] for i in index])
    who = np.array([owners[i] for i in index])
    candidates = None
    if len(index) > PROFILE_ALL_PAIRS:
        dim = next(m.size for m in means if m is not None)
        vec = np.stack([means[i] if means[i] is not None else np.zeros(dim) for i in index])
        sims = vec @ vec.T
        candidates = np.argsort(-sims, axis=1)[:, : PROFILE_NEIGHBOURS + 1]
    for row, i in enumerate(index):
        pick = np.arange(len(index)) if candidates is None else candidates[row]
        pick = pick[who[pick] != owners[i]]
        if not pick.size:
            continue
        dist = profile_distances(stack[row], stack[pick])
        if not np.isfinite(dist).any():
            continue
        best = int(np.nanargmin(dist))
        close = {str(w) for w in who[pick][dist <= SAME_SURFACE_MM]}
        out[i] = (float(dist[best]), len(close), str(who[pick][best]))
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
    surface_distance: float | None = None
    same_surface: int = 0
    surface_participant: str | None = None
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
            "surface_distance": self.surface_distance, "same_surface": self.same_surface,
            "surface_participant": f"sub-{self.surface_participant}" if self.surface_participant else None,
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
        need = max(int(np.ceil(0.4 * counts.renders - 1e-9)), 1)
        return counts.counted >= need, counts.counted, need
    return (bool(presence.get("FacePresent")), int(presence.get("Support") or 0),
            int(presence.get("MinSupport") or 1))


def _verdict(record: ImageRecord, counts: FeatureCounts, similar: tuple[float | None, int, str | None],
             surface: tuple[float | None, int, str | None]):
    """``(verdict, confidence, remaining features, evidence text)`` for one image."""
    face, support, need = _face_decided(record, counts)
    review = bool((record.presence or {}).get("Review"))
    remaining = counts.remaining() if counts.measured else (["eyes", "nose", "mouth"] if face else [])
    sim, close, nearest = similar
    parts = [f"{counts.counted}/{counts.renders} renders with a face"]
    if counts.measured:
        parts.append(f"eyes {counts.eyes}, nose {counts.nose}, mouth {counts.mouth} renders"
                     + (f" (mouth region {100 * counts.mouth_skin:.0f}% skin in 3D)"
                        if counts.mouth_skin is not None else ""))
        if counts.cut:
            parts.append(f"a cut plane in {counts.cut}")
    else:
        parts.append("no per-feature measures (older outputs)")
    distance, same, _ = surface
    if distance is not None:
        parts.append(f"face surface {distance:.1f} mm from the nearest other participant's"
                     + (f", the same surface as {same} other participant{'s' if same != 1 else ''}" if same else ""))
    elif face and record.profile is None:
        parts.append("no 3D profile (older outputs): refacing not checked")
    if sim is not None:
        parts.append(f"embedding similarity to the nearest other participant's face {sim:.2f}")
    evidence = "; ".join(parts)

    if face:
        if same >= 1:
            confidence = "high" if same >= REPLACED_CLUSTER else "low"
            return "replaced", confidence, remaining, evidence
        missing = [f for f in ("eyes", "nose", "mouth") if f not in remaining]
        if counts.measured and (missing or counts.cut >= counts.need()):
            if not remaining:  # a face decided, yet no feature passes: look at it
                return "partial", "low", remaining, evidence
            return "partial", "medium", remaining, evidence
        margin = support - need
        confidence = "high" if margin >= 2 else "medium" if margin >= 1 else "low"
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
    if v.confidence == "low":
        if v.verdict == "replaced":
            return "check by eye", ("the face surface is the same as one other participant's: a pasted "
                                    "template, or the same person twice")
        return "check by eye", "no face decided, but some renders found a nose in 3D"
    if v.verdict == "replaced":
        return "fine", "a template face (refaced): not the participant's"
    return "fine", "no face"


def audit_images(records: Sequence[ImageRecord], means: Sequence[np.ndarray | None]) -> list[ImageVerdict]:
    """Verdicts, claims checked and actions for every image (same order as ``records``).

    ``means``: each image's :func:`mean_embedding` (None without a face).
    """
    owners = [r.participant for r in records]
    similar = nearest_other(means, owners)
    all_counts = []
    for record in records:
        counts = count_features(record.rows)
        if record.metadata is not None and not counts.measured:  # current outputs, no detection at all
            counts = FeatureCounts(counts.renders, 0, counts.counted, 0, 0, 0, 0, True)
        counts = dataclasses.replace(counts, mouth_skin=mouth_skin(record.profile))
        all_counts.append(counts)
    faces = [_face_decided(r, c)[0] for r, c in zip(records, all_counts)]
    surfaces = same_surface([r.profile for r in records], owners, faces, means)
    verdicts = []
    for record, counts, sim, surface in zip(records, all_counts, similar, surfaces):
        verdict, confidence, remaining, evidence = _verdict(record, counts, sim, surface)
        claim = parse_claim(record.metadata)
        verdicts.append(ImageVerdict(
            record.participant, record.session, record.image, record.suffix, verdict, confidence, remaining,
            evidence, claim, claimed_but_face=bool(claim.claimed) and verdict in ("face", "partial"),
            nearest_similarity=sim[0], nearest_participant=sim[2], counts=counts,
            surface_distance=surface[0], same_surface=surface[1], surface_participant=surface[2]))
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
