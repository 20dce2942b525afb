"""Fusion of several face models into one embedding per row.

Several face models are fused exactly like :func:`bids_app.face.fuse_scores`
(mean of z-scored cosine similarities) by concatenating the models' scaled
embeddings, so that one dot product is the fused score and the blocked
ranking scales the same way as with one model.
"""

from __future__ import annotations

import numpy as np

from bids_app.rank import MAX_IMPOSTORS

from .load import finite_rows

__all__ = ["fuse_sets", "fusion_embeddings", "model_stats"]

#: Seed of the pair sample behind the similarity statistics of large cohorts.
_STATS_SEED = 0


def fusion_embeddings(per_model_rows: list[list[np.ndarray]], probe_side: list[bool], stats) -> list[np.ndarray]:
    """Concatenate models' embeddings so that one dot product is the fused score.

    For models m = 1..M with similarity mean mu_m and deviation sd_m, the fused
    score of a pair is ``sum_m [both have a face] (cos_m - mu_m) / (M sd_m)``,
    i.e. the mean z-score with a missing model counting as its mean (z = 0).
    Probe rows hold ``x_m / (M sd_m)`` and ``-mu_m / (M sd_m)``; gallery rows
    hold ``y_m`` and ``1``; zeros where the model found no face. A row with no
    face in any model stays NaN.
    """
    n_models = len(stats)
    out = []
    for rows_by_model, is_probe in zip(zip(*per_model_rows), probe_side):
        parts, any_face = [], np.zeros(len(rows_by_model[0]), bool)
        for (mu, sd), x in zip(stats, rows_by_model):
            ok = finite_rows(x)
            any_face |= ok
            x = np.where(ok[:, None], x, 0.0)
            if is_probe:
                parts += [x / (n_models * sd), np.where(ok, -mu / (n_models * sd), 0.0)[:, None]]
            else:
                parts += [x, ok.astype(np.float64)[:, None]]
        fused = np.concatenate(parts, axis=1).astype(np.float32)
        fused[~any_face] = np.nan
        out.append(fused)
    return out


def model_stats(probes: np.ndarray, gallery: np.ndarray) -> tuple[float, float]:
    """Mean and deviation of the cosine similarities (all pairs, or a sample for big cohorts)."""
    p = probes[finite_rows(probes)]
    g = gallery[finite_rows(gallery)]
    if not len(p) or not len(g):
        return 0.0, 1.0
    if len(p) * len(g) <= MAX_IMPOSTORS:
        sims = (p.astype(np.float64) @ g.astype(np.float64).T).ravel()
    else:
        rng = np.random.default_rng(_STATS_SEED)
        i, j = rng.integers(0, len(p), MAX_IMPOSTORS), rng.integers(0, len(g), MAX_IMPOSTORS)
        sims = np.einsum("ij,ij->i", p[i].astype(np.float64), g[j].astype(np.float64))
    sd = float(sims.std()) if sims.size > 1 else 0.0
    return float(sims.mean()), (sd if sd > 0 else 1.0)


def fuse_sets(vectors, set_keys: list[tuple[str, str, int]], n_models: int,
              model_infos: list[dict]) -> tuple[dict, dict]:
    """One vector matrix per embedding set, fused over the models, and the fused model's description.

    ``vectors(model, key)`` returns one model's vectors of the set ``key =
    (subject, "mri" or "photo", index)``.
    """
    if n_models == 1:
        return {key: vectors(0, key) for key in set_keys}, model_infos[0]
    stats = []
    for m in range(n_models):
        mri = [vectors(m, k) for k in set_keys if k[1] == "mri"]
        photo = [vectors(m, k) for k in set_keys if k[1] == "photo"]
        g = np.concatenate(mri)
        stats.append(model_stats(np.concatenate(photo) if photo else g, g))
    fused = fusion_embeddings([[vectors(m, k) for k in set_keys] for m in range(n_models)],
                              [k[1] == "photo" for k in set_keys], stats)
    model_info = {
        "Name": "+".join(str(info.get("Name")) for info in model_infos),
        "Fusion": "mean of per-model z-scored cosine similarities",
        "FusionStatistics": [{"Mean": mu, "SD": sd} for mu, sd in stats],
        "Models": model_infos,
        "Dimension": model_infos[0].get("Dimension"),
    }
    return dict(zip(set_keys, fused)), model_info
