"""lavaan model syntax (xxmpy/syntax/): xm.sem / xm.cfa.

References: [lavaan] 0.6-14 on lavaan's Demo.twolevel (tests/data/Demo_twolevel.csv):
the two-level CFA (tests/data/r/lavaan_twolevel_cfa.R, .out), the multilevel tutorial
model with covariates and a one-level SEM with labels, an equality, a latent regression
and a residual covariance (tests/data/r/lavaan_syntax.R, .out); the hand-built xxM
models of test_fit_measures.py (the same models through the matrix API).
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import reference_models as ref
import xxmpy as xm
from test_fit_measures import tutorial_with_covariates, two_level_cfa

TWO_LEVEL_CFA = """
level: 1
  fw1 =~ y1 + y2 + y3
  fw2 =~ y4 + y5 + y6
level: 2
  fb1 =~ y1 + y2 + y3
  fb2 =~ y4 + y5 + y6
"""
TUTORIAL = """
level: 1
  fw =~ y1 + y2 + y3
  fw ~ x1 + x2 + x3
level: 2
  fb =~ y1 + y2 + y3
  fb ~ w1 + w2
"""
ONE_LEVEL = """
  f1 =~ y1 + a*y2 + a*y3     # one label twice: an equality
  f2 =~ y4 + y5 + y6
  f2 ~ f1 + x1
  y1 ~~ y4
"""


def demo():
    return pd.read_csv(ref.DATA / "Demo_twolevel.csv")


def lavaan_table(path, model=None):
    """{(lhs, op, rhs, level): (est, se)} from a lavaan parameter table printed with
    est and se columns (the block after 'model <name>' when given)."""
    lines = (ref.DATA / "r" / path).read_text().splitlines()
    if model is not None:
        start = lines.index(f"model {model}")
        lines = lines[start + 1:]
        end = next((k for k, line in enumerate(lines) if line.startswith("model ")),
                   len(lines))
        lines = lines[:end]
    start = next(k for k, line in enumerate(lines) if line.split()[:3] == ["lhs", "op", "rhs"]
                 and "est" in line.split())
    header = lines[start].split()
    out = {}
    for line in lines[start + 1:]:
        parts = line.split()
        if not parts or not parts[0].isdigit():
            break                               # the end of that table
        if parts[2] == "~1":                    # an intercept: no rhs printed
            parts.insert(3, "")
        row = dict(zip(header, parts[1:]))
        key = (row["lhs"], row["op"], row["rhs"], int(row.get("level", 1)))
        out[key] = (float(row["est"]), float(row["se"]))
    return out


def close_to_lavaan(got, reference):
    """Estimates within 1e-4 or, where lavaan's optimiser stops short along a flat
    direction, 2e-3 of the SE (two-level CFA: fb2 ~~ fb2 is 1.5e-4 off, SE 0.127,
    while the log L agrees to 1e-5); SEs within 1e-4 or 1e-3 relative."""
    for key, (est, se) in reference.items():
        assert got[key][0] == pytest.approx(est, abs=max(1e-4, 2e-3 * se)), key
        assert got[key][1] == pytest.approx(se, abs=1e-4, rel=1e-3), key


def ours(fit):
    pe = fit.parameter_estimates()
    return {(r.lhs, r.op, r.rhs, r.level): (r.est, r.se) for r in pe.itertuples()}


def fitted(model, data, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        return xm.sem(model, data, **options)


def test_two_level_cfa_matches_lavaan_and_the_matrix_model():
    fit = fitted(TWO_LEVEL_CFA, demo(), cluster="cluster")
    assert fit.converged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        hand = two_level_cfa().fit(start="auto")
    assert fit.deviance == pytest.approx(hand.deviance, abs=1e-6)
    reference = {k: v for k, v in lavaan_table("lavaan_twolevel_cfa.out").items()
                 if v[1] > 0 and k[1] in ("=~", "~~", "~1")}
    got = ours(fit)
    assert len(reference) == 32 and set(reference) <= set(got)
    close_to_lavaan(got, reference)
    # lavaan's names; std_all as lavaan's (its level-2 residual variances by the
    # between variance of the y)
    pe = fit.parameter_estimates().set_index(["lhs", "op", "rhs", "level"])
    assert pe.loc[("fb1", "=~", "y2", 2), "label"] == "fb1=~y2.l2"
    assert pe.loc[("y1", "~~", "y1", 2), "std_all"] == pytest.approx(0.05860867, abs=1e-4)
    assert pe.loc[("fb1", "=~", "y3", 2), "std_all"] == pytest.approx(0.81742080, abs=1e-4)


def test_tutorial_model_with_covariates_matches_lavaan():
    fit = fitted(TUTORIAL, demo(), cluster="cluster")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        hand = tutorial_with_covariates().fit(start="auto")
    assert fit.deviance == pytest.approx(hand.deviance, abs=1e-6)
    assert -fit.deviance / 2 == pytest.approx(-12076.56598047, abs=1e-4)     # lavaan logl
    reference = lavaan_table("lavaan_syntax.out", "tutorial")
    got = ours(fit)
    assert len(reference) == 20
    close_to_lavaan(got, reference)


def test_one_level_model_with_labels_equality_and_covariances_matches_lavaan():
    fit = fitted(ONE_LEVEL, demo())
    reference = lavaan_table("lavaan_syntax.out", "onelevel")
    got = ours(fit)
    assert len(reference) == 21
    close_to_lavaan(got, reference)
    assert "a" in fit.labels and fit.n_parameters == 21 - 1    # y2 and y3 share a
    assert -fit.deviance / 2 == pytest.approx(-25583.83168211, abs=1e-4)     # lavaan logl


EVERY_OPERATOR = """
  # a comment line; statements may continue over lines and share a line with ';'
  f1 =~ NA*y1 + start(0.8)*y2 +
        1*y3                       ! a free first loading, a start value, a fixed one
  f2 =~ y4 + b*y5 + b*y6;  f1 ~~ 1*f1
  f2 ~ f1 + x1                     # beta and gamma
  y1 ~ x2                          # kappa
  y4 ~ f1                          # an observed y on a latent: a free loading
  y2 ~~ y3                         # a residual covariance
  y5 ~~ 0*y6                       # fixed at 0
  y6 ~ 0.5*1                       # a fixed intercept
  f2 ~ 1                           # a free latent mean
