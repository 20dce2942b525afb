"""Group workflow on synthetic participant outputs written in the documented layout."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bids_app import rank
from bids_app.config import Settings
from bids_app.workflows.group import run_group

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from group_scale import write_synthetic  # noqa: E402


def settings_for(tmp_path, out, **kw):
    bids = tmp_path / "bids"
    bids.mkdir(exist_ok=True)
    (bids / "dataset_description.json").write_text('{"Name": "synthetic", "BIDSVersion": "1.9.0"}')
    return Settings(bids_dir=bids, output_dir=out, analysis_level="group", modality=["FLAIR"], **kw)


def read_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.parametrize("scoring", rank.SCORINGS)
def test_group_outputs_for_every_scoring(tmp_path, scoring):
    out = tmp_path / "out"
    write_synthetic(out, 30, noise=2.0)
    summary = run_group(settings_for(tmp_path, out, scoring=scoring, top_k=3))
    rows = read_tsv(out / "group_desc-ranks.tsv")
    assert len(rows) == 30 and list(rows[0])[:2] == ["participant_id", "rank"]
    stats = summary["reidentification"]
    assert stats["n"] == 30 and {"top1", "top3", "top5", "top10"} <= set(stats)
    assert stats["top1"]["hits"] == sum(r["rank"] == "1" for r in rows)
    assert stats["top1"]["chance"] == pytest.approx(1 / 30)
    assert 0.5 < summary["verification"]["auc"] <= 1
    assert summary["scoring"]["method"] == ("nejm2019" if scoring == "nejm" else scoring)
    html = (out / "facerisk.html").read_text()
    assert "Verification AUC" in html and "chance level" in html and "Score distributions" in html
    assert (out / "sub-01.html").is_file()


def test_linkage_detectability_and_compare(tmp_path):
    out = tmp_path / "out"
    write_synthetic(out, 12, noise=1.0)
    # a second anat image (another session) for 6 participants: same face, new noise
    rng = np.random.default_rng(5)
    for sub in sorted(out.glob("sub-*"))[:6]:
        src = sub / "anat" / f"{sub.name}_desc-faces_FLAIR.npy"
        v = np.load(src)
        base = v.mean(axis=0)
        w = (base + 0.05 * rng.normal(size=v.shape)).astype(np.float32)
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        ses = sub / "ses-2" / "anat"
        ses.mkdir(parents=True)
        np.save(ses / f"{sub.name}_ses-2_desc-faces_FLAIR.npy", w)
        (ses / f"{sub.name}_ses-2_desc-faces_FLAIR.json").write_text(
            (sub / "anat" / f"{sub.name}_desc-faces_FLAIR.json").read_text())
    # "defaced" copy: no face in most renders of 8 participants
    defaced = tmp_path / "defaced"
    import shutil
    shutil.copytree(out, defaced)
    for sub in sorted(defaced.glob("sub-*"))[:8]:
        for npy in sub.glob("**/anat/*.npy"):
            v = np.load(npy)
            v[:] = np.nan
            np.save(npy, v)
    summary = run_group(settings_for(tmp_path, out))
    link = summary["linkage"]
    assert link["n"] == 12 and link["top1"]["rate"] == 1.0  # 6 participants x 2 images
    assert (out / "group_desc-linkage.tsv").is_file()
    rows = read_tsv(out / "group_desc-ranks.tsv")
    assert all(r["face_visible"] == "true" for r in rows)

    summary = run_group(settings_for(tmp_path, defaced, compare_to=out))
    comp = summary["comparison"]
    assert comp["n_common"] == 12 and comp["n_still_detected"] == 4
    assert comp["participant_detection_rate_drop"] == pytest.approx(8 / 12)
    compare = read_tsv(defaced / "group_desc-compare.tsv")
    assert sum(r["detect_drop"] == "1.0000" for r in compare) == 8
    ranks = read_tsv(defaced / "group_desc-ranks.tsv")
    assert sum(r["face_visible"] == "false" for r in ranks) == 8
    html = (defaced / "facerisk.html").read_text()
    assert "Comparison with" in html and "face visible" in html


def test_report_images_none_has_no_images(tmp_path):
    out = tmp_path / "out"
    write_synthetic(out, 5)
    run_group(settings_for(tmp_path, out, report_images="none"))
    assert "<img" not in (out / "facerisk.html").read_text()


def test_blocked_ranking_equals_dense():
    rng = np.random.default_rng(0)
    n, dim = 60, 8
    base = rng.normal(size=(n, dim))
    nr, npp = rng.integers(1, 5, n), rng.integers(0, 4, n)
    g = np.concatenate([base[i] + rng.normal(scale=1.5, size=(nr[i], dim)) for i in range(n)])
    p = np.concatenate([base[i] + rng.normal(scale=1.5, size=(npp[i], dim)) for i in range(n)])
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    gi, pi = np.repeat(np.arange(n), nr), np.repeat(np.arange(n), npp)
    for scoring in rank.SCORINGS:
        conf = rank.identity_confidence(rank.cosine_similarity(p, g), gi, n)
        dense = rank.person_scores(conf, pi, n, scoring, 3)
        ref = rank.true_ranks(dense, np.arange(n), usable=np.bincount(pi, minlength=n) > 0)
        got = rank.rank_gallery(p, pi, n, g, gi, n, np.arange(n), scoring=scoring, top_k=3, block_bytes=4000)
        np.testing.assert_array_equal(ref, got.ranks)
        idx, _ = rank.top_matches(dense, 5)
        has = np.bincount(pi, minlength=n) > 0
        np.testing.assert_array_equal(idx[has], got.match_index[has])
