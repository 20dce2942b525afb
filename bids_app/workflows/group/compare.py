"""Comparison of two output folders (``--compare-to``), e.g. the same data before and after defacing."""

from __future__ import annotations

from pathlib import Path

from .analysis import Analysis

__all__ = ["compare"]


def compare(this: Analysis, other: Analysis, other_dir: Path) -> tuple[list[dict], dict]:
    """Participant by participant, detection and re-identification here and in ``other_dir``."""
    rows = []
    for subject in this.subjects:
        a = this.info[subject]
        b = other.info.get(subject)
        if b is None:
            continue
        drop = (b["detect_fraction"] - a["detect_fraction"]
                if a["detect_fraction"] is not None and b["detect_fraction"] is not None else None)
        rows.append({
            "subject": subject,
            "detect_fraction": a["detect_fraction"], "detect_fraction_compare": b["detect_fraction"],
            "detect_drop": drop,
            "rank": a["rank"], "rank_compare": b["rank"],
            "score_true": a["score_true"], "score_true_compare": b["score_true"],
            "still_detected": bool(a["renders_detected"]),
            "still_identified": a["rank"] == 1,
        })
    sa, sb = this.summary, other.summary

    def rate(summary, key):
        item = summary["reidentification"].get(key) or {}
        return item.get("rate")

    summary = {
        "compare_to": str(other_dir),
        "n_common": len(rows),
        "detection_rate": sa["detection"]["rate"], "detection_rate_compare": sb["detection"]["rate"],
        "participant_detection_rate": sa["detection"]["participant_rate"],
        "participant_detection_rate_compare": sb["detection"]["participant_rate"],
        "top1_rate": rate(sa, "top1"), "top1_rate_compare": rate(sb, "top1"),
        "top5_rate": rate(sa, "top5"), "top5_rate_compare": rate(sb, "top5"),
        "n_still_detected": sum(r["still_detected"] for r in rows),
        "n_still_identified": sum(r["still_identified"] for r in rows),
    }
    for key in ("detection_rate", "participant_detection_rate", "top1_rate", "top5_rate"):
        a, b = summary[key], summary[key + "_compare"]
        summary[key + "_drop"] = (b - a) if a is not None and b is not None else None
    return rows, summary