"""


def test_every_operator_lands_in_its_matrix():
    fit = fitted(EVERY_OPERATOR, demo())
    assert fit.converged
    where = {(r.lhs, r.op, r.rhs): (r.key[2], r.free, r.value) for r in fit.syntax.rows}
    assert where[("f1", "=~", "y1")][:2] == ("lambda", True)            # NA* frees it
    assert where[("f1", "=~", "y3")] == ("lambda", False, 1.0)
    assert where[("f2", "~", "f1")][0] == "beta" and where[("f2", "~", "x1")][0] == "gamma"
    assert where[("y1", "~", "x2")][0] == "kappa" and where[("y4", "~", "f1")][0] == "lambda"
    assert where[("y2", "~~", "y3")][:2] == ("theta", True)
    assert where[("y5", "~~", "y6")] == ("theta", False, 0.0)
    assert where[("f1", "~~", "f1")] == ("psi", False, 1.0)
    assert where[("y6", "~1", "")] == ("nu", False, 0.5)
    assert where[("f2", "~1", "")][:2] == ("alpha", True)
    assert fit.labels.count("b") == 1                                  # an equality
    pe = fit.parameter_estimates().set_index(["lhs", "op", "rhs"])
    assert pe.loc[("f2", "=~", "y5"), "est"] == pe.loc[("f2", "=~", "y6"), "est"]
    assert fit.syntax.starts == {"f1=~y2": 0.8}
    assert fit.record.start[fit.labels.index("f1=~y2")] == 0.8
    # exogenous covariates are conditioned on (fixed.x): x1 and x2 are xs of the level
    assert fit.model.spec.submodels["row"].xs == ["x1", "x2"]
    assert xm.cfa(EVERY_OPERATOR, demo()).deviance == pytest.approx(fit.deviance, abs=1e-6)


def test_syntax_errors_name_the_line_and_the_token_all_together():
    bad = """
      f1 =~ y1 + y2
      f1 <~ y3
      y1 | t1
      f1 =~ c(1, 2)*y4
      f1 y5
    """
    with pytest.raises(xm.SpecificationError) as err:
        xm.sem(bad, demo())
    text = str(err.value)
    assert "line 3: formative indicators (<~) are not supported" in text
    assert "line 4: '|' is a random slope only as 's | y ~ x' (thresholds are not" in text
    assert "line 5: modifier 'c ( 1 , 2 )' of 'y4' is not understood" in text
    assert "groups are not supported" in text
    assert "line 6: no operator" in text
    assert len(err.value.problems) == 4


def test_model_errors_name_the_line_and_the_variable():
    bad = """
      y1 =~ y2 + y3
      f =~ y4 + z9
      x1 ~~ x1
      f ~ x1
    """
    with pytest.raises(xm.SpecificationError) as err:
        xm.sem(bad, demo())
    text = str(err.value)
    assert "latent variable 'y1' has the name of a data column" in text
    assert "line 3: 'z9' is neither a latent variable (the left of =~) nor a column" in text
    with pytest.raises(xm.SpecificationError, match="varies within clusters of 'cluster'"):
        xm.sem("level: 1\n f =~ y1 + y2 + y3\nlevel: 2\n fb =~ y1 + y2 + y3\n"
               " fb ~ x1", demo().drop(columns=[]).assign(x1=lambda d: d.x1), cluster="cluster")
    with pytest.raises(xm.SpecificationError, match="cluster='school' is not a column"):
        xm.sem(TWO_LEVEL_CFA, demo(), cluster="school")
    with pytest.raises(xm.SpecificationError, match="line 1: f =~ y1: the first indicator"):
        xm.sem("f =~ a*y1 + b*y2 + y3", demo())
    with pytest.raises(TypeError, match="model= must be lavaan syntax in a string"):
        xm.sem(None, demo())


def test_the_estimates_written_back_as_fixed_syntax_give_the_same_likelihood():
    """Round trip: every parameter of a fitted two-level model written back as syntax
    with its estimate as a fixed value (lavaan's layout: level blocks, ~1 for
    intercepts) gives the same -2 log L."""
    from xxmpy.engine import deviance
    from xxmpy.syntax.build import build
    from xxmpy.syntax.parse import parse
    fit = fitted(TUTORIAL, demo(), cluster="cluster")
    pe = fit.parameter_estimates()
    lines = []
    for level in (1, 2):
        lines.append(f"level: {level}")
        for r in pe[pe.level == level].itertuples():
            rhs = "1" if r.op == "~1" else r.rhs
            op = "~" if r.op == "~1" else r.op
            # one parameter stays free (a model needs one), labelled, at its estimate
            modifier = "kept" if (r.lhs, r.op, r.rhs) == ("y1", "~~", "y1") and level == 1 \
                else repr(r.est)
            lines.append(f"  {r.lhs} {op} {modifier}*{rhs}")
    written = "\n".join(lines)
    syntax = build(parse(written), demo(), "cluster")
    problem = syntax.model.compile()
    assert problem.params.labels == ["kept"]
    kept = pe.set_index(["lhs", "op", "rhs", "level"]).loc[("y1", "~~", "y1", 1), "est"]
    assert deviance(problem, np.array([kept])) == pytest.approx(fit.deviance, rel=1e-12)


MEDIATION = """
  f1 =~ y1 + y2 + y3
  f2 =~ y4 + y5 + y6
  f1 ~ a*x1
  f2 ~ b*f1 + x2
  ab := a*b                        # an indirect effect
  ratio := a/(1 + b^2)             # any arithmetic over labels
