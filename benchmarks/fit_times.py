"""Baseline timings: one -2 log L evaluation at the start values, compiling the
model (validation + arrays) and full fits (compile excluded).

Run by hand: OPENBLAS_NUM_THREADS=1 python benchmarks/fit_times.py
Peers on this machine (../shared/data/README.md): lme4 0.019-0.023 s per fit,
OpenMx 0.039-0.46 s. Not a test: it prints a report.
"""
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import reference_models as ref  # noqa: E402

from xxmpy.engine import deviance  # noqa: E402

CASES = {"Dyestuff": ref.one_way,
         "Dyestuff2": lambda: ref.one_way("Dyestuff2.csv", start=(5.0, 1.0, 10.0)),
         "Pastes": ref.pastes, "Penicillin": ref.penicillin, "sleepstudy": ref.sleepstudy,
         "brim": ref.brim}


def main(n_eval=200, n_fit=3):
    warnings.simplefilter("ignore")
    print(f"{'case':11s} {'eval ms':>8s} {'compile ms':>10s} {'fit s':>6s} {'evals':>6s} "
          f"{'-2LL':>10s}")
    for name, make in CASES.items():
        problem = make().compile()
        t = time.perf_counter()
        for _ in range(n_eval):
            deviance(problem, problem.params.start)
        per_eval = (time.perf_counter() - t) / n_eval
        fits, compiles = [], []
        for _ in range(n_fit):
            model = make()
            t = time.perf_counter()
            model.compile()
            compiles.append(time.perf_counter() - t)
            t = time.perf_counter()
            result = model.fit()
            fits.append(time.perf_counter() - t)
        print(f"{name:11s} {per_eval * 1e3:8.2f} {np.median(compiles) * 1e3:10.1f} "
              f"{np.median(fits):6.3f} "
              f"{result.record.n_evaluations:6d} {result.deviance:10.4f}")


if __name__ == "__main__":
    main()
