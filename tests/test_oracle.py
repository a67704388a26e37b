"""Fast path vs the dense oracle at random parameters (tolerance 1e-8 relative)."""
import numpy as np
import pytest

import factories
from dense_oracle import dense_deviance
from xxmpy._core import kernels, twin
from xxmpy.likelihood import deviance


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


def test_compiled_block_kernel_matches_twin():
    if kernels.compiled is None:
        pytest.fail("the compiled kernel xxmpy._core._blocks is not built")
    rng = np.random.default_rng(3)
    for m in (1, 2, 5):
        a = rng.normal(size=(50, m, m))
        blocks = np.ascontiguousarray(a @ a.transpose(0, 2, 1) + m * np.eye(m))
        inv_c, ld_c = kernels.compiled.chol_inverse_logdet(blocks)
        inv_t, ld_t = twin.chol_inverse_logdet(blocks)
        np.testing.assert_allclose(inv_c, inv_t, rtol=1e-10, atol=1e-12)
        assert ld_c == pytest.approx(ld_t, rel=1e-12)
    bad = np.ascontiguousarray(-np.eye(2)[None])
    with pytest.raises(ArithmeticError):
        kernels.compiled.chol_inverse_logdet(bad)


def test_compiled_pattern_inverses_match_twin():
    """Inverse, log det and condition of each missing pattern's block: kernel vs twin,
    and the inverse checked directly against numpy on the observed block."""
    if kernels.compiled is None:
        pytest.fail("the compiled kernel xxmpy._core._blocks is not built")
    rng = np.random.default_rng(4)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + 0.5 * np.eye(4)
    patterns = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], np.uint8)
    got = kernels.compiled.pattern_inverses(cov, patterns)
    want = twin.pattern_inverses(cov, patterns)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    idx = [0, 2]
    np.testing.assert_allclose(got[0][1][np.ix_(idx, idx)], np.linalg.inv(cov[np.ix_(idx, idx)]),
                               rtol=1e-10)
    assert got[1][1] == pytest.approx(np.linalg.slogdet(cov[np.ix_(idx, idx)])[1], rel=1e-12)
    assert np.all(got[0][3] == 0) and got[1][3] == 0.0
    with pytest.raises(ArithmeticError):
        kernels.compiled.pattern_inverses(-cov, patterns)


def test_inadmissible_parameters_give_infinite_deviance():
    problem = factories.nested_bivariate().compile()
    theta = problem.params.start.copy()
    theta[problem.params.labels.index("student_theta_1_1")] = -1.0
    assert deviance(problem, theta) == np.inf
