"""Factor scores: each unit's posterior mean and SD of its level's etas.

The posterior N(mean, cov) of all etas given all observed ys at the estimates
(engine.latent_posterior: the conditional modes and covariances, lme4's ranef
and condVar; the regression / empirical-Bayes factor scores of SEM). It
accounts for every level at once, nested or crossed, and for missing ys.
"""
import numpy as np
import pandas as pd

from ..engine import latent_posterior


def factor_scores(problem, theta, etas, level):
    """DataFrame, one row per unit of ``level`` (index its ids): for each eta its
    posterior mean (column <eta>) and SD (<eta>_sd). ``etas``: the level's eta names."""
    k = problem.level_names.index(level)
    mean, cov = latent_posterior(problem, np.asarray(theta, float))[k]
    return scores_frame(problem.levels[k].ids, level, etas, mean, cov)


def scores_frame(ids, level, etas, mean, cov):
    """factor_scores' DataFrame from the units' ids (n,), posterior means (n, m) and
    covariances (n, m, m)."""
    sd = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
    out = pd.DataFrame(index=pd.Index(ids, name=level))
    for j, eta in enumerate(etas):
        out[eta] = mean[:, j]
        out[f"{eta}_sd"] = sd[:, j]
    return out
