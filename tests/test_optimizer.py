"""The optimiser reaches the optimum from anywhere reasonable, on any machine (issue #23).

References: every model's -2 log L from its written start values, which the
reference tests tie to lme4 / OpenMx (test_reference.py, test_models.py). From
start values each multiplied by exp(delta z), z ~ N(0, 1), with delta = 1e-3
and 0.1, ten seeds each, a fit must end within 1e-6 relative of it. And the
small reference fits must end there under another CPU's arithmetic: valgrind's
emulated CPU rounds some operations differently, as another CPU, BLAS or
compiler would (before: Penicillin ended at 437.8 instead of 332.19, Dyestuff2
at 166.2 instead of 162.87).
"""
import contextlib
import io
import os
import runpy
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import reference_models as ref

MODELS = Path(__file__).resolve().parents[1] / "models"
SMALL = {"Dyestuff": ref.one_way, "Dyestuff2": lambda: ref.one_way("Dyestuff2.csv",
                                                                    start=(5.0, 1.0, 10.0)),
         "Pastes": ref.pastes, "Penicillin": ref.penicillin, "sleepstudy": ref.sleepstudy,
         "brim": ref.brim}


def gallery_model(name):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runpy.run_path(str(MODELS / name / f"{name}.py"), run_name="__main__")[
            "fit_xxm"].model


def perturbed(start, delta, seed):
    rng = np.random.default_rng(seed)
    out = start * np.exp(delta * rng.normal(size=start.size))
    return np.where(start == 0, delta * rng.normal(size=start.size), out)


def assert_reaches_optimum(model, deltas=(1e-3, 0.1), seeds=10):
    """From perturbed written starts and from start='auto' (the data's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = model.fit().deviance
        start = model.compile().params.start
        for delta in deltas:
            for seed in range(seeds):
                fit = model.fit(start=perturbed(start, delta, seed))
                assert fit.deviance == pytest.approx(reference, rel=1e-6), (delta, seed)
                assert fit.converged, (delta, seed, fit.record.status)
        auto = model.fit(start="auto")
    assert auto.deviance == pytest.approx(reference, rel=1e-6) and auto.converged


def test_auto_starts_come_from_the_data_and_ignore_the_written_ones():
    """start='auto' ignores value= of free elements: a model written with absurd start
    values fits from the data's moments (means, variances split across levels)."""
    import xxmpy as xm
    m = ref.one_way(start=(1e6, 1e-3, 1e9))         # mean, batch and residual variance
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit(start="auto")
    assert fit.deviance == pytest.approx(327.3271, abs=1e-4)      # lme4 ML (Dyestuff)
    start = fit.record.start
    obs = m.spec.submodels["obs"].data
    assert start[fit.labels.index("mean")] == pytest.approx(obs.Yield.mean())
    assert 0 < start[fit.labels.index("residual")] < obs.Yield.var()
    with pytest.raises(ValueError, match="start= must be 'auto'"):
        m.fit(start="data")
    assert xm.xxmRun(ref.one_way(), start="auto").result.converged


@pytest.mark.parametrize("name", list(SMALL), ids=list(SMALL))
def test_small_reference_fits_from_perturbed_starts(name):
    assert_reaches_optimum(SMALL[name]())


@pytest.mark.parametrize("name", ["three_level", "two_level_cfa", "cross_classified",
                                  "cfa_random_slope", "network_three_level"])
def test_gallery_fits_from_perturbed_starts(name):
    """three_level from 10% perturbations: before, 2 in 5 ended 80 units of -2 log L
    high, with a between-level regression flipped in sign by the first step.
    network_three_level (networks in form='ggm'): before, 3 in 10 at 10% drove a
    network's scale D to 1e-8 of its unit (a variance of 1e-16: the engine's numbers
    are noise there) and 'found' -2 log L up to 285 below the optimum; scales are now
    held above the root of the variance floor and a form's variances above the floor."""
    assert_reaches_optimum(gallery_model(name))


