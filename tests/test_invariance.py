"""Invariances (tolerance 1e-6 on -2 log L): row order, ID labels, wide vs long growth."""
import numpy as np
import pandas as pd
import pytest

import factories
import xxmpy as xm


def _rebuild(model, transform):
    """A copy of ``model`` whose level tables pass through transform(level, df)."""
    new = xm.Model(model.spec.levels)
    for level, sub in model.spec.submodels.items():
        new.level(level, sub.parents, sub.ys, sub.xs, sub.etas, transform(level, sub.data))
    for m in model.spec.matrices:
        if m.parent is None:
            new.within(m.child, m.type, m.pattern, m.value, m.label)
        else:
            new.between(m.parent, m.child, m.type, m.pattern, m.value, m.label)
    return new


@pytest.mark.parametrize("factory", factories.ALL, ids=lambda f: f.__name__)
def test_row_order_and_id_labels_do_not_matter(factory):
    model = factory()
    problem = model.compile()
    theta = factories.random_theta(problem, np.random.default_rng(7))
    reference = model.deviance(theta)
    rng = np.random.default_rng(1)
    shuffled = _rebuild(model, lambda lvl, df: df.sample(frac=1.0, random_state=rng))
    assert shuffled.deviance(theta) == pytest.approx(reference, rel=1e-6)
    ids = set(model.spec.levels)

    def relabel(level, df):
        df = df.copy()
        for col in ids & set(df.columns):
            df[col] = "id-" + df[col].astype(str) + "-x"
        return df
    assert _rebuild(model, relabel).deviance(theta) == pytest.approx(reference, rel=1e-6)


def _growth_data(seed=11, n=40, times=(0, 1, 2, 3)):
    rng = np.random.default_rng(seed)
    b = rng.multivariate_normal([2.0, 0.5], [[1.0, 0.2], [0.2, 0.3]], size=n)
    y = b[:, [0]] + b[:, [1]] * np.array(times) + rng.normal(scale=0.7, size=(n, len(times)))
    wide = pd.DataFrame(y, columns=[f"t{k}" for k in times])
    wide.insert(0, "subject", np.arange(n))
    wide.iloc[3, 2] = np.nan                      # one missing occasion
    long = wide.melt(id_vars="subject", var_name="occ_name", value_name="y")
    long["time"] = long["occ_name"].str[1:].astype(float)
    long = long.dropna().reset_index(drop=True)
    long.insert(0, "occasion", np.arange(len(long)))
    return wide, long, times


def _growth_start():
    return dict(psi=[[1.0, 0.1], [0.1, 0.5]], alpha=[[1.0], [0.0]], theta=1.0)


def test_growth_curve_wide_equals_long():
    wide, long, times = _growth_data()
    s = _growth_start()
    T = len(times)
    w = xm.Model(["subject"]).level("subject", ys=list(wide.columns[1:]),
                                    etas=["intercept", "slope"], data=wide)
    w.within("subject", "lambda", np.zeros((T, 2)), np.column_stack([np.ones(T), times]))
    w.within("subject", "theta", np.eye(T), np.eye(T) * s["theta"], np.where(
        np.eye(T) == 1, "e", None))
    w.within("subject", "psi", np.ones((2, 2)), s["psi"])
    w.within("subject", "alpha", np.ones((2, 1)), s["alpha"])
    lg = xm.Model(["occasion", "subject"])
    lg.level("occasion", parents=["subject"], ys=["y"], data=long)
    lg.level("subject", etas=["intercept", "slope"], data=wide[["subject"]])
    lg.within("occasion", "theta", [[1]], [[s["theta"]]], [["e"]])
    lg.within("subject", "psi", np.ones((2, 2)), s["psi"])
    lg.within("subject", "alpha", np.ones((2, 1)), s["alpha"])
    lg.between("subject", "occasion", "lambda", [[0, 0]], [[1.0, 0.0]], [[None, "data.time"]])
    assert w.compile().params.labels == lg.compile().params.labels
    assert w.deviance() == pytest.approx(lg.deviance(), rel=1e-6)
    rw, rl = w.fit(), lg.fit()
    assert rw.deviance == pytest.approx(rl.deviance, abs=1e-6)
    np.testing.assert_allclose(rw.params.to_numpy(), rl.params.to_numpy(), rtol=1e-4)


def test_crossed_model_with_one_unit_second_parent_equals_nested():
    model = factories.crossed_bivariate(n_targets=1)
    crossed = model.compile()
    assert crossed.structure == "cross-classified"

    def nest(level, df):
        if level == "rater":
            df = df.assign(target=0)
        return df
    nested = _rebuild(model, nest)
    rater = nested.spec.submodels["rater"]
    rater.parents = ["target"]
    assert nested.compile().structure == "nested"
    theta = factories.random_theta(crossed, np.random.default_rng(5))
    assert nested.deviance(theta) == pytest.approx(model.deviance(theta), rel=1e-6)