"""


def test_defined_parameters_have_lavaans_values_and_delta_method_ses():
    fit = fitted(MEDIATION, demo())
    reference = lavaan_table("lavaan_syntax.out", "mediation")
    got = ours(fit)
    model_rows = {k: v for k, v in reference.items() if k[1] != ":="}
    assert len(model_rows) == 21
    close_to_lavaan(got, model_rows)
    assert -fit.deviance / 2 == pytest.approx(-25444.86261424, abs=1e-4)     # lavaan logl
    pe = fit.parameter_estimates().set_index("lhs")
    for name in ("ab", "ratio"):
        est, se = next(v for k, v in reference.items() if k[0] == name)
        assert pe.loc[name, "op"] == ":="
        assert pe.loc[name, "est"] == pytest.approx(est, abs=1e-4)
        assert pe.loc[name, "se"] == pytest.approx(se, abs=1e-4, rel=1e-3)
    assert "Defined Parameters:" in fit.summary()


def test_equality_between_labels_and_defined_parameter_errors():
    """a == b makes one parameter (as one label would); a nonlinear equality, and :=
    over unknown labels or unreadable expressions, are refused with the line."""
    tied = fitted("f1 =~ y1 + a*y2 + b*y3\n a == b", demo())
    shared = fitted("f1 =~ y1 + a*y2 + a*y3", demo())
    assert tied.deviance == pytest.approx(shared.deviance, abs=1e-6)
    assert tied.labels.count("a") == 1 and "b" not in tied.labels
    with pytest.raises(xm.SpecificationError) as err:
        xm.sem("""
          f1 =~ y1 + a*y2 + b*y3
          a == b^2
          d := a*c
          e := a + * b
          a := b
        """, demo())
    text = str(err.value)
    assert "line 3: 'a == b^2': == needs a free label on one side" in text
    assert "line 4: ['c'] in 'd := a*c' are not labels of the model" in text
    assert "line 5: unexpected '*' (in 'e := a + * b')" in text
    assert "line 6: 'a' is a label already" in text


def test_expressions_are_parsed_not_evaluated():
    """Precedence and associativity as arithmetic's; a name is a label, never Python."""
    from xxmpy.syntax.expression import ExpressionError, compile_expression
    f, labels = compile_expression("a*b + 2^c - -d/(e) - 1 - 2")
    assert labels == ["a", "b", "c", "d", "e"]
    assert f(dict(a=2, b=3, c=3, d=1, e=2)) == 2 * 3 + 2 ** 3 + 1 / 2 - 1 - 2
    assert compile_expression("8/2/2")[0]({}) == 2.0
    assert compile_expression("-2^2")[0]({}) == -4.0
    assert compile_expression("exp(log(a)) * sqrt(abs(b))")[0](dict(a=3.0, b=-4.0)) == \
        pytest.approx(6.0)
    for text in ("__import__('os')", "a.b()", "a +", "(a", "a b"):
        with pytest.raises(ExpressionError):
            compile_expression(text)


THREE_LEVEL = """
level: 1
    f1 =~ y0 + l1*y1 + l2*y2
level: klass
    f2 =~ y0 + l1*y1 + l2*y2
level: school
    f3 =~ y0 + l1*y1 + l2*y2
"""


