"""The MRI-only audit through the group level: participant outputs in the documented layout in,
group_desc-images.tsv, -actions.tsv, the summary, the report and the participant pages out."""

from __future__ import annotations

import csv
import html as htmllib
import json
import re

import numpy as np

from helpers import write_record, write_synthetic
from test_report import parse

FEATURES_OK = {"Detection": "counted", "Seen": dict.fromkeys(("EyeLeft", "EyeRight", "Nose", "Mouth"), 1.0),
               "Flat": {"EyeLeft": 0.55, "EyeRight": 0.6, "Nose": 0.2, "Mouth": 0.5}, "FaceFlat": 0.08}
FEATURES_CUT = {"Detection": "best rejected", "Seen": dict.fromkeys(("EyeLeft", "EyeRight", "Nose", "Mouth"), 1.0),
                "Flat": dict.fromkeys(("EyeLeft", "EyeRight", "Nose", "Mouth"), 0.99), "FaceFlat": 0.97,
                "NoseReliefMm": 1.0, "EyeDistanceMm": 15.0, "EyeMouthMm": 20.0}
PYDEFACE = {"DeidentificationMethod": ["pydeface 2.0.2"]}


def read_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def audit_evidence(out, label: str, suffix: str, face: bool, metadata: dict) -> None:
    """Give ``sub-<label>``'s ``suffix`` embedding sidecar what the participant level writes for the
    audit: per-render feature evidence, the scan's face decision and the source sidecar's fields
    (a scan without a face: every row NaN, shading on a cut plane rejected in some renders)."""
    side = out / f"sub-{label}" / "anat" / f"sub-{label}_desc-faces_{suffix}.json"
    meta = json.loads(side.read_text())
    rows = []
    for i, row in enumerate(meta["Rows"]):
        if face:
            rows.append({**row, "Detected": True, "NoseReliefMm": 20.0, "EyeDistanceMm": 62.0, "EyeMouthMm": 55.0,
                         "Features": FEATURES_OK})
        else:
            rows.append({"Detected": False, "Score": None, **({"Features": FEATURES_CUT} if i < 3 else {})})
    meta["Rows"] = rows
    meta["FacePresence"] = {"FacePresent": face, "Support": len(rows) if face else 0, "MinSupport": 4,
                            "Review": False}
    meta["SourceMetadata"] = metadata
    side.write_text(json.dumps(meta))
    if not face:
        npy = side.with_suffix(".npy")
        np.save(npy, np.full_like(np.load(npy), np.nan))


def add_t1w(out, label: str) -> None:
    """A T1w beside ``sub-<label>``'s FLAIR: a copy of its outputs under the T1w's name."""
    anat = out / f"sub-{label}" / "anat"
    for ext in (".npy", ".json"):
        source = anat / f"sub-{label}_desc-faces_FLAIR{ext}"
        (anat / f"sub-{label}_desc-faces_T1w{ext}").write_bytes(source.read_bytes())


def group(tmp_path, out, *extra: str) -> dict:
    from bids_app.cli.run import main

    bids = tmp_path / "bids"
    bids.mkdir(exist_ok=True)
    (bids / "dataset_description.json").write_text('{"Name": "audit", "BIDSVersion": "1.9.0"}')
    assert main([str(bids), str(out), "group", "--skip-bids-validator", *extra]) == 0
    return json.loads((out / "group_desc-summary.json").read_text())


def test_a_face_in_the_flair_while_the_t1w_claims_defacing_is_flagged_end_to_end(tmp_path):
    """sub-1: T1w defaced (pydeface in its sidecar, no face) and a FLAIR with a face and no claim;
    sub-2: both sequences defaced and claimed; sub-3: both intact. Only sub-1's FLAIR is flagged,
    in the images and actions TSVs, the summary, the first screen and sub-1's page."""
    out = tmp_path / "out"
    write_synthetic(out, 3)
    for label in "123":
        add_t1w(out, label)
    audit_evidence(out, "1", "T1w", False, PYDEFACE)
    audit_evidence(out, "1", "FLAIR", True, {})
    audit_evidence(out, "2", "T1w", False, PYDEFACE)
    audit_evidence(out, "2", "FLAIR", False, PYDEFACE)
    audit_evidence(out, "3", "T1w", True, {})
    audit_evidence(out, "3", "FLAIR", True, {})
    for label in "123":
        write_record(out, label, Modality=["T1w", "FLAIR"])
    summary = group(tmp_path, out, "--modality", "T1w", "FLAIR")

    images = {r["image"]: r for r in read_tsv(out / "group_desc-images.tsv")}
    assert len(images) == 6
    assert images["sub-1_FLAIR"]["verdict"] == "face" and images["sub-1_T1w"]["verdict"] == "removed"
    assert images["sub-1_FLAIR"]["flags"] == "shows a face while the T1w was de-identified"
    assert [k for k, r in images.items() if r["flags"] != "n/a"] == ["sub-1_FLAIR"]
    assert images["sub-3_FLAIR"]["verdict"] == "face"  # a face, but its T1w was not de-identified
    actions = read_tsv(out / "group_desc-actions.tsv")
    assert actions[0]["image"] == "sub-1_FLAIR" and actions[0]["action"] == "deface again"
    assert "T1w was de-identified" in actions[0]["reason"]
    audit = summary["audit"]
    assert audit["other_sequence_face"] == 1 and audit["other_sequence_face_images"] == ["sub-1_FLAIR"]
    assert audit["claimed_but_face"] == 0 and audit["claimed"] == 3
    report = (out / "facerisk.html").read_text()
    notice = report[report.index('id="other-sequence-face"'):]
    assert "sub-1_FLAIR (face)" in notice[:notice.index("</div>")]
    page = (out / "sub-1.html").read_text()
    section = page[page.index('<section id="audit">'):page.index('<section id="matches">')]
    assert "shows a face while the T1w was de-identified" in section
    assert "yes: pydeface 2.0.2" in section  # the T1w's claim, on its own row


