"""Writes three_level_sim.csv: students (5) in classes (4) in schools (20), one covariate.

y = 2 + 0.5 x + u_school + u_class + e, sd(u_school) = 1, sd(u_class) = 0.7,
sd(e) = 1.2; class labels 0-3 repeat across schools, so the class factor is
school:class, written (1 | school/class). Seed 20261121.
"""
from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(20261121)
ns, nc, ni = 20, 4, 5
school = np.repeat(np.arange(ns), nc * ni)
klass = np.repeat(np.arange(ns * nc), ni)
x = rng.normal(size=ns * nc * ni)
u_s, u_c = rng.normal(0, 1.0, ns), rng.normal(0, 0.7, ns * nc)
y = 2.0 + 0.5 * x + u_s[school] + u_c[klass] + rng.normal(0, 1.2, ns * nc * ni)
pd.DataFrame({"y": y, "x": x, "school": school, "class": klass % nc}).to_csv(
    Path(__file__).with_name("three_level_sim.csv"), index=False)