def test_three_levels_give_the_matrix_models_likelihood():
    """Students in classes in schools, one factor per level with loadings shared by
    the levels (labels), residuals of the ys at every level: the same model as
    test_fit_measures_levels.true_three_level (written with the matrix API, its
    school factor carried by the class factor) gives the same -2 log L. Blocks may be
    named after their cluster columns; cluster= lists them, the lowest first."""
    from test_fit_measures_levels import chain_frames, true_three_level
    low, mid, _ = chain_frames(n_top=30, seed=201)
    data = low.merge(mid[["klass", "school"]], on="klass").drop(columns="student")
    fit = fitted(THREE_LEVEL, data, cluster=["klass", "school"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        hand = true_three_level(seed=201).fit(start="auto")
    assert fit.converged and hand.converged
    assert fit.deviance == pytest.approx(hand.deviance, abs=1e-6)
    assert fit.n_parameters == hand.n_parameters == 17
    pe = fit.parameter_estimates()
    assert set(pe.level) == {1, 2, 3}
    assert fit.model.spec.levels == ["row", "klass", "school"]
    text = fit.summary()                # the structure read from the data is stated
    assert "Levels                      nested: row in klass in school" in text
    assert "Number of clusters [school] 30" in text and "Level 3 [school]:" in text
    with pytest.raises(xm.SpecificationError, match="'school' is not nested in 'klass'"):
        xm.sem(THREE_LEVEL.replace("level: klass", "level: 2").replace("level: school",
                                                                     "level: 3"),
               data, cluster=["school", "klass"])
    with pytest.raises(xm.SpecificationError, match="3 level blocks need cluster= 2"):
        xm.sem(THREE_LEVEL, data, cluster="klass")


def test_profile_ci_of_a_defined_parameter_is_a_verified_constrained_profile():
    """Defined parameters get profile limits from fits constrained to g(theta) = v: a
    defined copy of a label has exactly that label's profile limits (an independent
    reference: the ordinary profile of the parameter), and the indirect effect's limits
    are verified rises of the cutoff; parameter_estimates() shows them."""
    fit = fitted(MEDIATION + "\n  a_again := a\n", demo().iloc[:600])
    ci = fit.profile_ci(parameters=["a", "a_again", "ab"], n_jobs=1, progress=False)
    table = ci.estimates.set_index("label")
    for side in ("lower", "upper"):
        assert table.loc["a_again", side] == pytest.approx(table.loc["a", side], abs=2e-4)
    assert (table.loc["ab", ["lower_status", "upper_status"]] == "ok").all()
    assert np.allclose(table.loc["ab", ["lower_rise", "upper_rise"]].astype(float), 3.841459,
                       atol=1e-3)
    pe = fit.parameter_estimates().set_index("lhs")
    assert pe.loc["ab", "ci_lower"] == table.loc["ab", "lower"]
    assert pe.loc["ab", "ci_lower"] < pe.loc["ab", "est"] < pe.loc["ab", "ci_upper"]
    with pytest.raises(ValueError, match="unknown parameter"):
        fit.profile_ci(parameters="abc")


RANDOM_SLOPE = """
level: 1
    s | Reaction ~ Days           # Mplus' random slope: Days' slope varies by Subject
level: 2
    Reaction ~~ Reaction          # and the intercept (Reaction's between part)
"""


def test_a_random_slope_is_lme4s_random_slope_model():
    """sleepstudy, Reaction ~ Days + (Days | Subject) by ML: the slope s is a latent of
    the cluster level loading on Reaction with each row's Days (a data. loading), its
    mean the fixed slope, covarying with the random intercept (Mplus' defaults).
    [lme4] ML deviance 1751.9393, fixef 251.4051 and 10.4673 (tests/test_reference.py)."""
    d = pd.read_csv(ref.DATA / "sleepstudy.csv")
    fit = fitted(RANDOM_SLOPE, d, cluster="Subject")
    assert fit.converged
    assert fit.deviance == pytest.approx(1751.9393, abs=1e-4)
    lmer = xm.lmer("Reaction ~ Days + (Days | Subject)", d, REML=False)
    assert fit.deviance == pytest.approx(lmer.deviance, abs=1e-6)
    pe = fit.parameter_estimates().set_index(["lhs", "op", "rhs", "level"])
    assert pe.loc[("s", "~1", "", 2), "est"] == pytest.approx(10.4673, abs=1e-4)
    assert pe.loc[("Reaction", "~1", "", 2), "est"] == pytest.approx(251.4051, abs=1e-4)
    assert pe.loc[("Reaction", "~~", "s", 2), "est"] == pytest.approx(
        lmer.variance_parameters["cov[Subject:(Intercept),Days]"], rel=1e-4)
    with pytest.raises(xm.SpecificationError, match="a random slope .* belongs in the"):
        xm.sem("s | Reaction ~ Days", d)
    with pytest.raises(xm.SpecificationError, match="has a random slope and is also a regr"):
        xm.sem(RANDOM_SLOPE.replace("Reaction ~ Days  ", "Reaction ~ Days\n Reaction ~ Days"),
               d, cluster="Subject")
    with pytest.raises(xm.SpecificationError, match="thresholds are not supported"):
        xm.sem("y1 | t1", demo())


FOLDED = TUTORIAL + """
  y1 ~~ 0*y1                      # y1's and y3's between parts are fb's alone
  y3 ~~ 0*y3
"""


def test_between_residual_variances_fixed_at_zero_match_lavaan():
    """lavaan's common `y ~~ 0*y` at level 2: the y's between part has no variance of its
    own, so no carrier eta is made for it; fb loads on the rows' y directly (a between
    lambda), y2 keeps its carrier. [lavaan] 0.6-14, model 'folded' of lavaan_syntax.R."""
    fit = fitted(FOLDED, demo(), cluster="cluster")
    assert fit.converged and fit.n_parameters == 18
    assert -fit.deviance / 2 == pytest.approx(-12140.41410785, abs=1e-4)     # lavaan logl
    reference = lavaan_table("lavaan_syntax.out", "folded")
    assert len(reference) == 18
    close_to_lavaan(ours(fit), reference)
    between = fit.model.spec.matrices
    lam = next(m for m in between if m.parent == "cluster" and m.type == "lambda")
    assert np.count_nonzero(lam.pattern) == 1            # fb =~ y3 (y1's loading fixed 1)
    assert fit.model.spec.submodels["cluster"].etas == ["fb", "y2"]   # no y1, y3 carriers
    pe = fit.parameter_estimates().set_index(["lhs", "op", "rhs", "level"])
    assert pe.loc[("y1", "~~", "y1", 2), "est"] == 0.0
    assert pe.loc[("fb", "=~", "y1", 2), "std_all"] == pytest.approx(1.0)


def crossed_ratings(seed=5, n_raters=25, n_targets=20):
    """Three ratings of targets by raters (crossed), a factor at each level."""
    rng = np.random.default_rng(seed)
    lam = np.array([1.0, 0.8, 1.2])
    rows = [(i, j) for i in range(n_raters) for j in range(n_targets) if rng.random() < 0.7]
    rater, target = np.array(rows).T
    f = (rng.normal(0, 0.7, n_raters)[rater] + rng.normal(0, 0.5, n_targets)[target]
         + rng.normal(0, 1.0, rater.size))
    y = np.outer(f, lam) + rng.normal(0, 0.6, (rater.size, 3)) + [2.0, 1.0, 0.0]
    return pd.DataFrame(dict(rater=rater, target=target, r1=y[:, 0], r2=y[:, 1],
                             r3=y[:, 2]))


def test_a_latent_named_at_a_cluster_level_is_its_part_there():
    """A rows' factor named in a cluster block is its part there (a carrier eta reaching
    the factor with weight 1): f = f_rater + f_target + zeta. That is the same model as
    rater and target factors loading on the ys with the rows' loadings (shared labels)
    and the ys' parts at variance 0 (folded): the same -2 log L and parameters."""
    data = crossed_ratings()
    parts = fitted("""
        level: 1
            f =~ r1 + l2*r2 + l3*r3
        level: rater
            f ~~ f
        level: target
            f ~~ f
    """, data, cluster=["rater", "target"])
    loaded = fitted("""
        level: 1
            f =~ r1 + l2*r2 + l3*r3
        level: rater
            fr =~ r1 + l2*r2 + l3*r3
            r1 ~~ 0*r1; r2 ~~ 0*r2; r3 ~~ 0*r3
        level: target
            ft =~ r1 + l2*r2 + l3*r3
            r1 ~~ 0*r1; r2 ~~ 0*r2; r3 ~~ 0*r3
    """, data, cluster=["rater", "target"])
    assert parts.converged and loaded.converged
    assert parts.n_parameters == loaded.n_parameters == 11
    assert "Levels                      crossed: row in rater and in target" in parts.summary()
    assert parts.deviance == pytest.approx(loaded.deviance, abs=1e-6)
    pe = parts.parameter_estimates().set_index(["lhs", "op", "rhs", "level"])
    pl = loaded.parameter_estimates().set_index(["lhs", "op", "rhs", "level"])
    assert pe.loc[("f", "~~", "f", 2), "est"] == pytest.approx(
        pl.loc[("fr", "~~", "fr", 2), "est"], rel=1e-4)
    assert pe.loc[("f", "~~", "f", 3), "est"] == pytest.approx(
        pl.loc[("ft", "~~", "ft", 3), "est"], rel=1e-4)


def test_parts_across_levels_errors_name_the_variable_and_the_fix():
    """A part with variance 0 can be explained but not predict or covary; it cannot be
    folded below a level that names it; a factor's name is one level's; a latent of a
    crossed cluster has no parts at the other."""
    data = crossed_ratings()
    three = pd.DataFrame(dict(y1=np.arange(40.0) % 7, y2=np.arange(40.0) % 5,
                              y3=np.arange(40.0) % 3, klass=np.arange(40) // 4,
                              school=np.arange(40) // 20))
    with pytest.raises(xm.SpecificationError) as err:
        xm.sem("level: 1\n f =~ y1 + y2 + y3\nlevel: 2\n fb =~ y1 + y2 + y3\n"
               " y1 ~~ 0*y1\n y1 ~~ y2\n f ~ fb\n fb ~ y3", demo(), cluster="cluster")
    text = str(err.value)
    assert "line 6: y1 ~~ y2: ['y1'] has variance 0 at level 2" in text
    assert "latent variable 'f'" not in text
    with pytest.raises(xm.SpecificationError,
                       match="'f' has variance 0 at level 2 .* but a part at a level above"):
        xm.sem("level: 1\n f =~ y1 + y2 + y3\nlevel: 2\n f ~~ 0*f\nlevel: 3\n f ~~ f",
               three, cluster=["klass", "school"])
    with pytest.raises(xm.SpecificationError,
                       match="latent variable 'f' is defined at level 1 and again at level 2"):
        xm.sem("level: 1\n f =~ y1 + y2 + y3\nlevel: 2\n f =~ y1 + y2 + y3", demo(),
               cluster="cluster")
    with pytest.raises(xm.SpecificationError,
                       match=r"'fr' \(a variable of level 2\) is named at level 3, which is "
                             r"not above level 2"):
        xm.sem("level: 1\n r1 ~~ r2\nlevel: rater\n fr =~ r1 + r2\nlevel: target\n"
               " fr ~~ fr", data, cluster=["rater", "target"])


PATH = """
  y2 ~ a*x1                       # a mediator, itself an outcome
  y1 ~ b*y2 + c*x1                # an observed outcome on an observed outcome
  y4 ~ y1 + y2
  y1 ~~ y5
  ab := a*b
"""


def lavaan_numbers(section):
    """{name: value} of a 'name value' block printed by lavaan_syntax.R."""
    lines = (ref.DATA / "r" / "lavaan_syntax.out").read_text().splitlines()
    start = lines.index(section) + 1
    out = {}
    for line in lines[start:]:
        if not line.startswith("["):
            break
        for item in line.split('"')[1::2]:
            name, value = item.split()
            out[name] = float(value)
    return out


def test_a_path_model_of_observed_variables_matches_lavaan():
    """Observed outcomes regressed on observed outcomes: each regressor y gets a copy
    among the xs (a kappa on its values); the paths being recursive, the likelihood of
    the ys is exact (unit Jacobian), and the implied moments carry the paths through
    (I - B)^-1. [lavaan] 0.6-14, model 'path' of lavaan_syntax.R: estimates, SEs, logl,
    the indirect effect, fit measures (the saturated model leaves the copies out) and
    std.all."""
    fit = fitted(PATH, demo())
    reference = lavaan_table("lavaan_syntax.out", "path")
    got = ours(fit)
    model_rows = {k: v for k, v in reference.items() if k[1] != ":="}
    assert len(model_rows) == 14 and fit.n_parameters == 14
    close_to_lavaan(got, model_rows)
    assert -fit.deviance / 2 == pytest.approx(-17879.12678880, abs=1e-4)     # lavaan logl
    pe = fit.parameter_estimates()
    ab = pe.set_index("lhs").loc["ab"]
    assert ab.est == pytest.approx(0.23779027, abs=1e-5)
    assert ab.se == pytest.approx(0.01886022, rel=1e-3)
    measures = fit.fit_measures()
    for name, value in lavaan_numbers("fit measures path").items():
        assert measures[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    std = fit.parameter_estimates().set_index(["lhs", "op", "rhs"])["std_all"]
    lines = (ref.DATA / "r" / "lavaan_syntax.out").read_text().splitlines()
    start = lines.index("std.all path") + 2
    checked = 0
    for line in lines[start:]:
        parts = line.split()
        if not parts or not parts[0].isdigit():
            break
        if parts[2] == "~1":
            parts.insert(3, "")
        key = tuple(parts[1:4])
        if key in std.index and parts[2] != ":=":   # x1 ~~ x1, x1 ~1: fixed.x, not ours
            assert std.loc[key] == pytest.approx(float(parts[4]), abs=1e-5), key
            checked += 1
    assert checked == 14
    model = fit.model.spec.submodels["row"]
    assert model.regressor_ys == {"y2.value": "y2", "y1.value": "y1"}


def test_one_level_fit_measures_are_lavaans_with_bentlers_srmr():
    """One level: lavaan's srmr is srmr_bentler with the mean residuals.
    [lavaan] 0.6-14, 'fit measures onelevel' of lavaan_syntax.R."""
    measures = fitted(ONE_LEVEL, demo()).fit_measures()
    for name, value in lavaan_numbers("fit measures onelevel").items():
        assert measures[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name


def test_dependent_variables_covary_as_lavaans_auto_cov_y():
    """lavaan's sem frees the covariances of the dependent variables (regressed, neither
    predictors nor indicators): f1 ~~ f2 when both are regressed on covariates, y2 ~~ y3
    among observed ones (y1, a predictor, is left out); with y3 missing in 60 rows
    (FIML). [lavaan] 0.6-14, models 'covlatent' and 'covobserved'."""
    fit = fitted("""
        f1 =~ y1 + y2 + y3
        f2 =~ y4 + y5 + y6
        f1 ~ x1
        f2 ~ x1 + x2
    """, demo())
    close_to_lavaan(ours(fit), lavaan_table("lavaan_syntax.out", "covlatent"))
    assert -fit.deviance / 2 == pytest.approx(-25431.96227174, abs=1e-4)
    d = demo()
    d.loc[:59, "y3"] = np.nan
    fit = fitted("y1 ~ x1\n y2 ~ x2\n y3 ~ y1", d)
    reference = lavaan_table("lavaan_syntax.out", "covobserved")
    assert ("y2", "~~", "y3", 1) in reference
    close_to_lavaan(ours(fit), reference)
    assert -fit.deviance / 2 == pytest.approx(-13210.53951345, abs=1e-4)


def test_a_within_regression_on_a_within_only_variable_matches_lavaan():
    """An outcome with a between part regressed at level 1 on a variable named only at
    level 1. [lavaan] 0.6-14, model 'pathtwolevel'."""
    fit = fitted("level: 1\n y1 ~ y2 + x1\nlevel: 2\n y1 ~ w1", demo(), cluster="cluster")
    close_to_lavaan(ours(fit), lavaan_table("lavaan_syntax.out", "pathtwolevel"))
    assert -fit.deviance / 2 == pytest.approx(-4231.57945838, abs=1e-4)


def test_path_model_errors_name_the_variables():
    """Cycles, a regressor missing where its outcome is observed, a regression on the
    within part of a y whose between part is folded (variance 0), and lavaan's default
    covariance of a dependent latent with a dependent observed variable are refused,
    each naming what to change."""
    with pytest.raises(xm.SpecificationError,
                       match=r"y1 ~ y2, but 'y2' depends on 'y1' \(y2 -> y1 -> y2\)"):
        xm.sem("y1 ~ y2 + x1\n y2 ~ y1 + x2", demo())
    with pytest.raises(xm.SpecificationError,
                       match=r"f ~ y1, but 'y1' depends on 'f' \(y1 -> f -> y1\)"):
        xm.sem("f =~ y1 + y2 + y3\n f ~ y1", demo())
    d = demo()
    d.loc[[3, 7], "y2"] = np.nan
    with pytest.raises(xm.SpecificationError,
                       match=r"'y2' is missing in 2 unit\(s\) of level 1 where \['y1'\]"):
        xm.sem("y2 ~ x1\n y1 ~ y2", d)
    with pytest.raises(xm.SpecificationError, match="line 3: y1 ~ y2: 'y2' has variance 0 "
                                                    "at level 2"):
        xm.sem("level: 1\n y2 ~ x1\n y1 ~ y2\nlevel: 2\n fb =~ y1 + y2 + y3\n"
               " y2 ~~ 0*y2", demo(), cluster="cluster")
    with pytest.raises(xm.SpecificationError, match="dependent variables 'f1' and 'y4'"):
        xm.sem("f1 =~ y1 + y2 + y3\n f1 ~ x1\n y4 ~ x1", demo())


WITHIN_PART = """
level: 1
  y2 ~ x2
  y1 ~ b*y2 + x1                  # on y2's within part (y2 has a between part)
  y3 ~ y1
level: 2
  y2 ~ w2
  y1 ~ y2 + w1                    # y1's between part on y2's
  y3 ~~ y3
"""


def test_regressions_on_within_and_between_parts_of_observed_variables_match_lavaan():
    """lavaan's two-level path model: at level 1 a regression on an observed y with a
    between part is on its within part, y2 minus its part above: a kappa b on y2's
    value and a between lambda -b from y2's part ('-b', a scaled label); at level 2 the
    parts regress on each other, with lavaan's intercepts (the ys' means sit on their
    parts). [lavaan] 0.6-14, model 'withinpart' of lavaan_syntax.R."""
    fit = fitted(WITHIN_PART, demo(), cluster="cluster")
    assert fit.converged
    reference = lavaan_table("lavaan_syntax.out", "withinpart")
    assert len(reference) == 16 == fit.n_parameters
    close_to_lavaan(ours(fit), reference)
    assert -fit.deviance / 2 == pytest.approx(-12481.97628334, abs=1e-4)     # lavaan logl
    measures = fit.fit_measures()        # lavaan's H1 EM stops ~1e-4 short in chisq
    ours_of = {"srmr_within": "srmr_row", "srmr_between": "srmr_cluster"}
    for name, value in lavaan_numbers("fit measures withinpart").items():
        assert measures[ours_of.get(name, name)] == pytest.approx(value, rel=2e-4), name
    lam = next(m for m in fit.model.spec.matrices
               if m.parent == "cluster" and m.type == "lambda")
    assert "-b" in set(np.ravel(lam.label)) and "-y3~y1" in set(np.ravel(lam.label))


def std_all_table(section):
    """{(lhs, op, rhs): std.all} of a lavaan standardizedSolution printed by
    lavaan_syntax.R under ``section``."""
    lines = (ref.DATA / "r" / "lavaan_syntax.out").read_text().splitlines()
    out = {}
    for line in lines[lines.index(section) + 2:]:
        parts = line.split()
        if not parts or not parts[0].isdigit():
            break
        if parts[2] == "~1":
            parts.insert(3, "")
        out[tuple(parts[1:4])] = float(parts[4])
    return out


def test_a_latent_regressed_on_an_observed_outcome_matches_lavaan():
    """f ~ y with y itself an outcome: a gamma on y's copy (at two levels on its within
    part, minus the gamma from y's part into f, a between beta); the latent's implied
    variance carries y's own variance through the path. [lavaan] 0.6-14, models
    'latentony' (with fit measures and std.all) and 'latentony2' (with fit measures)."""
    fit = fitted("f1 =~ y1 + y2 + y3\n y4 ~ x1\n f1 ~ g*y4 + x2", demo())
    reference = lavaan_table("lavaan_syntax.out", "latentony")
    assert len(reference) == 14 == fit.n_parameters
    close_to_lavaan(ours(fit), reference)
    assert -fit.deviance / 2 == pytest.approx(-17509.19304855, abs=1e-4)
    measures = fit.fit_measures()
    for name, value in lavaan_numbers("fit measures latentony").items():
        assert measures[name] == pytest.approx(value, rel=1e-6, abs=1e-7), name
    std = fit.parameter_estimates().set_index(["lhs", "op", "rhs"])["std_all"]
    checked = [key for key in std_all_table("std.all latentony") if key in std.index]
    assert len(checked) == 15
    for key in checked:
        assert std.loc[key] == pytest.approx(std_all_table("std.all latentony")[key],
                                             abs=1e-5), key
    fit = fitted("level: 1\n fw =~ y1 + y2 + y3\n y4 ~ x1\n fw ~ y4 + x2\n"
                 "level: 2\n fb =~ y1 + y2 + y3\n y4 ~ w1\n fb ~ y4", demo(),
                 cluster="cluster")
    reference = lavaan_table("lavaan_syntax.out", "latentony2")
    assert len(reference) == 23 == fit.n_parameters
    close_to_lavaan(ours(fit), reference)
    assert -fit.deviance / 2 == pytest.approx(-16303.33641072, abs=1e-4)
    measures = fit.fit_measures()
    ours_of = {"srmr_within": "srmr_row", "srmr_between": "srmr_cluster"}
    for name, value in lavaan_numbers("fit measures latentony2").items():
        assert measures[ours_of.get(name, name)] == pytest.approx(value, rel=2e-4), name


def test_a_regressor_whose_variance_is_written_is_modelled_as_in_lavaan():
    """lavaan: 'x1 ~~ x1' frees an exogenous regressor's variance (it is no longer
    fixed.x), and its log L then includes x1. Here x1 becomes an outcome of the model
    and f ~ x1 a regression on it. [lavaan] 0.6-14, model 'modelledx' of
    lavaan_syntax.R."""
    fit = fitted("f =~ y1 + y2 + y3\n f ~ x1\n x1 ~~ x1", demo())
    assert -fit.deviance / 2 == pytest.approx(-16371.34526953, abs=1e-4)
    reference = lavaan_table("lavaan_syntax.out", "modelledx")
    assert len(reference) == 12
    close_to_lavaan(ours(fit), reference)
    assert fit.n_parameters == 12


LINEAR = """
  f1 =~ y1 + a*y2 + b*y3
  f2 =~ y4 + c*y5 + d*y6
  f2 ~ e*f1
  a == 2*b                        # a multiple of a label
  d == 0.7                        # a label at a number
  c == e/2
  ae := a*e
"""


def test_equalities_to_multiples_and_numbers_match_lavaan():
    """a == 2*b makes a's elements 2 times parameter b (a scaled label '2.0*b'), d == 0.7
    fixes d's, c == e/2 halves e; the rows keep the syntax's labels, with c times b's
    SE, and := reads them. [lavaan] 0.6-14, model 'linear' of lavaan_syntax.R."""
    fit = fitted(LINEAR, demo())
    assert fit.converged and fit.n_parameters == 16       # 6 residuals, 6 means, 2 psi, b, e
    assert set(fit.labels) >= {"b", "e"} and not {"a", "c", "d"} & set(fit.labels)
    assert -fit.deviance / 2 == pytest.approx(-25906.80314762, abs=1e-4)
    reference = lavaan_table("lavaan_syntax.out", "linear")
    close_to_lavaan(ours(fit), {k: v for k, v in reference.items() if k[1] != ":="})
    pe = fit.parameter_estimates().set_index(["lhs", "op", "rhs"])
    assert pe.loc[("f1", "=~", "y2"), "label"] == "a"
    assert pe.loc[("f2", "=~", "y6"), "est"] == 0.7 and np.isnan(pe.loc[("f2", "=~", "y6"),
                                                                         "se"])
    ae = fit.parameter_estimates().set_index("lhs").loc["ae"]
    assert ae.est == pytest.approx(0.61259985, abs=1e-4)
    assert ae.se == pytest.approx(0.06421758, rel=1e-3)
    with pytest.raises(xm.SpecificationError, match="would make a variance or covariance"):
        xm.sem("f1 =~ y1 + y2 + y3\n y1 ~~ v*y1\n y2 ~~ w*y2\n v == 2*w", demo())


def nested_and_crossed(seed=8, n_districts=6, schools_per=4, n_hoods=12, n=900):
    """Students in schools in districts, crossed with neighbourhoods: two ratings y1, y2
    with a part at every cluster level."""
    rng = np.random.default_rng(seed)
    school = rng.integers(0, n_districts * schools_per, n)
    hood = (school // schools_per * 2 + rng.integers(0, 3, n)) % n_hoods
    effect = (rng.normal(0, 0.6, n_districts)[school // schools_per]
              + rng.normal(0, 0.5, n_districts * schools_per)[school]
              + rng.normal(0, 0.4, n_hoods)[hood])
    y = effect[:, None] * [1.0, 0.8] + rng.normal(0, 1.0, (n, 2))
    return pd.DataFrame(dict(school=school, district=school // schools_per, hood=hood,
                             y1=y[:, 0], y2=y[:, 1]))


def test_nested_chains_crossed_with_each_other():
    """Clusters read from the data: schools within districts (a chain) crossed with
    neighbourhoods. A y's parts at school, district and neighbourhood give lme4's model
    y ~ 1 + (1|school) + (1|district) + (1|hood) ([lme4] through xm.lmer, the same
    -2 log L); the summary states the structure; a latent of the chain is no variable of
    the crossed level."""
    data = nested_and_crossed()
    fit = fitted("level: 1\n y1 ~~ y1\nlevel: school\n y1 ~~ y1\nlevel: district\n y1 ~~ y1\n"
                 "level: hood\n y1 ~~ y1", data, cluster=["school", "district", "hood"])
    lmer = xm.lmer("y1 ~ 1 + (1|school) + (1|district) + (1|hood)", data, REML=False)
    assert fit.converged
    assert fit.deviance == pytest.approx(lmer.deviance, abs=1e-6)
    assert "Levels                      nested and crossed: row in school in district, " \
           "and in hood" in fit.summary()
    assert fit.model.spec.submodels["row"].parents == ["school", "hood"]
    assert fit.model.spec.submodels["school"].parents == ["district"]
    two = fitted("level: 1\n f =~ y1 + l*y2\nlevel: school\n f ~~ f\nlevel: district\n"
                 " f ~~ f\nlevel: hood\n f ~~ f", data, cluster=["school", "district", "hood"])
    assert two.converged and two.n_parameters == 9
    with pytest.raises(xm.SpecificationError, match=r"'fd' \(a variable of level 3\) is "
                                                    r"named at level 4, which is not above"):
        xm.sem("level: 1\n y1 ~~ y1\nlevel: school\n y1 ~~ y1\nlevel: district\n fd =~ y1\n"
               "level: hood\n fd ~~ fd", data, cluster=["school", "district", "hood"])


def test_cluster_structure_and_covariate_errors_name_the_columns():
    """Clusters that group the rows alike, a cluster within two crossed clusters and a
    covariate named at two levels are refused, each naming the columns and the fix."""
    data = nested_and_crossed()
    with pytest.raises(xm.SpecificationError, match="clusters 'school' and 'copy' group the "
                                                    "rows the same way"):
        xm.sem("level: 1\n y1 ~~ y1\nlevel: school\n y1 ~~ y1\nlevel: copy\n y1 ~~ y1",
               data.assign(copy=data.school + 100), cluster=["school", "copy"])
    cell = data.assign(cell=data.school * 100 + data.hood)
    with pytest.raises(xm.SpecificationError, match="cluster 'cell' is within 'school' and "
                                                    "within 'hood', which are crossed"):
        xm.sem("level: 1\n y1 ~~ y1\nlevel: cell\n y1 ~~ y1\nlevel: school\n y1 ~~ y1\n"
               "level: hood\n y1 ~~ y1", cell, cluster=["cell", "school", "hood"])
    with pytest.raises(xm.SpecificationError, match="'x1' is a covariate at level 1 and is "
                                                    "named at level 2.*write 'x1 ~~ x1'"):
        xm.sem(TUTORIAL.replace("fb ~ w1 + w2", "fb ~ x1 + w1"), demo(), cluster="cluster")


def test_two_crossed_clusters_within_one():
    """Two groupings crossed with each other within schools (like classes and teachers):
    a y's school part reaches the rows once, through the first of them, and the model is
    lme4's y ~ 1 + (1|half) + (1|third) + (1|school) ([lme4] through xm.lmer)."""
    data = nested_and_crossed()
    two = data.assign(half=data.school * 2 + data.index % 2,      # two crossed groupings
                      third=data.school * 3 + data.index % 3)     # within each school
    fit = fitted("level: 1\n y1 ~~ y1\nlevel: half\n y1 ~~ y1\nlevel: third\n y1 ~~ y1\n"
                 "level: school\n y1 ~~ y1", two, cluster=["half", "third", "school"])
    lmer = xm.lmer("y1 ~ 1 + (1|half) + (1|third) + (1|school)", two, REML=False)
    assert fit.converged
    assert fit.deviance == pytest.approx(lmer.deviance, abs=1e-6)
    assert "nested and crossed: row in half in school, and in third in school" in \
        fit.summary()