def _rows_of(section: str) -> dict[str, list[str]]:
    """Cells (text, tags stripped) of each row of the page's audit table, by image."""
    rows = {}
    for tr in re.findall(r"<tr class=\"verdict-[a-z]+\">(.*?)</tr>", section, re.S):
        cells = [" ".join(htmllib.unescape(re.sub(r"<[^>]+>", "", c)).split())
                 for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        rows[cells[0]] = cells
    return rows


def test_participant_pages_list_their_images_verdicts(tmp_path):
    """Each participant page lists that participant's anat images: verdict, confidence, action,
    the features remaining, the evidence and the claim check, from the group outputs alone (the
    same after --reports-only); the audit adds no image, whatever --report-images says."""
    out = tmp_path / "out"
    write_synthetic(out, 4)
    audit_evidence(out, "1", "FLAIR", True, PYDEFACE)  # claims defacing, shows a face
    audit_evidence(out, "2", "FLAIR", False, PYDEFACE)  # defaced
    audit_evidence(out, "3", "FLAIR", True, {})  # intact, no claim
    for label in "123":
        write_record(out, label)
    group(tmp_path, out, "--report-images", "none")

    images = {r["participant_id"]: r for r in read_tsv(out / "group_desc-images.tsv")}
    data = json.loads((out / "group_desc-report.json").read_text())
    for label in "1234":
        pid = f"sub-{label}"
        page = (out / f"{pid}.html").read_text()
        checked = parse(page)
        assert checked.errors == [] and checked.stack == []
        assert checked.imgs == [] and "data:image" not in page  # --report-images none
        section = page[page.index('<section id="audit">'):page.index('<section id="matches">')]
        rows = _rows_of(section)
        row = images[pid]
        assert list(rows) == [row["image"]]
        image, verdict, confidence, action, remaining, claim, flag, evidence = rows[row["image"]]
        assert verdict.startswith(row["verdict"] + ":") and confidence == row["confidence"]
        assert remaining == (row["remaining"].replace(",", ", ") if row["remaining"] != "n/a" else "none")
        assert evidence == row["evidence"] and evidence.startswith(f"{row['renders_face']}/10 renders with a face")
        listed = data["pages"][pid]["audit"]
        assert action.startswith(listed[0]["action"]) and listed[0]["reason"] in action
        assert claim == listed[0]["claim"]
        assert flag == ("; ".join(listed[0]["flags"]) if listed[0]["flags"] else "no flag")
    page1 = _rows_of((out / "sub-1.html").read_text())["sub-1_FLAIR"]
    assert page1[1].startswith("face") and page1[3].startswith("deface again")
    assert page1[5] == "yes: pydeface 2.0.2" and page1[6] == "claims de-identification but shows a face"
    assert page1[4] == "eyes, nose, mouth"
    page2 = _rows_of((out / "sub-2.html").read_text())["sub-2_FLAIR"]
    assert page2[1].startswith("removed") and page2[3].startswith("fine") and page2[6] == "no flag"
    page4 = _rows_of((out / "sub-4.html").read_text())["sub-4_FLAIR"]
    assert page4[5] == "unknown"  # outputs without the source metadata (an older participant level)

    before = {p.name: p.read_text() for p in out.glob("sub-*.html")}
    group(tmp_path, out, "--report-images", "none", "--reports-only")
    assert {p.name: p.read_text() for p in out.glob("sub-*.html")} == before


def test_the_pages_audit_adds_no_image_with_images_shown(tmp_path):
    """--report-images blurred: the page's images are its renders, photos and matches only."""
    out = tmp_path / "out"
    write_synthetic(out, 3)
    audit_evidence(out, "1", "FLAIR", True, PYDEFACE)
    write_record(out, "1")
    group(tmp_path, out, "--report-images", "blurred")
    page = (out / "sub-1.html").read_text()
    section = page[page.index('<section id="audit">'):page.index('<section id="matches">')]
    assert "sub-1_FLAIR" in section and "<img" not in section and "data:" not in section
