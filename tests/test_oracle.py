"""Fast path vs the dense oracle at random parameters (tolerance 1e-8 relative)."""
import numpy as np
import pytest

import factories
from dense_oracle import dense_deviance
from xxmpy.engine.reference import blocks as reference_blocks
from xxmpy.engine import deviance


@pytest.mark.parametrize("factory", factories.ALL, ids=lambda f: f.__name__)
def test_fast_path_matches_dense_oracle(factory):
    problem = factory().compile()
    rng = np.random.default_rng(42)
    for _ in range(4):
        theta = factories.random_theta(problem, rng)
        assert deviance(problem, theta) == pytest.approx(dense_deviance(problem, theta),
                                                         rel=1e-8)


def test_schedules_cover_nested_and_crossed():
    nested = factories.three_level().compile()
    assert nested.structure == "nested" and nested.schedule.n_dense == 0
    crossed = factories.crossed_bivariate().compile()
    assert crossed.structure == "cross-classified"
    # responses have no etas; raters (7) are eliminated first, targets (5 x 2) stay dense
    assert crossed.schedule.sparse_order == [1] and crossed.schedule.n_dense == 10


def test_reference_block_kernels_against_numpy():
    """The reference path's small dense blocks against numpy one-liners (the compiled
    ones are compared with these through the driver, tests/twin_check.py)."""
    rng = np.random.default_rng(3)
    for m in (1, 2, 5):
        a = rng.normal(size=(50, m, m))
        blocks = np.ascontiguousarray(a @ a.transpose(0, 2, 1) + m * np.eye(m))
        inv_chol, logdet = reference_blocks.chol_inverse_logdet(blocks)
        np.testing.assert_allclose(np.linalg.inv(np.linalg.cholesky(blocks)), inv_chol,
                                   rtol=1e-10, atol=1e-12)
        assert logdet == pytest.approx(np.linalg.slogdet(blocks)[1].sum(), rel=1e-12)
    with pytest.raises(ArithmeticError):
        reference_blocks.chol_inverse_logdet(np.ascontiguousarray(-np.eye(2)[None]))


def test_reference_pattern_inverses_against_numpy():
    """Inverse, log det and condition of each missing pattern's observed block."""
    rng = np.random.default_rng(4)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + 0.5 * np.eye(4)
    patterns = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], np.uint8)
    W, logdet, cond = reference_blocks.pattern_inverses(cov, patterns)
    for k, pattern in enumerate(patterns.astype(bool)):
        sub = cov[np.ix_(pattern, pattern)]
        np.testing.assert_allclose(W[k][np.ix_(pattern, pattern)], np.linalg.inv(sub)
                                   if pattern.any() else sub, rtol=1e-10)
        assert np.all(W[k][~pattern] == 0) and np.all(W[k][:, ~pattern] == 0)
        assert logdet[k] == pytest.approx(np.linalg.slogdet(sub)[1] if pattern.any() else 0.0,
                                          abs=1e-12)
        if pattern.any():      # m ||L^-1 D^1/2||_F^2 bounds the correlation's condition
            d = np.sqrt(np.diag(sub))
            corr_cond = np.linalg.cond(sub / np.outer(d, d))
            m = pattern.sum()
            assert corr_cond * (1 - 1e-12) <= cond[k] <= m * m * corr_cond * (1 + 1e-12)
    # blind to units: rescaling the variables leaves it unchanged
    scale = np.array([1e4, 1e-3, 1.0, 30.0])
    _, _, scaled = reference_blocks.pattern_inverses(cov * np.outer(scale, scale), patterns)
    np.testing.assert_allclose(scaled, cond, rtol=1e-8)
    with pytest.raises(ArithmeticError):
        reference_blocks.pattern_inverses(-cov, patterns)


def test_inadmissible_parameters_give_infinite_deviance():
    problem = factories.nested_bivariate().compile()
    theta = problem.params.start.copy()
    theta[problem.params.labels.index("student_theta_1_1")] = -1.0
    assert deviance(problem, theta) == np.inf
