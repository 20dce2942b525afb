"""The report's first screen: the MRI-only audit (verdicts, claims checked, actions).

:func:`audit_context` turns what the group level wrote
(``group_desc-summary.json`` ``audit``, ``group_desc-report.json``
``audit_rows``, already in priority order: claimed-but-face first) into the
context of ``_audit.html.j2``. Reports of older group outputs have no audit:
the section is then left out.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_AUDIT_ROWS", "VERDICT_TEXT", "audit_context"]

#: Images listed on the first screen (deface again and check by eye); the TSVs list all.
MAX_AUDIT_ROWS = 100

VERDICT_TEXT = {
    "face": "a face is reconstructable",
    "partial": "some features remain",
    "removed": "no face",
    "replaced": "a face is present but not the participant's (refaced)",
}


def audit_context(summary: dict, data: dict) -> dict[str, Any] | None:
    """Counts, the steward's sentence and the images to act on (None without an audit)."""
    audit = summary.get("audit")
    if not audit:
        return None
    rows = data.get("audit_rows") or []
    act = [r for r in rows if r["action"] != "fine"]
    return {
        "sentence": audit["sentence"],
        "n_images": audit["n_images"],
        "n_participants": audit["n_participants"],
        "actions": audit["actions"],
        "verdicts": audit["verdicts"],
        "verdict_text": VERDICT_TEXT,
        "claimed": audit["claimed"],
        "claim_unknown": audit["claim_unknown"],
        "claimed_but_face": [r for r in rows if r["claimed_but_face"]][:MAX_AUDIT_ROWS],
        "n_claimed_but_face": audit["claimed_but_face"],
        "other_sequence": [r for r in rows if r["other_sequence_face"]][:MAX_AUDIT_ROWS],
        "n_other_sequence": audit["other_sequence_face"],
        "rows": act[:MAX_AUDIT_ROWS],
        "n_rows": len(act),
        "truncated": len(act) > MAX_AUDIT_ROWS,
    }
