"""The dense remainder in a fill-reducing order, factored a supernode at a time.

compile/ordering.py orders the remainder's units by minimum degree and groups its
factor into supernodes; engine/_supernodal.pyx factors and selectively inverts
it. Checked here: the order and supernodes against a brute-force symbolic
elimination, and -2 log L, gradient and posterior on crossed problems against
the dense path (the same compiled problem without supernodes) and against the
numpy reference (which factors and inverts the whole remainder densely).
"""
import numpy as np
import pandas as pd
import pytest

import xxmpy as xm
from xxmpy.compile import ordering
from xxmpy.engine import deviance_and_gradient, latent_posterior

from factories import crossed_bivariate, crossed_with_etas_at_bottom, random_theta, three_crossed
from test_profiled import _penicillin
from twin_check import assert_compiled_matches_twin, assert_posteriors_match


def _random_graph(rng, N, n_cliques, size, n_pairs):
    cliques = [rng.choice(N, size=min(size, N), replace=False) for _ in range(n_cliques)]
    ptr = np.concatenate([[0], np.cumsum([len(c) for c in cliques])])
    pu, pv = rng.integers(0, N, n_pairs), rng.integers(0, N, n_pairs)
    return pu, pv, ptr, np.concatenate(cliques)


def _filled_pattern(weight, pu, pv, ptr, idx, position):
    """Rows-level pattern of the factor of the permuted matrix by brute force: dense
    boolean elimination, row by row."""
    start = np.zeros(len(weight) + 1, int)
    by_place = np.argsort(position)
    start[1:] = np.cumsum(weight[by_place])
    row0 = np.empty(len(weight), int)
    row0[by_place] = start[:-1]
    n = start[-1]
    A = np.eye(n, dtype=bool)

    def couple(u, v):
        ru = np.arange(row0[u], row0[u] + weight[u])
        rv = np.arange(row0[v], row0[v] + weight[v])
        A[np.ix_(ru, rv)] = A[np.ix_(rv, ru)] = True

    for u in range(len(weight)):
        couple(u, u)
    for u, v in zip(pu, pv):
        couple(u, v)
    for c in range(len(ptr) - 1):
        for u in idx[ptr[c]:ptr[c + 1]]:
            for v in idx[ptr[c]:ptr[c + 1]]:
                couple(u, v)
    for j in range(n):
        nb = np.flatnonzero(A[j, j + 1:]) + j + 1
        A[np.ix_(nb, nb)] = True
    return np.triu(A), row0


def _supernodal_pattern(sn, n):
    P = np.zeros((n, n), bool)
    for J in range(len(sn.start) - 1):
        rows = np.arange(sn.start[J], sn.start[J + 1])
        P[np.ix_(rows, rows)] = True
        P[np.ix_(rows, sn.r_idx[sn.r_ptr[J]:sn.r_ptr[J + 1]])] = True
    return np.triu(P)


@pytest.mark.parametrize("seed", range(6))
def test_supernodes_cover_the_exact_fill_and_keep_flat_units_last(seed, monkeypatch):
    """On random graphs (weights 1-3 rows per unit, with and without a last flat unit):
    the supernodal pattern holds every entry of the factor's pattern (brute-force
    symbolic elimination in the chosen order), each supernode's reach is sorted, after
    its rows and a clique of the pattern, the flat units are last and start a supernode
    of their own, and the order is the same on a second run."""
    monkeypatch.setattr(ordering, "MODE", "always")
    rng = np.random.default_rng(seed)
    N = int(rng.integers(8, 40))
    weight = rng.integers(1, 4, N)
    n_last = seed % 2
    pu, pv, ptr, idx = _random_graph(rng, N, int(rng.integers(2, 12)), int(rng.integers(2, 6)),
                                     int(rng.integers(0, 10)))
    if n_last:                          # a flat unit coupled to everything
        pu = np.concatenate([pu, np.arange(N - 1)])
        pv = np.concatenate([pv, np.full(N - 1, N - 1)])
    position, sn = ordering.order_remainder(weight, pu, pv, ptr, idx, n_last)
    again = ordering.order_remainder(weight, pu, pv, ptr, idx, n_last)
    assert np.array_equal(position, again[0]) and np.array_equal(sn.r_idx, again[1].r_idx)
    assert sorted(position) == list(range(N))
    filled, row0 = _filled_pattern(weight, pu, pv, ptr, idx, position)
    n = filled.shape[0]
    assert sn.start[-1] == n
    pattern = _supernodal_pattern(sn, n)
    assert not (filled & ~pattern).any()
    for J in range(len(sn.start) - 1):
        reach = sn.r_idx[sn.r_ptr[J]:sn.r_ptr[J + 1]]
        assert np.all(np.diff(reach) > 0) and (len(reach) == 0 or reach[0] >= sn.start[J + 1])
        assert pattern[np.ix_(reach, reach)][np.triu_indices(len(reach))].all()
    if n_last:
        assert position[N - 1] == N - 1
        assert row0[N - 1] in sn.start