VALGRIND_SCRIPT = """
import sys, warnings
sys.path.insert(0, {tests!r})
import reference_models as ref
warnings.simplefilter("ignore")
for name, make in [("Dyestuff", ref.one_way), ("Pastes", ref.pastes),
                   ("Penicillin", ref.penicillin), ("sleepstudy", ref.sleepstudy),
                   ("brim", ref.brim),
                   ("Dyestuff2", lambda: ref.one_way("Dyestuff2.csv", start=(5.0, 1.0, 10.0)))]:
    fit = make().fit()
    print(name, repr(fit.deviance), fit.converged, flush=True)
"""


def test_small_reference_fits_on_another_cpus_arithmetic(tmp_path):
    """The small reference fits run once under valgrind --tool=none (a Debian package;
    .ci/run installs it): the same optimum on an emulated CPU's rounding."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        if os.environ.get("CI"):
            pytest.fail("valgrind is not installed; .ci/run installs it (apt-get install "
                        "valgrind)")
        pytest.skip("valgrind not installed (apt-get install valgrind)")
    script = tmp_path / "fits.py"
    script.write_text(VALGRIND_SCRIPT.format(tests=str(Path(__file__).parent)))
    run = subprocess.run([valgrind, "--tool=none", "-q", "--trace-children=yes",
                          sys.executable, str(script)], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # Dyestuff2's variance on its bound
        native = {name: make().fit().deviance for name, make in SMALL.items()}
    seen = {}
    for line in run.stdout.splitlines():
        name, value, converged = line.split()
        seen[name] = float(value)
        assert converged == "True", line
    assert set(seen) == set(SMALL)
    for name, value in seen.items():
        assert value == pytest.approx(native[name], rel=1e-6), name


def test_line_search_steps_back_from_a_bound_that_is_worse():
    """A step that puts a coordinate on its bound, where -2 log L is worse than at the
    current point, is followed by one that keeps 10% of the distance to the bound; a
    bound that is better is kept (a variance whose optimum is 0 gets there)."""
    from xxmpy.fit.optimize import TO_BOUNDARY, _line_search

    def quadratic(optimum):
        def fg(v):
            calls.append(v.copy())
            r = v - optimum
            return float(r @ r), 2.0 * r
        return fg
    x, lower = np.array([1.0, 1.0]), np.array([0.0, -np.inf])
    d = np.array([-10.0, 0.0])                  # the first coordinate overshoots 0 tenfold
    calls = []
    # optimum 0.52: the bound (0) is worse than x, 10% of the way to it (0.1) better;
    # halving would try 0.5, 0.25, 0.125 (all on the bound) before 0.0625
    fg = quadratic(np.array([0.52, 0.5]))
    f, g = fg(x)
    calls.clear()
    new, f_new, _ = _line_search(fg, x, f, g, d, lower)
    assert len(calls) == 2 and calls[0][0] == 0.0                      # on the bound, then
    reach = TO_BOUNDARY * (x[0] - lower[0]) / -d[0]                    # 10% of the distance
    np.testing.assert_allclose(new, x + reach * d)
    assert f_new < f
    calls = []
    fg = quadratic(np.array([-1.0, 0.5]))       # the optimum is beyond the bound: on it
    f, g = fg(x)
    calls.clear()
    new, _, _ = _line_search(fg, x, f, g, d, lower)
    assert new[0] == 0.0


class _RoundedQuadratic:
    """-2 log L = 3.5e6 + (x - m)' A (x - m) read with rounding: every value but the
    first comes out ``bump`` high (as the full-size grade design's 1.7 million observed
    values round it by ~1e-3), while the gradient is exact; noise: the relative
    rounding Objective.noise would assign to n_observed values."""

    def __init__(self, n_observed, bump):
        self.A = np.array([[4.0e6, 1.0e5], [1.0e5, 1.0e4]])
        self.m = np.array([0.4, 0.1])
        self.noise = float(np.finfo(float).eps) * n_observed
        self.bump, self.calls = bump, 0

    def __call__(self, x):
        r = x - self.m
        self.calls += 1
        return 3.5e6 + r @ self.A @ r + (self.bump if self.calls > 1 else 0.0), \
            2.0 * self.A @ r


def test_polish_takes_a_newton_step_whose_drop_is_below_the_rounding_of_f():
    """Full-size grade design (benchmarks/README): the polish's Newton step landed on a
    zero gradient but -2 log L read 1.06e-3 higher, its rounding; the step was refused,
    the fit ended 'not converged' and two restarts repeated 16 evaluations of 10 s.
    When the drop a step predicts is below the rounding of f (n_observed eps |f|) and
    the trial is within it, the gradient judges the step."""
    from xxmpy.fit.optimize import DECREMENT_TOL, newton_decrement, polish
    lower = np.full(2, -np.inf)
    for n_observed, taken in ((1_719_147, True), (1_000, False)):
        fg = _RoundedQuadratic(n_observed, bump=1.06e-3)
        x = fg.m + np.array([1e-6, -1e-6])            # a decrement of ~1e-8 from the optimum
        f, g = fg(x)
        x_end, _, g_end, H, _ = polish(fg, x, f, g, lower, steps=3)
        below = newton_decrement(H, g) < fg.noise * abs(f)
        assert below == taken
        if taken:          # f cannot resolve the step's drop: the gradient's word is taken
            np.testing.assert_allclose(x_end, fg.m, atol=1e-12)
            assert newton_decrement(H, g_end) < DECREMENT_TOL * 1e-6
        else:              # 1,000 values resolve f to ~1e-9: the rise is real, refused
            np.testing.assert_array_equal(x_end, x)


def test_polished_hessian_is_remeasured_when_a_coordinate_moved_by_its_size():
    """The polish keeps the Hessian it measured unless a Newton step moved some
    coordinate by more than STALE_HESSIAN of its size: its magnitude, or its standard
    error near 0 (full-size grade design: a step of 1.1e-5 in a variance of 0.096 no
    longer costs 8 evaluations of 10 s; a variance at 0 is judged on its SE)."""
    from xxmpy.fit.optimize import STALE_HESSIAN, _moved

    def _stale(H, at, x):
        return bool(_moved(H, at, x).any())
    se = np.array([0.1, 1e-3])
    H = np.diag(2.0 / se ** 2)                       # standard errors 0.1 and 1e-3
    at = np.array([1.0, 0.0])
    assert not _stale(H, at, at.copy())
    assert not _stale(H, at, at + [0.5 * STALE_HESSIAN, 0.0])
    assert _stale(H, at, at + [2.0 * STALE_HESSIAN, 0.0])
    assert not _stale(H, at, at + [0.0, 0.5 * STALE_HESSIAN * 1e-3])
    assert _stale(H, at, at + [0.0, 2.0 * STALE_HESSIAN * 1e-3])
    assert _stale(np.zeros((2, 2)), at, at + [1e-9, 0.0])     # no curvature to trust


class _Cubic:
    """sum_i d_i (x_i - 1)^2 + c (x_0 - 1)^3: the curvature of x_0 changes by 6 c dx_0
    along a step, the others' not at all; counts its calls."""

    def __init__(self, c):
        self.d, self.c, self.calls = np.array([4.0, 1.0, 2.0]), c, 0

    def __call__(self, x):
        self.calls += 1
        r = x - 1.0
        g = 2.0 * self.d * r
        g[0] += 3.0 * self.c * r[0] ** 2
        return float(self.d @ r ** 2 + self.c * r[0] ** 3), g


