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


def test_inadmissible_parameters_give_infinite_deviance():
    problem = factories.nested_bivariate().compile()
    theta = problem.params.start.copy()
    theta[problem.params.labels.index("student_theta_1_1")] = -1.0
    assert deviance(problem, theta) == np.inf
