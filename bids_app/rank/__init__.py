"""Scoring, ranking and summary metrics for face re-identification.

Everything here is pure NumPy (and SciPy for the Wilson interval) on arrays:
no file access, no logging. One module per job:

:mod:`~bids_app.rank.scoring`
    dense reference scoring: similarities, identity confidences, person
    scores (:data:`SCORINGS`), true ranks;
:mod:`~bids_app.rank.topk`
    top-k selection (one shared bound of the k-th largest value);
:mod:`~bids_app.rank.blocked`
    :func:`rank_gallery`, the same results by blocks of persons, for
    cohorts of any size;
:mod:`~bids_app.rank.metrics`
    Wilson intervals, the CMC curve, chance rates, :func:`summarise`;
:mod:`~bids_app.rank.verification`
    genuine and impostor pair similarities, ROC and AUC.

The public names are re-exported here: ``from bids_app import rank;
rank.rank_gallery(...)``.

Terminology
-----------
gallery
    The MRI renders, one embedding row per render. Several renders belong
    to one *identity* (one participant's MRI); ``gallery_identity`` holds the
    integer identity code of every render.
probes
    The participants' photos, one embedding row per photo. Several photos
    belong to one *person*; ``probe_person`` holds the person code of every
    photo.

Scoring follows Schwarz et al. (N Engl J Med 2019;381:1684-1686): the
renders of each MRI were enrolled as one identity of a face-recognition
service; for every photo the service returned the top-50 identities with a
non-negative confidence; the confidences were summed over a person's photos
and the rank of the person's own MRI in that sum was reported (top-1: 83%,
top-5: 95% of 84 volunteers). :func:`identity_scores_nejm` plays the role of
the service (identity confidence = best cosine similarity over the identity's
renders, clipped at 0, top-k only), :func:`aggregate_by_person` sums over
photos and :func:`true_ranks` ranks the true identity.

Conventions
-----------
* Embeddings are L2-normalised rows; a row of NaN means "no face detected".
* Ranks are 1-based and returned as ``float64`` arrays so that *unusable*
  persons can be ``NaN`` (a person with no usable photo, i.e. an all-zero or
  non-finite score row, or whose identity is not in the gallery, ``-1``).
  ``NaN`` never passes a ``rank <= k`` test, so it cannot be counted as a hit
  by mistake; callers write it as ``n/a``. Under ``ties="max"``/``"min"`` all
  finite ranks are whole numbers.
* The metrics (:func:`cmc_curve`, :func:`summarise`) leave ``NaN`` ranks out
  of the denominator but keep ``+inf``: a caller can pass ``inf`` for a person
  who has a usable photo but cannot be found at all (e.g. no face in any of
  their own MRI renders), so that they count as *not identified*.

Examples
--------
>>> import numpy as np
>>> gallery = np.eye(3)[[0, 0, 1, 1, 2, 2]]          # 3 identities x 2 renders
>>> probes = np.eye(3)[[0, 1, 2]]                    # one photo per person
>>> sim = cosine_similarity(probes, gallery)
>>> photo = identity_scores_nejm(sim, np.array([0, 0, 1, 1, 2, 2]), 3)
>>> person = aggregate_by_person(photo, np.array([0, 1, 2]), 3)
>>> true_ranks(person, np.array([0, 1, 2])).tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

from ._codes import TiePolicy
from .blocked import RankResult, rank_gallery
from .metrics import (
    Z_95,
    chance_rate,
    cmc_curve,
    json_float,
    summarise,
    wilson_interval,
)
from .scoring import (
    MISSING_CONFIDENCE,
    NEJM_TOP_K,
    SCORINGS,
    aggregate_by_person,
    cosine_similarity,
    identity_confidence,
    identity_scores_nejm,
    person_scores,
    true_ranks,
    usable_ranks,
)
from .topk import top_matches
from .verification import MAX_IMPOSTORS, auc_score, roc_curve, verification_pairs

__all__ = [
    "MAX_IMPOSTORS",
    "MISSING_CONFIDENCE",
    "NEJM_TOP_K",
    "SCORINGS",
    "RankResult",
    "TiePolicy",
    "Z_95",
    "aggregate_by_person",
    "auc_score",
    "chance_rate",
    "cmc_curve",
    "cosine_similarity",
    "identity_confidence",
    "identity_scores_nejm",
    "json_float",
    "person_scores",
    "rank_gallery",
    "roc_curve",
    "summarise",
    "top_matches",
    "true_ranks",
    "usable_ranks",
    "verification_pairs",
    "wilson_interval",
]