@pytest.mark.parametrize("c, kept", [(0.1, True), (50.0, False)])
def test_a_stale_hessian_is_rechecked_on_the_columns_that_moved(c, kept, monkeypatch):
    """A Newton step that moves a coordinate by more than STALE_HESSIAN of its size
    re-measures that coordinate's columns (one evaluation each, not k): where they
    changed by at most 2 STALE_HESSIAN in unit-diagonal form (standard errors off by
    at most STALE_HESSIAN) the Hessian is kept with them (the two-level CFA of 150
    parameters: 150 evaluations saved); where they changed more, the whole Hessian
    is measured again. Either way H is the Hessian at the end to that tolerance."""
    from xxmpy.fit import optimize
    from xxmpy.fit.optimize import STALE_HESSIAN, _moved, hessian_of, polish
    measured = []
    end_hessian = optimize.end_hessian
    monkeypatch.setattr(optimize, "end_hessian",
                        lambda fg, x, *a, **k: measured.append(x.copy()) or
                        end_hessian(fg, x, *a, **k))
    fg = _Cubic(c)
    x = np.array([1.0 + 4e-3, 1.0, 1.0])      # the step: 4e-3 in x_0 (size 1), > STALE
    f, g = fg(x)
    lower = np.full(3, -np.inf)
    x_end, f_end, g_end, H, _ = polish(fg, x, f, g, lower, steps=3)
    assert _moved(np.diag(2.0 * fg.d), x, x_end)[0]
    assert len(measured) == (1 if kept else 2)
    truth = hessian_of(fg, x_end, g_end, lower, rel=1e-6)
    D = 1.0 / np.sqrt(np.diag(truth))
    assert np.max(np.abs(H - truth) * np.outer(D, D)) < 2.0 * STALE_HESSIAN


