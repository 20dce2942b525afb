"""The MRI-only audit (bids_app.audit): claims read from sidecars, verdicts, actions, the sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bids_app import audit
from bids_app.audit import ImageRecord, audit_images, parse_claim

# ----------------------------------------------------------------------------- claims


@pytest.mark.parametrize("metadata, claimed, kind", [
    ({"DeidentificationMethod": ["pydeface 2.0.2"]}, True, "deface"),
    ({"DeidentificationMethod": "mri_reface 0.3"}, True, "reface"),
    ({"DeidentificationMethod": ["afni_refacer_run"]}, True, "reface"),
    ({"DeidentificationMethodCodeSequence": [{"CodeValue": "113102", "CodingSchemeDesignator": "DCM",
                                              "CodeMeaning": "Clean Recognizable Visual Features Option"}]},
     True, "deface"),
    ({"DeidentificationMethodCodeSequence": [{"CodeValue": "113100", "CodingSchemeDesignator": "DCM",
                                              "CodeMeaning": "Basic Application Confidentiality Profile"}]},
     True, "header"),
    ({"ImageType": ["DERIVED", "SECONDARY", "DEFACED"]}, True, "deface"),
    ({"SeriesDescription": "T1w_MPRAGE_refaced"}, True, "reface"),
    ({"ProtocolName": "t1_mprage_anonymized"}, True, "unspecified"),
    ({"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"], "SeriesDescription": "t1_mprage_sag"}, False, ""),
    ({"Defaced": False}, False, ""),
    ({}, False, ""),
])
def test_claims_are_read_from_the_bids_fields_and_free_text(metadata, claimed, kind):
    claim = parse_claim(metadata)
    assert (claim.claimed, claim.kind) == (claimed, kind)
    assert claim.text.startswith("yes" if claimed else "no")


def test_older_outputs_have_an_unknown_claim():
    claim = parse_claim(None)
    assert claim.claimed is None and claim.text == "unknown"


# ----------------------------------------------------------------------------- verdicts

FACE_FEATURES = {"Detection": "counted", "Seen": {"EyeLeft": 1.0, "EyeRight": 1.0, "Nose": 1.0, "Mouth": 1.0},
                 "Flat": {"EyeLeft": 0.55, "EyeRight": 0.6, "Nose": 0.2, "Mouth": 0.5}, "FaceFlat": 0.08}


def _rows(n_face: int, n: int = 10, mouth_flat: float = 0.5, face_flat: float = 0.08,
          rejected: int = 0, mouth_in: int | None = None) -> list[dict]:
    """``mouth_in``: renders (of those with a face) whose mouth is lips; in the others it is flat."""
    rows = []
    for i in range(n):
        if i < n_face:
            features = json.loads(json.dumps(FACE_FEATURES))
            features["Flat"]["Mouth"] = mouth_flat if mouth_in is None or i < mouth_in else 0.98
            features["FaceFlat"] = face_flat
            rows.append({"Detected": True, "Score": 0.9, "NoseReliefMm": 22.0, "EyeDistanceMm": 60.0,
                         "EyeMouthMm": 55.0, "Features": features})
        elif i < n_face + rejected:  # shading on a cut: flat everywhere, no nose
            flat = {k: 0.99 for k in ("EyeLeft", "EyeRight", "Nose", "Mouth")}
            rows.append({"Detected": False, "Score": None, "Features": {
                "Detection": "best rejected", "Seen": {k: 1.0 for k in flat}, "Flat": flat, "FaceFlat": 0.97,
                "NoseReliefMm": 1.0, "EyeDistanceMm": 15.0, "EyeMouthMm": 20.0}})
        else:
            rows.append({"Detected": False, "Score": None})
    return rows


def _record(label: str, n_face: int, metadata=None, suffix="T1w", session=None, profile=None, **kw) -> ImageRecord:
    present = n_face >= 4
    return ImageRecord(participant=label, image=f"sub-{label}_{suffix}", suffix=suffix, session=session,
                       presence={"FacePresent": present, "Support": n_face, "MinSupport": 4,
                                 "Review": not present and n_face > 0},
                       rows=_rows(n_face, **kw), metadata={} if metadata is None else metadata, profile=profile)


def _people(n: int, rng, dim: int = 128) -> list[np.ndarray]:
    """Mean embeddings of ``n`` distinct people (random directions: similarity near 0)."""
    v = rng.normal(size=(n, dim))
    return list(v / np.linalg.norm(v, axis=1, keepdims=True))


def test_face_partial_removed_from_the_per_feature_evidence():
    rng = np.random.default_rng(0)
    records = [_record("01", 10), _record("02", 9, mouth_flat=0.98), _record("03", 0, rejected=3),
               _record("04", 0)]
    means = _people(2, rng) + [None, None]
    got = audit_images(records, means)
    assert [v.verdict for v in got] == ["face", "partial", "removed", "removed"]
    assert got[0].remaining == ["eyes", "nose", "mouth"] and got[0].confidence == "high"
    assert got[1].remaining == ["eyes", "nose"]  # the mouth is a flat cut
    assert [v.action for v in got] == ["deface again", "check by eye", "fine", "fine"]
    assert "eyes and nose remain" in got[1].reason
    assert got[2].counts.cut == 3 and got[2].confidence in ("high", "medium")


def test_no_face_on_a_head_cut_by_the_image_edge_is_checked_by_eye():
    """The participant level decided no face, but the image's edge cuts off the front of the head
    (``CutByImageEdge``, a field of view ending inside the face): check by eye, saying why; a
    head the image holds whole with the same renders is fine."""
    cut, whole = _record("01", 0), _record("02", 0)
    cut.presence.update({"CutByImageEdge": True, "FaceCutMm2": 6320.0, "Review": True})
    got = audit_images([cut, whole], [None, None])
    assert [v.verdict for v in got] == ["removed", "removed"]
    assert got[0].action == "check by eye" and got[0].confidence == "low" and got[0].cut_by_edge
    assert "field of view cuts off the front of the head" in got[0].reason
    assert "6320 mm^2" in got[0].evidence and got[0].to_json()["cut_by_edge"] is True
    assert got[1].action == "fine" and not got[1].cut_by_edge


def test_no_face_on_a_noisy_background_is_checked_by_eye():
    """No face decided on an image whose background is noise (``NoisyBackground``, an MP2RAGE UNI
    image): check by eye, saying why; the same renders on a dark background are fine."""
    noisy, dark = _record("01", 0), _record("02", 0)
    noisy.presence.update({"NoisyBackground": True, "BackgroundRoughness": 0.27, "MaskFromSmoothness": True,
                           "Review": True})
    dark.presence.update({"NoisyBackground": False, "BackgroundRoughness": 0.0})
    got = audit_images([noisy, dark], [None, None])
    assert [v.verdict for v in got] == ["removed", "removed"]
    assert got[0].action == "check by eye" and got[0].confidence == "low" and got[0].noisy_background
    assert "MP2RAGE UNI" in got[0].reason and "(roughness 0.27); the head was masked" in got[0].evidence
    assert got[0].to_json()["noisy_background"] is True
    assert got[1].action == "fine" and not got[1].noisy_background


def _profile(rng, cut_below: float | None = None) -> np.ndarray:
    """A face profile (23 x 19 cells of 4 mm, mm from the nose tip), NaN below ``cut_below`` mm."""
    zs, xs = np.mgrid[-48:41:4, -36:37:4].astype(float)
    face = -0.004 * xs ** 2 - 0.003 * zs ** 2 - 25.0 + 25.0 * np.exp(-(xs ** 2 + zs ** 2) / 200.0)
    face = face + 0.3 * rng.normal(size=face.shape)
    if cut_below is not None:
        face[zs < cut_below] = np.nan
    return face


def _near(v: np.ndarray, rng, spread: float) -> np.ndarray:
    w = v + spread * rng.normal(size=v.size) / np.sqrt(v.size)
    return w / np.linalg.norm(w)


def test_a_pasted_template_face_is_replaced_but_two_sessions_of_one_person_are_not():
    rng = np.random.default_rng(1)
    template = _people(1, rng)[0]
    claim = {"DeidentificationMethod": ["mri_reface 0.3"]}
    records, means = [], []
    for i in range(4):  # refaced: near the template (and so near each other); one sidecar says nothing
        records.append(_record(f"r{i}", 10, metadata=claim if i else {}))
        means.append(_near(template, rng, 0.2))
    for i, person in enumerate(_people(6, rng)):
        for session in ("1", "2"):  # two scans of one person: alike, but one participant
            records.append(_record(f"p{i}", 10, session=session))
            means.append(_near(person, rng, 0.1))
    got = audit_images(records, means, templates=[("mean head", template)])
    assert [v.verdict for v in got[:4]] == ["replaced"] * 4
    assert all(v.confidence == "high" and v.action == "fine" and v.n_alike == 3 for v in got[1:4])
    assert all(v.verdict == "face" for v in got[4:])
    # without the template, the cluster alone: a claim makes it high, none medium (a person looks)
    alone = audit_images(records, means)
    assert [v.verdict for v in alone[:4]] == ["replaced"] * 4
    assert alone[0].confidence == "medium" and alone[0].action == "check by eye"
    assert alone[1].confidence == "high" and alone[1].action == "fine"


def test_one_face_like_the_template_is_replaced_a_lone_pair_is_not():
    rng = np.random.default_rng(2)
    template, same, other = _people(3, rng)
    records = [_record("01", 10, metadata={"DeidentificationMethod": ["afni_refacer_run"]}),
               _record("02", 10), _record("03", 10), _record("04", 10)]
    means = [_near(template, rng, 0.3), _near(same, rng, 0.1), _near(same, rng, 0.1), other]
    got = audit_images(records, means, templates=[("mean head", template)])
    assert [v.verdict for v in got] == ["replaced", "face", "face", "face"]
    assert got[0].confidence == "high" and got[0].template == "mean head"
    assert got[1].n_alike == 1  # one look-alike (relatives, one person twice): not a cluster


def test_the_bundled_template_matches_the_default_model_only():
    info = {"Name": "sface", "Files": {"recognizer": {"SHA256": json.loads(
        audit.TEMPLATES_FILE.read_text())["Models"]["sface"]["Recognizer"]["SHA256"]}}}
    templates = audit.load_templates(info)
    assert templates and templates[0][1].shape == (128,)
    assert audit.load_templates({"Name": "sface", "Files": {"recognizer": {"SHA256": "0" * 64}}}) == []
    assert audit.load_templates({"Name": "dlib"}) == []


def test_claimed_but_face_comes_first_and_other_sequences_are_flagged():
    rng = np.random.default_rng(3)
    claim = {"DeidentificationMethod": ["pydeface"]}
    records = [
        _record("01", 0, metadata=claim),  # defaced and fine
        _record("02", 10),  # a face, no claim
        _record("03", 10, metadata=claim),  # claims defacing, still a face
        _record("01", 10, suffix="FLAIR"),  # the FLAIR of a participant whose T1w was defaced
    ]
    means = [None] + _people(3, rng)
    got = audit_images(records, means)
    assert got[2].claimed_but_face and "claims de-identification (pydeface)" in got[2].reason
    assert got[3].other_sequence_face and not got[1].other_sequence_face
    first = sorted(got, key=audit.priority)
    assert [v.image for v in first[:2]] == ["sub-03_T1w", "sub-01_FLAIR"]
    counts = audit.action_counts(got)
    assert counts["claimed_but_face"] == 1 and counts["other_sequence_face"] == 1
    assert counts["actions"] == {"deface again": 3, "check by eye": 0, "fine": 1}


def test_older_outputs_without_measures_still_get_a_verdict():
    old = ImageRecord("01", "sub-01_FLAIR", "FLAIR", presence={"FacePresent": True, "Support": 9, "MinSupport": 4},
                      rows=[{"Detected": True, "Score": 0.9}] * 10, metadata=None)
    none = ImageRecord("02", "sub-02_FLAIR", "FLAIR", presence=None, rows=[{"Detected": False}] * 10, metadata=None)
    got = audit_images([old, none], [np.eye(4)[0], None])
    assert [v.verdict for v in got] == ["face", "removed"]
    assert got[0].claim.text == "unknown" and "older outputs" in got[0].evidence


def test_the_steward_sentence_has_the_numbers():
    counts = {"n_images": 120, "n_participants": 60,
              "actions": {"deface again": 3, "check by eye": 2, "fine": 115}}
    text = audit.steward_sentence(counts, "0.2.0", "2026-11-30")
    assert text == ("Of 120 anatomical images from 60 participants, 3 (2.5%) still show a reconstructable face "
                    "and must be defaced again, 2 need a visual check, and 115 show no face or a replaced face "
                    "(facerisk 0.2.0, 2026-11-30).")


def test_no_skin_below_the_nose_in_3d_means_no_mouth():
    """A field of view cut below the nose: the detector still places mouth corners in some renders
    (measured: at most 2 of 10), but the scan's 3D profile has no skin where the mouth should be:
    partial, eyes and nose."""
    rng = np.random.default_rng(5)
    got = audit_images([_record("01", 10, profile=_profile(rng, cut_below=-12.0), mouth_in=3),
                        _record("02", 10, profile=_profile(rng))], _people(2, rng))
    assert [v.verdict for v in got] == ["partial", "face"]
    assert got[0].remaining == ["eyes", "nose"] and got[0].counts.mouth_skin == 0.0
    assert got[0].counts.mouth == 3 >= got[0].counts.need()  # found often enough, but vetoed by the profile
    assert got[1].counts.mouth_skin == 1.0 and got[1].confidence == "high"


def test_a_mouth_in_most_renders_outweighs_the_profile():
    """A dim, noisy lower face falls apart in the head mask (no skin in the profile's mouth box)
    while the renders show lips: in at least MOUTH_RENDERS_KEEP of them, the mouth stays (face,
    medium confidence: the evidence disagrees); one render fewer and the profile decides."""
    rng = np.random.default_rng(7)
    keep = int(np.ceil(audit.MOUTH_RENDERS_KEEP * 10 - 1e-9))
    profile = _profile(rng, cut_below=-12.0)
    got = audit_images([_record("01", 10, profile=profile, mouth_in=10),
                        _record("02", 10, profile=profile, mouth_in=keep),
                        _record("03", 10, profile=profile, mouth_in=keep - 1)], _people(3, rng))
    assert [v.verdict for v in got] == ["face", "face", "partial"]
    assert got[0].remaining == ["eyes", "nose", "mouth"] and got[0].confidence == "medium"
    assert f"outweighed by the mouth in {keep} of 10 renders" in got[1].evidence
    assert got[2].remaining == ["eyes", "nose"] and "outweighed" not in got[2].evidence
    assert got[0].action == "deface again" and got[2].action == "check by eye"


def test_a_refacing_claim_alone_is_replaced_but_checked_by_eye():
    """Real refacers paste faces that are not bundled: a face whose sidecar says refaced, with no
    measured sign of a template, is called replaced, and a person checks it is not the participant's."""
    rng = np.random.default_rng(6)
    records = [_record("01", 10, metadata={"DeidentificationMethod": ["mri_reface 0.3.3"]}), _record("02", 10)]
    got = audit_images(records, _people(2, rng))
    assert [v.verdict for v in got] == ["replaced", "face"]
    assert got[0].confidence == "medium" and got[0].action == "check by eye"
    assert "not the participant's own" in got[0].reason and not got[0].claimed_but_face


def test_nearest_other_by_blocks_equals_all_pairs(monkeypatch):
    """Blocked (memory for 100k images) and all-pairs give the same nearest other participant and
    the same count of look-alike participants, never comparing one participant's own images."""
    rng = np.random.default_rng(3)
    template = rng.normal(size=32)
    means, owners = [], []
    for i in range(40):
        person = rng.normal(size=32)
        for _ in range(1 + (i % 3 == 0)):  # every third participant has two sessions
            vector = (template * 4 if i < 8 else person) + rng.normal(scale=0.3, size=32)
            means.append(vector / np.linalg.norm(vector))
            owners.append(f"{i:02d}")
    means.insert(5, None)
    owners.insert(5, "xx")

    def all_pairs():
        out = []
        for mean, owner in zip(means, owners):
            if mean is None:
                out.append((None, 0, None))
                continue
            others = [(float(mean @ m), o) for m, o in zip(means, owners) if m is not None and o != owner]
            best = max(others)
            out.append((best[0], len({o for s, o in others if s >= audit.CLUSTER_SIMILARITY}), best[1]))
        return out

    monkeypatch.setattr(audit, "NEAREST_BLOCK", 7)
    blocked = audit.nearest_other(means, owners)
    for (s1, n1, w1), (s2, n2, w2) in zip(blocked, all_pairs()):
        assert (n1, w1) == (n2, w2)
        assert s1 == s2 if s2 is None else s1 == pytest.approx(s2, abs=1e-12)
    assert max(n for _, n, _ in blocked) == 7  # the 8 template faces find each other
