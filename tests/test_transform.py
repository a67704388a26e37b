"""Cholesky coordinates of covariance blocks (xxmpy/transform.py).

Reference: the parameters themselves (round trip) and central finite
differences of -2 log L through the transform (pullback).
"""
import numpy as np
import pytest

import factories
import reference_models as ref
from test_collapse import two_factor_leaf
from xxmpy.engine import deviance, deviance_and_gradient
from xxmpy.engine import backend
from xxmpy.fit import transform as transform_module
from xxmpy.fit.transform import Transform


@pytest.mark.parametrize("make", [ref.brim, factories.nested_bivariate],
                         ids=lambda f: f.__name__)
def test_round_trip_and_pullback_in_every_profile_mode(make):
    problem = make().compile()
    theta = problem.params.start
    for j in [None] + list(range(problem.params.n)):
        fixed = np.zeros(problem.params.n, bool)
        if j is not None:
            fixed[j] = True
        t = Transform(problem, 1e-8, fixed)
        x = t.from_theta(theta)
        np.testing.assert_allclose(t.to_theta(x), theta, rtol=1e-12, atol=1e-14)
        if j is not None:           # the held parameter stays a single fixed coordinate
            moved = x.copy()
            moved[~fixed] += 0.01
            assert t.to_theta(moved)[j] == pytest.approx(theta[j], rel=1e-12)
        _, g = deviance_and_gradient(problem, theta)
        gx = t.pullback(x, g)
        fd = [(deviance(problem, t.to_theta(x + 1e-6 * e)) -
               deviance(problem, t.to_theta(x - 1e-6 * e))) / 2e-6 for e in np.eye(x.size)]
        np.testing.assert_allclose(gx, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(fd).max()))


def _correlation(theta, slots, j):
    r, c = np.argwhere(slots == j)[0]
    return theta[j] / np.sqrt(theta[slots[r, r]] * theta[slots[c, c]])


@pytest.mark.parametrize("make", [ref.brim, two_factor_leaf], ids=lambda f: f.__name__)
def test_a_held_correlation_stays_put_and_its_pullback_is_the_gradient(make):
    """correlation=True: the coordinate of a held covariance is its correlation; moving
    every other coordinate keeps the correlation (not the covariance), and the
    pullback is the gradient in those coordinates (central differences)."""
    problem = make().compile()
    theta = problem.params.start.copy()
    blocks = list(problem.cholesky_blocks.values())
    off = [(slots, j) for slots in blocks
           for j in np.unique(slots[np.tril_indices(len(slots), -1)])]
    assert off
    for slots, j in off:
        fixed = np.zeros(problem.params.n, bool)
        fixed[j] = True
        t = Transform(problem, 1e-8, fixed, correlation=True)
        x = t.from_theta(theta)
        assert x[j] == pytest.approx(_correlation(theta, slots, j), rel=1e-12)
        np.testing.assert_allclose(t.to_theta(x), theta, rtol=1e-12, atol=1e-14)
        moved = x.copy()
        moved[~fixed] *= 1.1
        moved_theta = t.to_theta(moved)
        assert moved_theta[j] != pytest.approx(theta[j], rel=1e-6)
        assert _correlation(moved_theta, slots, j) == pytest.approx(x[j], rel=1e-12)
        _, g = deviance_and_gradient(problem, theta)
        gx = t.pullback(x, g)
        fd = [(deviance(problem, t.to_theta(x + 1e-6 * e)) -
               deviance(problem, t.to_theta(x - 1e-6 * e))) / 2e-6 for e in np.eye(x.size)]
        np.testing.assert_allclose(gx, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_only_fully_free_uniquely_labelled_blocks_are_factored():
    brim = ref.brim().compile()
    assert {k[2] for k in brim.cholesky_blocks} == {"theta", "psi"}
    # Pastes: 1 x 1 variances only -> plain bounds
    assert dict(ref.pastes().compile().cholesky_blocks) == {}


def test_admissible_pulls_a_warm_start_back_into_the_cone():
    problem = ref.brim().compile()
    t = Transform(problem, 1e-8)
    theta = problem.params.start.copy()
    j = problem.params.labels.index("teacher_psi_2_1")
    theta[j] = 10.0                                  # |correlation| far above 1
    fixed = np.zeros(theta.size, bool)
    fixed[problem.params.labels.index("teacher_psi_1_1")] = True
    out = t.admissible(theta, fixed)
    assert np.isfinite(deviance(problem, out))
    assert out[fixed] == theta[fixed] and abs(out[j]) < 10.0


@pytest.mark.parametrize("make", [ref.brim, factories.crossed_bivariate, two_factor_leaf],
                         ids=lambda f: f.__name__)
def test_compiled_cholesky_map_matches_numpy_twin(make, monkeypatch):
    """to_theta and pullback (1-d and 2-d gradients) of the compiled CholeskyMap vs
    Transform's numpy forms, free and with each parameter held (2 x 2 and 3 x 3 blocks)."""
    if not backend.COMPILED:
        pytest.fail("the compiled kernels are not built (or XXMPY_KERNEL=numpy is set)")
    problem = make().compile()
    k = problem.params.n
    rng = np.random.default_rng(4)
    theta = problem.params.start
    g = rng.normal(size=(3, k))
    assert max(len(s) for s in problem.cholesky_blocks.values()) >= 2   # two_factor_leaf: 3
    for j, correlation in [(None, False)] + [(j, c) for j in range(k) for c in (False, True)]:
        fixed = np.zeros(k, bool)
        if j is not None:
            fixed[j] = True
        compiled = Transform(problem, 1e-8, fixed, correlation=correlation)
        x = compiled.from_theta(theta) + 0.01 * rng.normal(size=k)
        got = compiled.to_theta(x), compiled.pullback(x, g[0]), compiled.pullback(x, g)
        with monkeypatch.context() as patch:
            patch.setattr(transform_module, "CholeskyMap", None)
            twin = Transform(problem, 1e-8, fixed, correlation=correlation)
            want = twin.to_theta(x), twin.pullback(x, g[0]), twin.pullback(x, g)
        assert compiled.compiled is not None and twin.compiled is None
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
