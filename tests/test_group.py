"""Group workflow on synthetic participant outputs written in the documented layout."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from bids_app import rank
from bids_app.config import Settings
from bids_app.workflows.group import run_group

from helpers import write_record, write_synthetic


def settings_for(tmp_path, out, **kw):
    bids = tmp_path / "bids"
    bids.mkdir(exist_ok=True)
    (bids / "dataset_description.json").write_text('{"Name": "synthetic", "BIDSVersion": "1.9.0"}')
    return Settings(bids_dir=bids, output_dir=out, analysis_level="group", modality=["FLAIR"], **kw)


def read_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


# Scores closer than this are treated as tied when two computations of continuous data are
# compared: far above the rounding of float64 sums of a few hundred products (~1e-14), far
# below any gap that random continuous data leaves (checked: most rows are "apart" below).
SCORE_TOL = 1e-9


def assert_same_ranking(got, dense, truth, usable, ref_ranks, score_tol: float = SCORE_TOL):
    """``rank_gallery``'s result against the dense reference, for continuous data.

    Matrix products by different BLAS kernels (Intel vs AMD, slab vs whole matrix) differ in
    the last bits, so scores are compared with a tolerance, and ranks and match order exactly
    only where the scores are apart by more than ``score_tol`` (float64 similarities: the
    default; float32 ones differ in their own last bits, about 1e-7 of a score).
    """
    close = score_tol / 1000
    rows = np.flatnonzero(usable)
    own = dense[rows, truth[rows]]
    np.testing.assert_allclose(got.true_score[rows], own, rtol=close, atol=close)
    idx, sc = rank.top_matches(dense, got.match_index.shape[1])
    np.testing.assert_allclose(got.match_score[rows], sc[rows], rtol=close, atol=close)
    gap_to_own = np.abs(dense[rows] - own[:, None])
    gap_to_own[np.arange(len(rows)), truth[rows]] = np.inf
    # exact ties (scores floored at 0, or cut by top-k) are exact in both computations; a near
    # tie (0 < gap <= SCORE_TOL) can move the rank by the near-tied identities only
    near = (gap_to_own > 0) & (gap_to_own <= score_tol)
    apart = ~near.any(axis=1)
    np.testing.assert_array_equal(got.ranks[rows[apart]], ref_ranks[rows[apart]])
    assert (np.abs(got.ranks[rows] - ref_ranks[rows]) <= near.sum(axis=1)).all()
    step = np.abs(np.diff(sc[rows], axis=1))
    ordered = (step == 0) | (step > score_tol)  # a match's place is fixed unless near-tied with a neighbour
    fixed = np.ones_like(sc[rows], bool)
    fixed[:, 1:] &= ordered
    fixed[:, :-1] &= ordered
    np.testing.assert_array_equal(got.match_index[rows][fixed], idx[rows][fixed])
    assert apart.mean() > 0.9, "the data should leave most scores apart, or this checks little"


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
        write_record(out, sub.name[len("sub-"):])  # the participant level lists its outputs
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


def test_excluded_labels_are_not_ranked(tmp_path):
    out = tmp_path / "out"
    write_synthetic(out, 5)
    run_group(settings_for(tmp_path, out, participant_label_exclude=["2", "4"]))
    ranked = [row["participant_id"] for row in read_tsv(out / "group_desc-ranks.tsv")]
    assert sorted(ranked) == ["sub-1", "sub-3", "sub-5"]


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
        has = np.bincount(pi, minlength=n) > 0
        # continuous scores from different matrix products: equal up to rounding, same order
        # wherever they are apart (BLAS kernels differ in the last bits between CPUs)
        assert_same_ranking(got, dense, np.arange(n), has, ref)


def _dense_reference(p, pi, n, g, gi, n_id, truth, scoring, top_k, ties, m, exclude=None, group=None, n_groups=None):
    """The straightforward computation: the full similarity matrix, then the documented functions."""
    conf = rank.identity_confidence(rank.cosine_similarity(p, g), gi, n_id)
    if exclude is not None:
        ex = exclude[pi]
        hit = np.flatnonzero(ex >= 0)
        conf[hit, ex[hit]] = np.nan
    face = np.isfinite(p).all(axis=1)  # a photo without a face is no photo
    scores = rank.person_scores(conf[face], pi[face], n, scoring, top_k)
    if group is not None:
        collapsed = np.full((n, n_groups), -np.inf)
        for j in range(n_groups):
            if (group == j).any():
                collapsed[:, j] = scores[:, group == j].max(axis=1)
        scores = collapsed
    usable = np.bincount(pi[face], minlength=n) > 0
    ranks = rank.true_ranks(scores, truth, ties=ties, usable=usable)
    ranks[usable & (truth < 0)] = np.inf
    idx, sc = rank.top_matches(scores, m)
    own = np.where(truth >= 0, scores[np.arange(n), np.maximum(truth, 0)], np.nan)
    return ranks, np.where(usable, own, np.nan), np.where(usable[:, None], idx, -1), usable, sc


def _tied_cohort(rng, n, n_id, dim, dtype):
    """Small-integer embeddings (exact dot products in any order: many exact ties), NaN rows,
    identities without renders, persons without photos, up to 12 photos per person."""
    nr = rng.integers(0, 5, n_id)
    npp = rng.integers(0, 13, n)
    g = rng.integers(-2, 3, size=(int(nr.sum()), dim)).astype(dtype)
    p = rng.integers(-2, 3, size=(int(npp.sum()), dim)).astype(dtype)
    g[rng.random(len(g)) < 0.15] = np.nan
    p[rng.random(len(p)) < 0.15] = np.nan
    gi, pi = np.repeat(np.arange(n_id), nr), np.repeat(np.arange(n), npp)
    perm = rng.permutation(len(p))  # photos need not be sorted by person
    return p[perm], pi[perm], g, gi


@pytest.mark.parametrize("scoring", rank.SCORINGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_ranking_equals_full_matrix_with_ties_and_nan_rows(scoring, dtype):
    rng = np.random.default_rng(7)
    seen = set()
    for trial in range(6):
        n, n_id = 40, 45
        p, pi, g, gi = _tied_cohort(rng, n, n_id, 6, dtype)
        truth = rng.integers(-1, n_id, n)
        top_k = [1, 3, 7, None, 50, 2][trial]
        ties = ["max", "min", "average"][trial % 3]
        ref_r, ref_own, ref_idx, usable, ref_sc = _dense_reference(p, pi, n, g, gi, n_id, truth, scoring, top_k,
                                                                   ties, 5)
        for block_bytes in (1, 3000, 256 << 20):
            got = rank.rank_gallery(p, pi, n, g, gi, n_id, truth, scoring=scoring, top_k=top_k, ties=ties,
                                    block_bytes=block_bytes)
            np.testing.assert_array_equal(got.ranks, ref_r)
            np.testing.assert_array_equal(got.true_score[truth >= 0], ref_own[truth >= 0])
            np.testing.assert_array_equal(got.match_index, ref_idx)
            np.testing.assert_array_equal(got.match_score[usable], ref_sc[usable])
        seen |= {"unusable"} if np.isnan(ref_r).any() else set()
        seen |= {"absent"} if np.isinf(ref_r).any() else set()
        seen |= {"zero own score"} if (ref_own[np.isfinite(ref_r)] == 0).any() else set()
        seen |= {"tie"} if (ref_r[np.isfinite(ref_r)] % 1 != 0).any() else set()
    # the cases the sparse ranking must get right did occur
    assert {"unusable", "absent", "tie"} <= seen
    assert "zero own score" in seen or scoring != "nejm"


@pytest.mark.parametrize("scoring", rank.SCORINGS)
def test_worker_threads_on_tiles_give_the_same_ranking(scoring, monkeypatch):
    # many tiles (5 photos x 7 identities): each worker thread folds whole tiles with
    # single-threaded products; exact-tie data, so every value must be the same
    from bids_app.rank import blocked
    monkeypatch.setattr(blocked, "TILE", (5, 7))
    rng = np.random.default_rng(11)
    p, pi, g, gi = _tied_cohort(rng, 40, 45, 6, np.float32)
    truth = rng.integers(-1, 45, 40)
    ref_r, ref_own, ref_idx, usable, ref_sc = _dense_reference(p, pi, 40, g, gi, 45, truth, scoring, 3, "max", 5)
    for workers in (1, 2, 3):
        got = rank.rank_gallery(p, pi, 40, g, gi, 45, truth, scoring=scoring, top_k=3, block_bytes=3000,
                                workers=workers)
        np.testing.assert_array_equal(got.ranks, ref_r)
        np.testing.assert_array_equal(got.match_index, ref_idx)
        np.testing.assert_array_equal(got.match_score[usable], ref_sc[usable])
    # the tiled similarities themselves
    slabs = [np.ascontiguousarray(np.nan_to_num(g[i::4][:10])) for i in range(4)]
    whole = blocked._best_render_similarity(np.nan_to_num(p[:30]), slabs)
    np.testing.assert_array_equal(blocked._best_render_similarity(np.nan_to_num(p[:30]), slabs, workers=2, chunk=(4, 3)),
                                  whole)


@pytest.mark.parametrize("scoring", rank.SCORINGS)
def test_fast_ranking_equals_full_matrix_with_exclusion_and_groups(scoring):
    # the linkage case: an identity excluded per person, identities collapsed into groups
    rng = np.random.default_rng(3)
    for trial in range(4):
        n, n_id = 30, 36
        p, pi, g, gi = _tied_cohort(rng, n, n_id, 5, np.float32)
        n_groups = 20  # every group has an identity (as in linkage)
        group = np.sort(np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, n_id - n_groups)]))
        truth = rng.integers(-1, n_groups, n)
        exclude = rng.integers(-1, n_id, n)
        top_k = [2, 5, None, 40][trial]
        ref_r, ref_own, ref_idx, usable, ref_sc = _dense_reference(
            p, pi, n, g, gi, n_id, truth, scoring, top_k, "max", 3, exclude, group, n_groups)
        for block_bytes in (1, 256 << 20):
            got = rank.rank_gallery(p, pi, n, g, gi, n_id, truth, scoring=scoring, top_k=top_k, n_matches=3,
                                    exclude_identity=exclude, identity_group=group, n_groups=n_groups,
                                    block_bytes=block_bytes)
            np.testing.assert_array_equal(got.ranks, ref_r)
            np.testing.assert_array_equal(got.true_score[truth >= 0], ref_own[truth >= 0])
            np.testing.assert_array_equal(got.match_index, ref_idx)
            np.testing.assert_array_equal(got.match_score[usable], ref_sc[usable])


def test_fast_ranking_sums_in_photo_order():
    # 1 to 20 photos per person, continuous confidences: the sparse sums equal the dense float64
    # sums up to rounding (the similarities come from other BLAS kernels: not bit for bit on
    # every CPU; float32 similarities differ by about 1e-7 of a score on AMD, seen in CI), and
    # everything whose scores are apart is ranked alike
    rng = np.random.default_rng(11)
    n, dim = 40, 16
    base = rng.normal(size=(n, dim))
    npp = rng.integers(1, 21, n)
    g = np.repeat(base, 3, axis=0) + rng.normal(size=(3 * n, dim))
    p = np.repeat(base, npp, axis=0) + rng.normal(size=(int(npp.sum()), dim))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    gi, pi = np.repeat(np.arange(n), 3), np.repeat(np.arange(n), npp)
    for dtype, score_tol in ((np.float64, SCORE_TOL), (np.float32, 1e-3)):
        pd, gd = p.astype(dtype), g.astype(dtype)
        sim = (pd @ gd.T).astype(np.float64)  # the full matrix, in the embeddings' precision
        conf = rank.identity_confidence(sim, gi, n)
        dense = rank.person_scores(conf, pi, n, "nejm", 10)
        got = rank.rank_gallery(pd, pi, n, gd, gi, n, np.arange(n), top_k=10)
        assert_same_ranking(got, dense, np.arange(n), np.ones(n, bool), rank.true_ranks(dense, np.arange(n)),
                            score_tol)


def test_fast_npy_reader_matches_np_load(tmp_path):
    from bids_app.workflows.group.load import _read_npy

    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(10, 128)).astype(np.float32), rng.normal(size=(1, 4)), np.zeros((0, 128), np.float32),
              np.full((3, 2), np.nan, np.float32), rng.normal(size=(3, 5)).astype(">f4"),
              np.asfortranarray(rng.normal(size=(4, 3))), rng.normal(size=6).astype(np.float32)]
    for i, a in enumerate(arrays):
        path = tmp_path / f"a{i}.npy"
        np.save(path, a)
        got = _read_npy(str(path))
        ref = np.load(path)
        assert got.dtype == ref.dtype and got.shape == ref.shape and got.flags.writeable
        np.testing.assert_array_equal(got, ref)


# -- the contract between the levels: files only, trusted only when complete ------

def test_reports_only_rebuilds_the_same_report(tmp_path):
    out = tmp_path / "out"
    write_synthetic(out, 12, noise=2.0)
    settings = settings_for(tmp_path, out)
    summary = run_group(settings)
    pages = sorted(out.glob("*.html"))
    assert len(pages) == 13  # facerisk.html and 12 participant pages
    before = {p.name: p.read_bytes() for p in pages}
    ranks = (out / "group_desc-ranks.tsv").read_bytes()
    for page in pages:
        page.unlink()
    # nothing in memory: a new settings object, and the participant outputs are not read again
    for npy in out.glob("sub-*/*/*.npy"):
        npy.unlink()
    rebuilt = run_group(settings_for(tmp_path, out, reports_only=True))
    assert rebuilt == json.loads(json.dumps(summary))
    assert {p.name: p.read_bytes() for p in sorted(out.glob("*.html"))} == before
    assert (out / "group_desc-ranks.tsv").read_bytes() == ranks
    # the histogram file holds every pair of the summary
    hist = read_tsv(out / "group_desc-similarity.tsv")
    assert sum(int(r["genuine_count"]) for r in hist) == summary["verification"]["n_genuine"]
    assert sum(int(r["impostor_count"]) for r in hist) == summary["verification"]["n_impostor"]


def test_reports_only_without_group_outputs_is_a_clear_error(tmp_path):
    from bids_app.report import ReportInputError

    out = tmp_path / "out"
    write_synthetic(out, 3)
    with pytest.raises(ReportInputError, match="without --reports-only first"):
        run_group(settings_for(tmp_path, out, reports_only=True))


def test_incomplete_participants_are_listed_and_not_ranked(tmp_path):
    out = tmp_path / "out"
    write_synthetic(out, 10, noise=1.0)
    # sub-02: killed run: the record is removed first when a participant starts again
    (out / "sub-02" / "sub-02_facerisk.json").unlink()
    # sub-03: processed for another modality only
    record = out / "sub-03" / "sub-03_facerisk.json"
    meta = json.loads(record.read_text())
    meta["Parameters"]["Modality"] = ["T1w"]
    record.write_text(json.dumps(meta))
    # sub-04: an embedding file the record lists is gone
    (out / "sub-04" / "photo" / "sub-04_desc-faces_photo.npy").unlink()
    # sub-05: the record is cut short (killed while writing, without the atomic rename)
    (out / "sub-05" / "sub-05_facerisk.json").write_text('{"Participant": "sub-05", "Out')
    # sub-06: a stale embedding file beside the listed ones (not in its record) is not read
    stale = out / "sub-06" / "anat" / "sub-06_acq-old_desc-faces_FLAIR"
    np.save(f"{stale}.npy", np.full((10, 128), np.nan, np.float32))
    shutil.copy(out / "sub-06" / "anat" / "sub-06_desc-faces_FLAIR.json", f"{stale}.json")

    summary = run_group(settings_for(tmp_path, out))
    excluded = {e["participant_id"]: e["reason"] for e in summary["excluded"]}
    assert sorted(excluded) == ["sub-02", "sub-03", "sub-04", "sub-05"] == [
        e["participant_id"] for e in summary["excluded"]]
    assert summary["n_excluded"] == 4
    assert "did not finish" in excluded["sub-02"]
    assert "--modality T1w, not FLAIR" in excluded["sub-03"]
    assert "sub-04_desc-faces_photo.json" in excluded["sub-04"] and "missing" in excluded["sub-04"]
    assert "cannot be read" in excluded["sub-05"]
    # not ranked, not counted, not a candidate for anyone else
    rows = read_tsv(out / "group_desc-ranks.tsv")
    assert [r["participant_id"] for r in rows] == [f"sub-{i:02d}" for i in (1, 6, 7, 8, 9, 10)]
    assert summary["n_participants"] == summary["n_identities"] == 6
    assert summary["reidentification"]["n"] == 6
    assert not any(r[f"match{k}_id"] in excluded for r in rows for k in range(1, 6))
    sub06 = next(r for r in rows if r["participant_id"] == "sub-06")
    assert sub06["renders_detected"] == "10/10"  # the stale file's 10 face-less rows were not read
    html = (out / "facerisk.html").read_text()
    assert 'id="excluded"' in html and "Participants left out" in html
    for pid, reason in excluded.items():
        assert pid in html
    # the same participants without records at all: the group level refuses, saying why
    for sub in out.glob("sub-*/"):
        (sub / f"{sub.name}_facerisk.json").unlink(missing_ok=True)
    from bids_app.workflows.group import GroupError

    with pytest.raises(GroupError, match="no participant outputs.*incomplete, e.g. sub-01: no sub-01_facerisk.json"):
        run_group(settings_for(tmp_path, out))


def test_models_and_modalities_of_the_record_are_checked(tmp_path):
    out = tmp_path / "out"
    write_synthetic(out, 12)
    write_record(out, "02", FaceModels=["dlib"])
    write_record(out, "03", Modality=["T1w", "FLAIR"], FaceModels=["sface", "dlib"])  # covers this run
    summary = run_group(settings_for(tmp_path, out))
    reasons = {e["participant_id"]: e["reason"] for e in summary["excluded"]}
    assert list(reasons) == ["sub-02"]
    assert "--face-model dlib, not sface" in reasons["sub-02"]
    assert summary["n_participants"] == 11


def test_group_command_when_no_render_has_a_face(tmp_path, capfd):
    """A defaced cohort: every render row is NaN. The command line reports chance, not a crash."""
    from bids_app.cli.run import main

    out = tmp_path / "out"
    write_synthetic(out, 6)
    for npy in out.glob("sub-*/anat/*_desc-faces_FLAIR.npy"):
        np.save(npy, np.full_like(np.load(npy), np.nan))
    bids = settings_for(tmp_path, out).bids_dir
    code = main([str(bids), str(out), "group", "--skip-bids-validator"])
    assert code == 0
    summary = json.loads((out / "group_desc-summary.json").read_text())
    assert summary["detection"]["renders_detected"] == 0
    assert "top1: 0/0 = n/a" in capfd.readouterr().err


def test_scans_to_check_by_eye_are_listed(tmp_path):
    """A participant whose scan was called "no face" with some render showing a nose in 3D
    (FacePresence.Review) is listed in the summary and the report."""
    out = tmp_path / "out"
    write_synthetic(out, 5)
    side = out / "sub-2" / "anat" / "sub-2_desc-faces_FLAIR.json"
    meta = json.loads(side.read_text())
    meta["FacePresence"] = {"FacePresent": False, "Support": 3, "Review": True}
    side.write_text(json.dumps(meta))
    summary = run_group(settings_for(tmp_path, out))
    assert summary["detection"]["review"] == ["sub-2"]
    assert "Check by eye" in (out / "facerisk.html").read_text()


def test_audit_tables_put_claimed_but_face_first(tmp_path):
    """group_desc-images.tsv and group_desc-actions.tsv from the participant outputs: an image whose
    sidecar claims defacing but whose renders show a face comes first; outputs without the
    metadata (older facerisk) have an unknown claim."""
    out = tmp_path / "out"
    write_synthetic(out, 4)
    for label, present, metadata in (("2", True, {"DeidentificationMethod": ["pydeface"]}),
                                      ("3", False, {"ImageType": ["DERIVED", "DEFACED"]}),
                                      ("4", True, {})):
        side = out / f"sub-{label}" / "anat" / f"sub-{label}_desc-faces_FLAIR.json"
        meta = json.loads(side.read_text())
        meta["FacePresence"] = {"FacePresent": present, "Support": 10 if present else 0, "MinSupport": 4}
        meta["SourceMetadata"] = metadata
        side.write_text(json.dumps(meta))
        if not present:
            npy = side.with_suffix(".npy")
            np.save(npy, np.full_like(np.load(npy), np.nan))
    summary = run_group(settings_for(tmp_path, out))
    images = {r["participant_id"]: r for r in read_tsv(out / "group_desc-images.tsv")}
    assert [images[f"sub-{k}"]["verdict"] for k in "1234"] == ["face", "face", "removed", "face"]
    assert [images[f"sub-{k}"]["claimed"] for k in "1234"] == ["unknown", "yes", "yes", "no"]
    actions = read_tsv(out / "group_desc-actions.tsv")
    assert actions[0]["participant_id"] == "sub-2" and actions[0]["action"] == "deface again"
    assert "claims de-identification (pydeface)" in actions[0]["reason"]
    assert summary["audit"]["claimed_but_face"] == 1
    assert summary["audit"]["sentence"].startswith("Of 4 anatomical images from 4 participants, 3 (75.0%)")
    html = (out / "facerisk.html").read_text()
    assert summary["audit"]["sentence"] in html and 'id="claimed-but-face"' in html
