"""Profile-CI timings on the reference data and a simulated 20-parameter model.

Run by hand: OPENBLAS_NUM_THREADS=1 python benchmarks/ci_times.py
Peers on this machine (../shared/data/README.md, issue #6): lme4
confint(method = "profile") 0.18 s (Dyestuff), 0.46 s (Pastes), 1.4 s
(sleepstudy); OpenMx mxCI 0.03 s, 0.04 s, 0.11 s, and 0.03 s for brim.
Not a test: it prints a report (median of 3 runs, fit excluded; CI/fit is the
one-process CI time in fits' worth, the fit timed after compiling; evals: of
-2 log L and its gradient for all limits; fits: full profile fits among them;
/OpenMx: the one-process CI time over OpenMx's).
"""
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases  # noqa: E402
import reference_models as ref  # noqa: E402

PEERS = {"Dyestuff": (0.18, 0.03), "Pastes": (0.46, 0.04), "sleepstudy": (1.4, 0.11),
         "brim": (None, 0.03)}


CASES = {"Dyestuff": ref.one_way, "Pastes": ref.pastes, "sleepstudy": ref.sleepstudy,
         "brim": ref.brim,
         # 4,000 students x 200 classes x 20 schools, 6 indicators, a factor at each
         # level, data simulated from the model (benchmarks/cases.py): 20 parameters
         "three_level_20par": lambda: cases.three_level(n_top=20)}


def main(repeats=3, only=None):
    warnings.simplefilter("ignore")
    cores = os.cpu_count()
    print(f"{'case':22s} {'k':>3s} {'fit s':>6s} {'CI s (1 proc)':>13s} "
          f"{f'CI s ({cores} proc)':>13s} {'CI/fit':>6s} {'evals':>6s} {'fits':>5s} "
          f"{'status':>22s}  lme4 s  OpenMx s  /OpenMx")
    for name, make in CASES.items():
        if only and name not in only:
            continue
        fit_times = []
        for _ in range(repeats):         # fit time after compile (CI/fit: issue #6 allows 2k)
            model = make()
            model.compile()
            t = time.perf_counter()
            result = model.fit()
            fit_times.append(time.perf_counter() - t)
        t1, tn = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            ci = result.profile_ci(n_jobs=1, progress=False)
            t1.append(time.perf_counter() - t)
            t = time.perf_counter()
            result.profile_ci(n_jobs=cores, progress=False)
            tn.append(time.perf_counter() - t)
        statuses = np.concatenate([ci.table.lower_status, ci.table.upper_status])
        counts = ", ".join(f"{s} {int((statuses == s).sum())}" for s in np.unique(statuses))
        lme4, openmx = PEERS.get(name, (None, None))
        fit_s = np.median(fit_times)
        print(f"{name:22s} {result.n_parameters:3d} {fit_s:6.3f} "
              f"{np.median(t1):13.3f} {np.median(tn):13.3f} {np.median(t1) / fit_s:6.1f} "
              f"{ci.n_evaluations:6d} {ci.n_fits:5d} {counts:>22s}  "
              f"{lme4 if lme4 else '-':>6}  {openmx if openmx else '-':>8}  "
              f"{f'{np.median(t1) / openmx:.2f}' if openmx else '-':>7}")


if __name__ == "__main__":
    main(only=sys.argv[1:])
