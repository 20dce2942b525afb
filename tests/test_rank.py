"""Tests for bids_app.rank (scoring as in Schwarz et al., NEJM 2019)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bids_app import rank

NAN = np.nan

# ---------------------------------------------------------------------------
# A hand-made case: 3 persons x 2 photos, 3 identities x 2 renders.
#
# gallery renders:  r0 r1 | r2 r3 | r4 r5
# identity:          0  0 |  1  1 |  2  2
# photos p0,p1 -> person 0; p2,p3 -> person 1; p4,p5 -> person 2.
# Person i's own MRI is identity i.
SIM = np.array(
    [
        # r0    r1    r2    r3    r4    r5
        [0.9, 0.5, 0.3, 0.4, -0.2, 0.1],  # p0
        [0.6, 0.7, 0.8, 0.2, 0.0, -0.1],  # p1
        [0.2, 0.1, 0.5, 0.3, 0.6, 0.0],  # p2
        [NAN, NAN, NAN, NAN, NAN, NAN],  # p3: no face in the photo
        [-0.3, -0.1, -0.5, -0.2, 0.4, 0.2],  # p4
        [0.3, 0.1, 0.3, 0.2, 0.1, 0.3],  # p5
    ]
)
GALLERY_ID = np.array([0, 0, 1, 1, 2, 2])
PROBE_PERSON = np.array([0, 0, 1, 1, 2, 2])
TRUTH = np.array([0, 1, 2])

# By hand, identity confidence = max over the identity's two renders, clipped at 0:
#   p0: id0 max(.9,.5)=.9   id1 max(.3,.4)=.4   id2 max(-.2,.1)=.1
#   p1: id0 max(.6,.7)=.7   id1 max(.8,.2)=.8   id2 max(0,-.1)=0
#   p2: id0 .2              id1 .5              id2 .6
#   p3: all NaN -> 0 0 0
#   p4: id0 max(-.3,-.1)=-.1->0   id1 max(-.5,-.2)=-.2->0   id2 .4
#   p5: id0 .3              id1 .3              id2 .3
PHOTO_FULL = np.array(
    [
        [0.9, 0.4, 0.1],
        [0.7, 0.8, 0.0],
        [0.2, 0.5, 0.6],
        [0.0, 0.0, 0.0],
        [0.0, 0.0, 0.4],
        [0.3, 0.3, 0.3],
    ]
)
# Sums per person:
#   person 0: [1.6, 1.2, 0.1]  own (id0) 1.6 is highest         -> rank 1
#   person 1: [0.2, 0.5, 0.6]  own (id1) 0.5, one higher (0.6)  -> rank 2
#   person 2: [0.3, 0.3, 0.7]  own (id2) 0.7 is highest         -> rank 1
PERSON_FULL = np.array([[1.6, 1.2, 0.1], [0.2, 0.5, 0.6], [0.3, 0.3, 0.7]])
RANKS_FULL = [1.0, 2.0, 1.0]

# With top_k=1 only each photo's best identity survives (ties -> lower code):
#   p0 [.9, 0, 0]  p1 [0, .8, 0]  p2 [0, 0, .6]  p3 [0, 0, 0]
#   p4 [0, 0, .4]  p5 [.3, 0, 0]   (all three tie at .3; id0 kept)
#   person 0: [0.9, 0.8, 0.0] -> own 0.9 first                         rank 1
#   person 1: [0.0, 0.0, 0.6] -> own 0.0; 0.6 higher, tied with id0 at 0:
#             ties="max" rank 3 (was 2 without truncation), "min" rank 2
#   person 2: [0.3, 0.0, 0.4] -> own 0.4 first                         rank 1
PHOTO_TOP1 = np.array(
    [
        [0.9, 0.0, 0.0],
        [0.0, 0.8, 0.0],
        [0.0, 0.0, 0.6],
        [0.0, 0.0, 0.0],
        [0.0, 0.0, 0.4],
        [0.3, 0.0, 0.0],
    ]
)
PERSON_TOP1 = np.array([[0.9, 0.8, 0.0], [0.0, 0.0, 0.6], [0.3, 0.0, 0.4]])


def test_hand_made_case_full():
    photo = rank.identity_scores_nejm(SIM, GALLERY_ID, 3)
    np.testing.assert_allclose(photo, PHOTO_FULL, atol=1e-12)
    person = rank.aggregate_by_person(photo, PROBE_PERSON, 3)
    np.testing.assert_allclose(person, PERSON_FULL, atol=1e-12)
    assert rank.true_ranks(person, TRUTH).tolist() == RANKS_FULL


def test_top_k_truncation_changes_rank():
    photo = rank.identity_scores_nejm(SIM, GALLERY_ID, 3, top_k=1)
    np.testing.assert_allclose(photo, PHOTO_TOP1, atol=1e-12)
    person = rank.aggregate_by_person(photo, PROBE_PERSON, 3)
    np.testing.assert_allclose(person, PERSON_TOP1, atol=1e-12)
    assert rank.true_ranks(person, TRUTH, ties="max").tolist() == [1.0, 3.0, 1.0]
    assert rank.true_ranks(person, TRUTH, ties="min").tolist() == [1.0, 2.0, 1.0]
    # top_k >= n_identities and None keep everything
    for k in (3, 50, None):
        np.testing.assert_allclose(rank.identity_scores_nejm(SIM, GALLERY_ID, 3, top_k=k), PHOTO_FULL)


def test_top_k_keeps_k_per_photo():
    rng = np.random.default_rng(0)
    sim = rng.uniform(0.01, 1, size=(7, 40))
    photo = rank.identity_scores_nejm(sim, np.repeat(np.arange(20), 2), 20, top_k=5)
    assert ((photo > 0).sum(axis=1) == 5).all()
    # the kept ones are the 5 largest identity maxima
    full = sim.reshape(7, 20, 2).max(axis=2)
    expected = np.where(full >= np.sort(full, axis=1)[:, -5][:, None], full, 0)
    np.testing.assert_allclose(photo, expected)


@pytest.mark.parametrize(
    ("row", "true_id", "expected"),
    [
        # three-way tie at the top: 0 greater, 3 equal
        ([0.5, 0.5, 0.5, 0.2], 1, {"max": 3, "min": 1, "average": 2}),
        # one greater, two equal
        ([0.9, 0.5, 0.5, 0.2], 2, {"max": 3, "min": 2, "average": 2.5}),
        # no tie
        ([0.9, 0.5, 0.4, 0.2], 2, {"max": 3, "min": 3, "average": 3}),
        # own identity never returned (0) while two others are 0 too
        ([0.9, 0.0, 0.0, 0.0], 3, {"max": 4, "min": 2, "average": 3}),
    ],
)
def test_tie_policies(row, true_id, expected):
    scores = np.array([row])
    for policy, value in expected.items():
        got = rank.true_ranks(scores, np.array([true_id]), ties=policy)
        assert got.dtype == np.float64
        assert got.tolist() == [value], policy


def test_bad_tie_policy():
    with pytest.raises(ValueError):
        rank.true_ranks(np.ones((1, 2)), np.array([0]), ties="dense")


def test_unusable_persons_are_nan():
    scores = np.array([[0.0, 0.0, 0.0], [0.3, 0.1, 0.0], [0.3, 0.1, 0.0], [NAN, 1.0, 0.0]])
    r = rank.true_ranks(scores, np.array([0, 0, -1, 1]))
    assert math.isnan(r[0])  # no usable photo: all-zero row
    assert r[1] == 1.0
    assert math.isnan(r[2])  # identity not in the gallery
    assert math.isnan(r[3])  # non-finite row
    assert rank.usable_ranks(r).tolist() == [1.0]
    # NaN never counts as a hit
    assert not (r[[0, 2, 3]] <= 1).any()


def test_usable_mask_ranks_empty_rows():
    scores = np.array([[0.0, 0.0, 0.0], [0.3, 0.1, 0.0], [0.0, 0.0, 0.0]])
    # person 0 had a usable photo that returned nothing: all tie at 0 -> last under "max"
    r = rank.true_ranks(scores, np.array([0, 0, 1]), usable=np.array([True, False, False]))
    assert r[0] == 3.0
    assert np.isnan(r[1]) and np.isnan(r[2])  # marked unusable
    assert rank.true_ranks(scores[:1], np.array([0]), ties="min", usable=[True]).tolist() == [1.0]
    with pytest.raises(ValueError):
        rank.true_ranks(scores, np.array([0, 0, 1]), usable=[True])


def test_infinite_rank_counts_as_miss():
    # NaN: left out; inf: a person with a usable photo who cannot be found (counted, never a hit)
    ranks = np.array([1.0, np.inf, NAN, 2.0])
    assert rank.usable_ranks(ranks).tolist() == [1.0, np.inf, 2.0]
    cmc = rank.cmc_curve(ranks, 3)
    np.testing.assert_allclose(cmc, [1 / 3, 2 / 3, 2 / 3])
    s = rank.summarise(ranks, 3)
    json.dumps(s, allow_nan=False)
    assert s["n"] == 3 and s["top1"]["hits"] == 1 and s["n_unusable"] == 1
    assert s["median_rank"] == 2.0
    assert s["mean_reciprocal_rank"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_cosine_similarity_and_nan_rows():
    probes = np.array([[1.0, 0.0], [NAN, NAN], [0.6, 0.8]])
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [NAN, NAN]])
    sim = rank.cosine_similarity(probes, gallery)
    assert sim.shape == (3, 3)
    np.testing.assert_allclose(sim[0, :2], [1.0, 0.0])
    np.testing.assert_allclose(sim[2, :2], [0.6, 0.8])
    assert np.isnan(sim[1]).all()
    assert np.isnan(sim[:, 2]).all()
    with pytest.raises(ValueError):
        rank.cosine_similarity(np.ones((1, 3)), np.ones((1, 2)))


def test_nan_renders_are_ignored_within_an_identity():
    # identity 0: renders 0 (no face) and 1; identity 1: render 2 (no face) only
    sim = np.array([[NAN, 0.4, NAN], [NAN, -0.3, NAN], [NAN, NAN, NAN]])
    photo = rank.identity_scores_nejm(sim, np.array([0, 0, 1]), 3)
    # identity 2 has no render at all -> 0
    np.testing.assert_array_equal(photo, [[0.4, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert np.isfinite(photo).all()


def test_aggregate_person_without_photos_and_bad_codes():
    out = rank.aggregate_by_person(np.array([[1.0, 2.0]]), np.array([1]), 3)
    np.testing.assert_array_equal(out, [[0, 0], [1, 2], [0, 0]])
    with pytest.raises(ValueError):
        rank.aggregate_by_person(np.array([[1.0, 2.0]]), np.array([3]), 3)
    with pytest.raises(TypeError):
        rank.aggregate_by_person(np.array([[1.0, 2.0]]), np.array([0.5]), 3)


def test_end_to_end_from_embeddings():
    rng = np.random.default_rng(42)
    n, d = 6, 16
    base = rng.normal(size=(n, d))

    def noisy(reps, scale):
        e = np.repeat(base, reps, axis=0) + rng.normal(scale=scale, size=(n * reps, d))
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    gallery, probes = noisy(3, 0.3), noisy(2, 0.3)
    probes[1] = np.nan  # person 0 keeps one usable photo
    probes[[4, 5]] = np.nan  # person 2 has no usable photo
    sim = rank.cosine_similarity(probes, gallery)
    photo = rank.identity_scores_nejm(sim, np.repeat(np.arange(n), 3), n)
    person = rank.aggregate_by_person(photo, np.repeat(np.arange(n), 2), n)
    r = rank.true_ranks(person, np.arange(n))
    assert math.isnan(r[2])
    assert rank.usable_ranks(r).tolist() == [1.0] * 5


def test_top_matches_stable_order():
    scores = np.array([[0.2, 0.9, 0.2, 0.5, NAN], [0.0, 0.0, 0.0, 0.0, 0.0]])
    idx, val = rank.top_matches(scores, k=3)
    assert idx.tolist() == [[1, 3, 0], [0, 1, 2]]
    np.testing.assert_allclose(val, [[0.9, 0.5, 0.2], [0, 0, 0]])
    idx, _ = rank.top_matches(scores, k=10)
    assert idx.shape == (2, 5)
    assert idx[0, -1] == 4  # NaN last


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (83, 100, 0.7445, 0.8911),  # by hand: centre .8178 +- .0733
    ],
)
def test_wilson_interval(k, n, low, high):
    lo, hi = rank.wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_interval_edges():
    assert all(math.isnan(v) for v in rank.wilson_interval(0, 0))
    assert rank.wilson_interval(0, 10)[0] == 0.0
    assert rank.wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        rank.wilson_interval(11, 10)


def _wilson_by_hand(successes, n, z=1.96):
    """The closed form facerisk computed by hand before it used scipy (rank.py until ba87277)."""
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def test_wilson_interval_from_scipy_equals_the_closed_form():
    """scipy's binomtest(...).proportion_ci(method="wilson") gives the former numbers (to rounding)."""
    for n in [*range(1, 60), 84, 100, 1000, 12345]:
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for z in (1.96, 1.0, 2.576):
                got = rank.wilson_interval(k, n, z=z)
                np.testing.assert_allclose(got, _wilson_by_hand(k, n, z), rtol=1e-12, atol=1e-14)