def test_with_columns_keeps_a_hessian_whose_moved_columns_barely_changed():
    from xxmpy.fit.optimize import STALE_HESSIAN, _with_columns
    H = np.array([[4.0, 1.0, 0.5], [1.0, 2.0, 0.2], [0.5, 0.2, 3.0]])
    columns = np.array([1])
    new = H[:, columns] * (1.0 + 0.5 * STALE_HESSIAN)
    kept = _with_columns(H, columns, new)
    np.testing.assert_array_equal(kept[:, 1], new[:, 0])
    np.testing.assert_array_equal(kept, kept.T)
    np.testing.assert_array_equal(kept[np.ix_([0, 2], [0, 2])], H[np.ix_([0, 2], [0, 2])])
    assert _with_columns(H, columns, H[:, columns] * (1.0 + 3.0 * STALE_HESSIAN)) is None
    assert _with_columns(H, columns, -H[:, columns]) is None      # lost its diagonal


class _CovarianceFit:
    """-2 log L of n = 100 trivariate observations with covariance Sigma + E
    (E = 0.5 I, a residual that keeps a singular Sigma admissible) and sample
    covariance C, over Sigma's Cholesky coordinates: the fg a search sees
    (last_gradient in Sigma's parameters, its lower triangle row by row)."""

    def __init__(self, C):
        from types import SimpleNamespace
        from xxmpy.fit.transform import Transform
        self.C = np.asarray(C, float)
        m = len(self.C)
        self.rows, self.cols = np.tril_indices(m)
        self.slots = np.zeros((m, m), int)
        self.slots[self.rows, self.cols] = self.slots[self.cols, self.rows] = \
            np.arange(self.rows.size)
        params = SimpleNamespace(n=self.rows.size, is_variance=self.rows == self.cols)
        self.problem = SimpleNamespace(params=params, cholesky_blocks={"psi": self.slots},
                                       param_units=np.ones(self.rows.size))
        self.transform = Transform(self.problem, 1e-6)
        self.count = 0

    def full(self, y):
        return self.transform.to_theta(np.asarray(y, float))

    def __call__(self, y):
        self.count += 1
        V = self.full(y)[self.slots] + 0.5 * np.eye(len(self.C))
        Vi = np.linalg.inv(V)
        G = 100.0 * (Vi - Vi @ self.C @ Vi)
        self.last_gradient = np.where(self.rows == self.cols, 1.0, 2.0) * G[self.rows,
                                                                             self.cols]
        f = 100.0 * (np.linalg.slogdet(V)[1] + np.trace(Vi @ self.C))
        return f, self.transform.pullback(np.asarray(y, float), self.last_gradient)