def _crossed_problems():
    return {"crossed_bivariate": crossed_bivariate, "etas_at_bottom": crossed_with_etas_at_bottom,
            "three_crossed": three_crossed,
            "courses": lambda: _ratings_model(_courses(60, 24, 4, mixed=False, stray=0.1)),
            "penicillin_ml": _penicillin, "penicillin_kappa": lambda: _penicillin(False)}


def _compiled(make, mode, monkeypatch):
    monkeypatch.setattr(ordering, "MODE", mode)
    return make().compile()


@pytest.mark.parametrize("name", list(_crossed_problems()))
def test_supernodal_remainder_matches_dense_remainder_and_numpy_twin(name, monkeypatch):
    """The same crossed problem with the remainder factored a supernode at a time and
    densely: -2 log L, gradient and posterior agree to 1e-10 at random parameters
    (multi-eta units, missing ys, a latent variable at the bottom, ML's profiled
    fixed effects as the remainder's last rows, REML-free kappa); the supernodal one
    also matches the numpy reference."""
    make = _crossed_problems()[name]
    sparse = _compiled(make, "always", monkeypatch)
    dense = _compiled(make, "never", monkeypatch)
    assert sparse.form.lowered.supernodes is not None
    assert dense.form.lowered.supernodes is None
    rng = np.random.default_rng(11)
    for _ in range(3):
        theta = random_theta(dense, rng)
        f_s, g_s = deviance_and_gradient(sparse, theta)
        f_d, g_d = deviance_and_gradient(dense, theta)
        assert np.isfinite(f_d) and f_s == pytest.approx(f_d, rel=1e-12)
        np.testing.assert_allclose(g_s, g_d, rtol=1e-10, atol=1e-10 * np.abs(g_d).max())
        assert_posteriors_match(latent_posterior(sparse, theta),
                                latent_posterior(dense, theta), 1e-10)
        assert_compiled_matches_twin(sparse, theta)


def _courses(n_students, n_lecturers, n_depts, mixed, stray=0.0, seed=5):
    """Students rating lecturers: each student stays in one department (mixed=False:
    the lecturers' coupling is block diagonal), with probability ``stray`` adding one
    lecturer anywhere (sparse links between departments), or takes lecturers anywhere."""
    rng = np.random.default_rng(seed)
    dept_of = np.arange(n_lecturers) % n_depts
    rows = []
    for s in range(n_students):
        pool = np.flatnonzero(dept_of == rng.integers(n_depts)) if not mixed \
            else np.arange(n_lecturers)
        took = list(rng.choice(pool, size=min(4, len(pool)), replace=False))
        if rng.random() < stray:
            took.append(rng.integers(n_lecturers))
        for d in np.unique(took):
            rows.append((s, d, dept_of[d]))
    df = pd.DataFrame(rows, columns=["s", "d", "dept"])
    df["obs"] = np.arange(len(df))
    effect = {k: rng.normal(scale=sd, size=df[k].max() + 1)
              for k, sd in (("s", 0.7), ("d", 0.5), ("dept", 0.6))}
    df["y"] = sum(effect[k][df[k]] for k in effect) + rng.normal(size=len(df))
    return df


def _ratings_model(df):
    m = xm.Model(["obs", "s", "d", "dept"])
    m.level("obs", parents=["s", "d", "dept"], ys=["y"], data=df)
    for lvl in ("s", "d", "dept"):
        m.level(lvl, etas=[f"u_{lvl}"], data=pd.DataFrame({lvl: np.unique(df[lvl])}))
        m.within(lvl, "psi", [[1]], [[0.3]])
        m.between(lvl, "obs", "lambda", [[0]], [[1.0]])
    m.within("obs", "theta", [[1]], [[1.0]])
    m.within("obs", "nu", [[1]], [[0.0]])
    return m


def test_auto_takes_the_supernodal_path_only_when_it_pays(monkeypatch):
    """'auto': students within departments leave the lecturers' factor block diagonal
    (the supernodal path, well under half the dense flops); students taking lecturers
    anywhere leave it dense (the dense path). Both fit to the dense path's optimum."""
    monkeypatch.setattr(ordering, "MODE", "auto")
    local = _ratings_model(_courses(300, 120, 12, mixed=False)).compile()
    sn = local.form.lowered.supernodes
    assert sn is not None and sn.flops < 0.2 * sn.dense_flops
    mixed = _ratings_model(_courses(300, 120, 12, mixed=True)).compile()
    assert mixed.form.lowered.supernodes is None
    fit = _ratings_model(_courses(300, 120, 12, mixed=False)).fit()
    monkeypatch.setattr(ordering, "MODE", "never")
    dense = _ratings_model(_courses(300, 120, 12, mixed=False)).fit()
    assert fit.converged and dense.converged
    assert fit.deviance == pytest.approx(dense.deviance, rel=1e-10)
    np.testing.assert_allclose(fit.params, dense.params, rtol=1e-5, atol=1e-7)
