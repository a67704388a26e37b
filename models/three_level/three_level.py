"""Three-level hierarchy: students in teachers in schools, latent variables at each level.

    student:  y_kist = nu_k + l_k fs_ist + e_k,      fs_ist = ft_st + zeta_ist
    teacher:  ft_st  = b fh_t + zeta_st
    school:   z_mt   = nz_m + g_m fh_t + d_m,        fh_t ~ N(0, var_fh)

Three student indicators y1..y3 measure the student factor fs; its teacher
part is the teacher factor ft (between beta teacher -> student fixed to 1);
the teachers' factor regresses on the school factor fh (between beta
school -> teacher, free: a latent regression across levels), which two
school-level indicators z1, z2 measure. Data simulated from the model. The
same model in lavaan syntax (xm.sem, three level: blocks) ends the script.
Run: python models/three_level/three_level.py
"""
import numpy as np
import pandas as pd

import xxmpy as xm

TRUTH = {"nu1": 5.0, "nu2": 4.0, "nu3": 6.0, "l2": 0.8, "l3": 1.1,
         "e1": 0.5, "e2": 0.6, "e3": 0.4, "var_fs": 1.0,
         "b": 0.7, "var_ft": 0.3,
         "nz1": 10.0, "nz2": 20.0, "g2": 1.5, "ez1": 0.3, "ez2": 0.5, "var_fh": 1.0}
YS, ZS = ["y1", "y2", "y3"], ["z1", "z2"]


def _diag_label(names):
    out = np.full((len(names), len(names)), None, dtype=object)
    np.fill_diagonal(out, names)
    return out


def simulate(seed=20261121, n_schools=40, teachers_per=3, students_per=6):
    """Student, teacher and school tables drawn from TRUTH."""
    rng = np.random.default_rng(seed)
    t = TRUTH
    fh = rng.normal(0, np.sqrt(t["var_fh"]), n_schools)
    z = (np.array([t["nz1"], t["nz2"]]) + np.outer(fh, [1.0, t["g2"]])
         + rng.normal(0, np.sqrt([t["ez1"], t["ez2"]]), (n_schools, 2)))
    school_of = np.repeat(np.arange(n_schools), teachers_per)
    ft = t["b"] * fh[school_of] + rng.normal(0, np.sqrt(t["var_ft"]), school_of.size)
    teacher_of = np.repeat(np.arange(school_of.size), students_per)
    fs = ft[teacher_of] + rng.normal(0, np.sqrt(t["var_fs"]), teacher_of.size)
    y = (np.array([t["nu1"], t["nu2"], t["nu3"]]) + np.outer(fs, [1.0, t["l2"], t["l3"]])
         + rng.normal(0, np.sqrt([t["e1"], t["e2"], t["e3"]]), (fs.size, 3)))
    student = pd.DataFrame(y, columns=YS)
    student.insert(0, "teacher", teacher_of)
    student.insert(0, "student", np.arange(fs.size))
    teacher = pd.DataFrame({"teacher": np.arange(school_of.size), "school": school_of})
    school = pd.DataFrame(z, columns=ZS)
    school.insert(0, "school", np.arange(n_schools))
    return student, teacher, school


student, teacher, school = simulate()
matrices = [  # (level, type, pattern, value, label): shared by both API styles
    ("student", "nu", np.ones((3, 1)), np.full((3, 1), 5.0), [["nu1"], ["nu2"], ["nu3"]]),
    ("student", "lambda", [[0], [1], [1]], np.ones((3, 1)), [[None], ["l2"], ["l3"]]),
    ("student", "theta", np.eye(3), np.eye(3) * 0.5, _diag_label(["e1", "e2", "e3"])),
    ("student", "psi", [[1]], [[1.0]], [["var_fs"]]),
    ("teacher", "psi", [[1]], [[0.5]], [["var_ft"]]),
    ("school", "nu", [[1], [1]], [[8.0], [15.0]], [["nz1"], ["nz2"]]),
    ("school", "lambda", [[0], [1]], [[1.0], [1.0]], [[None], ["g2"]]),
    ("school", "theta", np.eye(2), np.eye(2) * 0.5, _diag_label(["ez1", "ez2"])),
    ("school", "psi", [[1]], [[1.0]], [["var_fh"]]),
]

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["student", "teacher", "school"], name="three-level hierarchy")
xm.xxmSubmodel(model=m, level="student", parents=["teacher"], ys=YS, etas=["fs"], data=student)
xm.xxmSubmodel(model=m, level="teacher", parents=["school"], etas=["ft"], data=teacher)
xm.xxmSubmodel(model=m, level="school", ys=ZS, etas=["fh"], data=school)
for level, type_, pattern, value, label in matrices:
    xm.xxmWithinMatrix(model=m, level=level, type=type_, pattern=pattern, value=value,
                       label=label)
xm.xxmBetweenMatrix(model=m, parent="teacher", child="student", type="beta", pattern=[[0]],
                    value=[[1.0]])
xm.xxmBetweenMatrix(model=m, parent="school", child="teacher", type="beta", pattern=[[1]],
                    value=[[0.5]], label=[["b"]])
xm.xxmRun(model=m)
fit_xxm = m.result
print(fit_xxm)

# Pythonic style --------------------------------------------------------------
model = (xm.Model(["student", "teacher", "school"], name="three-level hierarchy")
         .level("student", parents=["teacher"], ys=YS, etas=["fs"], data=student)
         .level("teacher", parents=["school"], etas=["ft"], data=teacher)
         .level("school", ys=ZS, etas=["fh"], data=school))
for spec in matrices:
    model.within(*spec)
fit_py = (model.between("teacher", "student", "beta", [[0]], [[1.0]])
          .between("school", "teacher", "beta", [[1]], [[0.5]], [["b"]])
          .fit())

# lavaan syntax, three levels (beyond lavaan) ---------------------------------------
# One table, a row per student with the teacher and school ids and the school's z1, z2.
# A latent of a lower level named in a block is its part there: fs named at the
# teacher level is the teacher factor ft; named at the school level with variance 0,
# its school part is b fh alone, so the teachers' factor regresses on fh.
one_table = student.merge(teacher, on="teacher").merge(school, on="school")
fit_sem = xm.sem("""
    level: student
        fs =~ y1 + l2*y2 + l3*y3
    level: teacher
        fs ~~ var_ft*fs          # the teacher part of fs: ft
    level: school
        fh =~ z1 + g2*z2
        fs ~ b*fh                # ft regressed on the school factor
        fs ~~ 0*fs               # with no school-level residual of its own
""", one_table, cluster=["teacher", "school"])

print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}, "
      f"lavaan syntax {fit_sem.deviance:.4f}")
recovery = pd.DataFrame({"truth": pd.Series(TRUTH)}).join(fit_xxm.estimates.set_index("label")
                                                        [["estimate", "se"]])
print("The fit recovers the parameters the data were drawn from:")
print(recovery.round(4))