def test_cmc_monotone_and_ends_at_one():
    ranks = np.array([1, 2, 1, NAN, 5, 3, 1, 10])
    cmc = rank.cmc_curve(ranks, 10)
    assert cmc.shape == (10,)
    assert (np.diff(cmc) >= 0).all()
    assert cmc[-1] == 1.0
    assert cmc[0] == pytest.approx(3 / 7)  # NaN ignored
    assert cmc[4] == pytest.approx(6 / 7)
    assert np.isnan(rank.cmc_curve(np.array([NAN, NAN]), 4)).all()


def test_chance_rate():
    assert rank.chance_rate(1, 84) == pytest.approx(1 / 84)
    assert rank.chance_rate(5, 84) == pytest.approx(5 / 84)
    assert rank.chance_rate(5, 3) == 1.0
    assert math.isnan(rank.chance_rate(1, 0))


def test_summarise_json_friendly():
    # the NEJM figures: 70 of 84 first (83%), 80 of 84 in the top 5 (95%)
    ranks = np.array([1.0] * 70 + [3.0] * 10 + [20.0] * 4 + [NAN] * 2)
    s = rank.summarise(ranks, n_gallery=84)
    json.dumps(s, allow_nan=False)  # strictly JSON-serialisable
    assert s["n"] == 84 and s["n_total"] == 86 and s["n_unusable"] == 2
    assert s["top1"]["hits"] == 70 and s["top1"]["rate"] == pytest.approx(70 / 84)
    assert s["top5"]["hits"] == 80 and s["top5"]["rate"] == pytest.approx(80 / 84)
    lo, hi = rank.wilson_interval(70, 84)
    assert (s["top1"]["ci_low"], s["top1"]["ci_high"]) == (lo, hi)
    assert s["top1"]["chance"] == pytest.approx(1 / 84)
    assert s["top5"]["chance"] == pytest.approx(5 / 84)
    assert s["ci_level"] == pytest.approx(0.95, abs=1e-3)
    assert len(s["cmc"]) == 84 and s["cmc"][-1] == 1.0
    assert s["median_rank"] == 1.0


