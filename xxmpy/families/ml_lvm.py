"""psychonetrics' ml_lvm family: a two-level latent variable model from one long table.

For p observed variables y in clusters and q factors (``lambda_``, p x q, nonzero
where a variable loads):

  within (rows)       y = nu + Lambda eta_w + e_w,   cov(eta_w) = Psi_w, cov(e_w) = Theta_w
  between (clusters)  + Lambda eta_b + e_b,          cov(eta_b) = Psi_b, cov(e_b) = Theta_b

one loading matrix for both levels (each factor's first loading fixed at 1, the
others one label each, shared by the levels), free intercepts nu, the latent
covariances free and the residual covariances diagonal (psychonetrics' defaults:
a residual network starts empty; free its edges with ``stepup`` or by hand). In
xxM terms the between residuals e_b are etas of the cluster level loading 1 on
their y, so the cluster's psi holds Psi_b and Theta_b as two diagonal blocks,
each in its own form. Every covariance block is written in the form asked
('cov', 'chol', 'prec' or 'ggm'; compile/forms.py). The result is an ordinary
fitted model: estimates, fit measures, modification indices, profile CIs,
``network(level, which)`` and ``prune`` all work on it.
"""
import numpy as np
import pandas as pd

from ..api.model import Model
from ..spec.objects import FORMS


def _check(data, lambda_, cluster, vars, forms):
    problems = []
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"ml_lvm: data= must be a pandas DataFrame, got {type(data).__name__}.")
    if cluster not in data.columns:
        problems.append(f"cluster={cluster!r} is not a column of data (columns: "
                        f"{list(data.columns)}).")
    vars = [c for c in data.columns if c != cluster] if vars is None else list(vars)
    missing = [v for v in vars if v not in data.columns]
    if missing:
        problems.append(f"vars= names {missing}, not columns of data.")
    lam = np.asarray(lambda_, dtype=float)
    if lam.ndim != 2 or lam.shape[0] != len(vars):
        problems.append(f"lambda_ must be a (variables x factors) matrix with one row per "
                        f"variable ({len(vars)}: {vars}); got shape {lam.shape}.")
    elif not np.all(np.any(lam != 0, axis=0)):
        problems.append("lambda_: every factor (column) needs at least one loading.")
    for name, form in forms.items():
        if form not in FORMS:
            problems.append(f"{name}={form!r} is not one of {list(FORMS)}.")
    if problems:
        raise ValueError("ml_lvm: " + " ".join(problems))
    return vars, lam


def build_ml_lvm(data, lambda_, cluster, vars=None, within_latent="cov",
                 within_residual="cov", between_latent="cov", between_residual="cov",
                 latents=None):
    """The ml_lvm model (module doc) as an unfitted xxmpy Model."""
    vars, lam = _check(data, lambda_, cluster, vars,
                       dict(within_latent=within_latent, within_residual=within_residual,
                            between_latent=between_latent, between_residual=between_residual))
    p, q = lam.shape
    latents = [f"F{j + 1}" for j in range(q)] if latents is None else list(latents)
    if len(latents) != q:
        raise ValueError(f"ml_lvm: latents= names {len(latents)} factors; lambda_ has {q}.")
    row = "row"
    while row in data.columns or row == cluster:
        row = "_" + row
    rows = data[[cluster] + vars].copy()
    rows[row] = np.arange(len(rows))
    clusters = pd.DataFrame({cluster: pd.unique(rows[cluster])})
    residuals = [f"eps_{v}" for v in vars]

    free = (lam != 0).astype(float)
    marker = np.zeros_like(free)
    label = np.full((p, q), None, dtype=object)
    for j in range(q):
        loads = np.flatnonzero(free[:, j])
        free[loads[0], j], marker[loads[0], j] = 0.0, 1.0
        for i in loads[1:]:
            label[i, j] = f"lambda_{vars[i]}_{latents[j]}"

    m = Model([row, cluster], name="ml_lvm")
    m.level(row, parents=[cluster], ys=vars, etas=latents, data=rows)
    m.level(cluster, etas=latents + residuals, data=clusters)
    m.within(row, "lambda", free, marker, label)
    m.within(row, "nu", np.ones((p, 1)), np.zeros((p, 1)))
    # identity starts: Sigma = I in every form (D = 1, K = I, L = I); fit's start="auto"
    # replaces them by the data's variances
    m.within(row, "psi", np.ones((q, q)), np.eye(q), form=within_latent)
    m.within(row, "theta", np.eye(p), np.eye(p), form=within_residual)
    between = np.zeros((q + p, q + p))
    between[:q, :q] = 1
    between[q:, q:] = np.eye(p)
    m.within(cluster, "psi", between, np.eye(q + p) * 0.5,
             form=[between_latent] * q + [between_residual] * p)
    m.between(cluster, row, "lambda", np.column_stack([free, np.zeros((p, p))]),
              np.column_stack([marker, np.eye(p)]),
              np.column_stack([label, np.full((p, p), None, dtype=object)]))
    return m


def ml_lvm(data, lambda_, cluster, vars=None, within_latent="cov", within_residual="cov",
           between_latent="cov", between_residual="cov", latents=None, **fit_options):
    """psychonetrics' ``ml_lvm``: build the two-level latent variable model (module doc)
    and fit it; returns the FitResult (its ``.model`` is the xxmpy Model).

    data: one row per observation, with the cluster column; lambda_: (p, q) loading
    pattern, nonzero where variable i loads on factor j; cluster: the cluster column;
    vars: the observed variables (default: every other column); the four forms:
    'cov', 'chol', 'prec' or 'ggm' for the within and between latent and residual
    covariance blocks; latents: factor names (default F1..Fq); fit_options: passed
    to Model.fit (start values default to 'auto', from the data).
    """
    model = build_ml_lvm(data, lambda_, cluster, vars, within_latent, within_residual,
                         between_latent, between_residual, latents)
    fit_options.setdefault("start", "auto")
    return model.fit(**fit_options)


def ml_lnm(data, lambda_, cluster, **options):
    """ml_lvm with both latent covariance blocks as networks (psychonetrics' ml_lnm)."""
    return ml_lvm(data, lambda_, cluster, within_latent="ggm", between_latent="ggm",
                  **options)


def ml_rnm(data, lambda_, cluster, **options):
    """ml_lvm with both residual blocks as (empty, to be searched) networks (ml_rnm)."""
    return ml_lvm(data, lambda_, cluster, within_residual="ggm", between_residual="ggm",
                  **options)


def ml_lrnm(data, lambda_, cluster, **options):
    """ml_lvm with every latent and residual block a network (ml_lrnm)."""
    return ml_lvm(data, lambda_, cluster, within_latent="ggm", between_latent="ggm",
                  within_residual="ggm", between_residual="ggm", **options)