def _stationary_on_face(fg):
    """Coordinates where -2 log L is stationary over every Cholesky coordinate but the
    last diagonal, which sits on its floor (a singular Sigma)."""
    from scipy.optimize import minimize
    last = fg.slots[-1, -1]
    y = np.full(fg.rows.size, fg.transform.lower[last])
    rest = np.arange(y.size) != last
    y[rest] = np.where(fg.rows == fg.cols, 1.0, 0.3)[rest]

    def on_face(v):
        y[rest] = v
        f, g = fg(y)
        return f, g[rest]
    run = minimize(on_face, y[rest], jac=True, method="BFGS", options={"gtol": 1e-10})
    y[rest] = run.x
    return y


def test_a_singular_face_the_cholesky_gradient_hides_is_left_downhill(monkeypatch):
    """On a singular face the Cholesky coordinates reach Sigma + t vv' only to second
    order, so their gradient can vanish where -2 log L still falls (a saturated
    three-level model's school covariance: called converged 1.25 above its optimum on
    one CPU's arithmetic). 20 random 3 x 3 covariances whose optimum is positive
    definite, searched on the face where the last Cholesky diagonal is on its floor:
    without the check on the gradient with respect to Sigma the face's judgement
    calls some of them converged; with it every one is left downhill. Where the
    optimum is singular (C - E of rank two) nothing is done and the face converges."""
    from xxmpy.fit import optimize
    from xxmpy.fit.optimize import DECREMENT_TOL, _finish_singular
    rng = np.random.default_rng(0)
    faces = []
    for _ in range(20):
        A = rng.normal(size=(3, 3))
        fg = _CovarianceFit(0.5 * np.eye(3) + A @ A.T / 3)     # optimum Sigma = A A' / 3
        faces.append((fg, _stationary_on_face(fg)))

    def judged(fg, y):
        return _finish_singular(fg, fg.transform, np.ones(y.size, bool), np.ones(y.size),
                                fg.transform.lower, 3, y.copy(), "converged")
    for fg, y in faces:
        end = judged(fg, y)
        assert not end.converged and end.status.startswith("saddle point")
        assert end.f < fg(y)[0] - DECREMENT_TOL
    with monkeypatch.context() as patch:
        patch.setattr(optimize, "_cone_descent", lambda *args, **kwargs: None)
        assert sum(judged(fg, y).converged for fg, y in faces) > 0     # 4 of 20 here
    W = rng.normal(size=(3, 2))
    fg = _CovarianceFit(0.5 * np.eye(3) + W @ W.T)            # optimum Sigma = W W'
    y = _stationary_on_face(fg)
    assert judged(fg, y).converged


class _Counted:
    """fg with a count of its calls."""

    def __init__(self, fg):
        self.fg, self.calls = fg, 0

    def __call__(self, x):
        self.calls += 1
        return self.fg(x)


def _variance_like(x):
    """sum_i 20 log(x_i + 0.1) + 20 / (x_i + 0.1) + a coupling 0.3 x_0 x_1: the shape of
    -2 log L in a variance (optimum near x_i = 0.9), with its exact gradient."""
    v = x + 0.1
    f = float(np.sum(20 * np.log(v) + 20 / v) + 0.3 * x[0] * x[1])
    g = 20 / v - 20 / v ** 2 + 0.3 * x[::-1] * (np.arange(2) < 2)
    return f, g