def test_summarise_no_usable():
    s = rank.summarise(np.array([NAN, NAN]), n_gallery=2)
    json.dumps(s, allow_nan=False)
    assert s["n"] == 0
    assert s["top1"]["rate"] is None and s["top1"]["ci_low"] is None
    assert s["top1"]["chance"] == 0.5
    assert s["cmc"] == [None, None]


# -- top-k selection: one bound, exact at every width ---------------------------------

@pytest.mark.parametrize("n_cols", [1, 3, 7, 49, 50, 51, 199, 200, 399, 400, 799, 800, 801, 1603, 5000])
@pytest.mark.parametrize("k", [1, 2, 5, 50])
def test_top_k_selection_is_exact_around_the_bound_thresholds(n_cols, k):
    from bids_app.rank.topk import kth_lower_bound, nejm_candidates, nejm_select, top_mask

    if k > n_cols:
        return
    rng = np.random.default_rng(n_cols * 100 + k)
    # continuous values, many exact ties (rounded) and negatives (clipped by nejm)
    scores = np.round(rng.normal(size=(6, n_cols)), 1).astype(np.float32)
    kth = -np.sort(-scores, axis=1)[:, k - 1]
    bound, exact = kth_lower_bound(scores, k)
    assert (bound <= kth).all()
    if exact:
        np.testing.assert_array_equal(bound, kth)
    # the top-k mask is the one a stable sort of the negated scores gives
    reference = np.zeros(scores.shape, bool)
    np.put_along_axis(reference, np.argsort(-scores, axis=1, kind="stable")[:, :k], True, axis=1)
    np.testing.assert_array_equal(top_mask(scores, k), reference)
    # the sparse candidates are the non-zero entries of the dense selection
    conf = np.ascontiguousarray(scores)
    rows, cols, vals = nejm_candidates(conf, k)
    dense = np.zeros_like(conf)
    dense[rows, cols] = vals
    np.testing.assert_array_equal(dense, nejm_select(conf, k))