def _variance_like_hessian(x):
    v = x + 0.1
    return np.diag(-20 / v ** 2 + 40 / v ** 3) + 0.3 * (1 - np.eye(2))


def test_the_end_hessian_is_forward_differences_at_a_clear_optimum():
    """Where a search ends at a clearly positive definite Hessian, the polish measures it
    by forward differences: k evaluations, not central differences' 2 k (8 of the
    full-size grade design's 13 evaluations of 10 s), to about 1e-5 of each entry: the
    standard errors to 1e-5. A variance far below 1 steps relative to itself."""
    from xxmpy.fit.optimize import end_hessian
    lower = np.full(2, 1e-8)
    for x in (np.array([0.9, 0.8]), np.array([2e-3, 0.9])):
        fg = _Counted(_variance_like)
        g0 = fg(x)[1]
        fg.calls = 0
        H = end_hessian(fg, x, g0, lower, variance=np.ones(2, bool))
        assert fg.calls == 2
        exact = _variance_like_hessian(x)
        np.testing.assert_allclose(H, exact, rtol=3e-5, atol=3e-5 * np.abs(exact).max())
        se = np.sqrt(np.diag(np.linalg.inv(H)))
        np.testing.assert_allclose(se, np.sqrt(np.diag(np.linalg.inv(exact))), rtol=3e-5)


def test_the_end_hessian_is_central_where_forward_differences_are_in_doubt():
    """Nearly flat (a unit-diagonal eigenvalue below CLEAR_CURVATURE: a flat direction
    or a saddle may hide there) or when asked (a singular face): central differences,
    reusing the forward steps up; a clear optimum: forward ones only."""
    from xxmpy.fit.optimize import CLEAR_CURVATURE, end_hessian
    lower = np.full(2, -np.inf)
    x = np.array([0.0, -0.2])        # the cubic adds nothing to H here, only its error

    def cubic(r):                      # x'A x + x_0^3: forward differences err by O(h)
        A = np.array([[1.0, r], [r, 1.0]])
        return (lambda x: (float(x @ A @ x + x[0] ** 3),
                           2 * A @ x + np.array([3 * x[0] ** 2, 0.0]))), \
            2 * A + np.diag([6 * x[0], 0.0])
    near_flat = 1.0 - CLEAR_CURVATURE / 4          # unit-diagonal eigenvalue ~1e-3 / 4
    for r, central, calls in ((near_flat, False, 4), (0.0, True, 4), (0.0, False, 2)):
        f, exact = cubic(r)
        fg = _Counted(f)
        H = end_hessian(fg, x, f(x)[1], lower, central=central)
        assert fg.calls == calls                   # forward 2 (then 2 steps down)
        if calls == 4:                             # central: exact for a cubic
            np.testing.assert_allclose(H, exact, rtol=1e-8, atol=1e-8)
        else:
            assert not np.allclose(H, exact, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(H, exact, rtol=1e-4)


def test_a_fits_end_hessian_gives_the_standard_errors_of_a_fine_central_one():
    """sleepstudy (xxM API, lme4's reference): the fit's Hessian, forward differences at
    the optimum, against central differences of the analytic gradient with a step 100
    times finer (error ~1e-9): every standard error to 1e-4."""
    from xxmpy.engine import deviance_and_gradient
    fit = ref.sleepstudy().fit()
    problem, theta = fit.problem, fit.record.estimate
    k = theta.size
    fine = np.zeros((k, k))
    for j in range(k):
        h = 1e-7 * max(abs(theta[j]), problem.param_units[j])
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        fine[:, j] = (deviance_and_gradient(problem, up)[1] -
                      deviance_and_gradient(problem, down)[1]) / (2 * h)
    fine = (fine + fine.T) / 2
    se = np.sqrt(np.diag(np.linalg.inv(fine / 2)))
    np.testing.assert_allclose(fit.estimates["se"].to_numpy(), se, rtol=1e-4)
