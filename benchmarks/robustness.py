"""How often a fit reaches its optimum from perturbed start values (issue #23).

Run by hand: OPENBLAS_NUM_THREADS=1 python benchmarks/robustness.py [--seeds 10]
For every gallery model (models/*/*.py) and the lme4 reference sets, the fit
from the written start values gives the reference -2 log L; then each start
value is multiplied by exp(delta z), z ~ N(0, 1), for delta = 1e-3 and 0.1
(--seeds draws each), and from start="auto" (start values from the data). A fit
counts as reaching the optimum when its -2 log L is within 1e-6 relative of
the reference. Prints one row per model: successes per delta, the median
evaluations, and the worst -2 log L gap.
"""
import argparse
import contextlib
import io
import runpy
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def gallery():
    """{name: fitted Model} of every gallery script."""
    out = {}
    for path in sorted((ROOT / "models").glob("*/*.py")):
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ns = runpy.run_path(str(path), run_name="__main__")
        out[path.parent.name] = ns["fit_xxm"].model
    return out


def perturbed_fits(model, delta, seeds, reference):
    start = model.compile().params.start
    ok, evals, worst = 0, [], 0.0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        trial = start * np.exp(delta * rng.normal(size=start.size))
        trial = np.where(start == 0, delta * rng.normal(size=start.size), trial)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = model.fit(start=trial)
            except ValueError:
                continue
        gap = abs(fit.deviance - reference) / abs(reference)
        worst = max(worst, gap)
        ok += gap < 1e-6
        evals.append(fit.record.n_evaluations)
    return ok, int(np.median(evals)) if evals else 0, worst


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("models", nargs="*")
    args = parser.parse_args()
    models = gallery()
    print(f"{'model':20s} {'k':>3s} {'ref -2LL':>12s} {'evals':>6s} "
          f"{'1e-3 ok':>8s} {'evals':>6s} {'10% ok':>7s} {'evals':>6s} {'auto':>5s} "
          f"{'evals':>6s} {'worst gap':>10s}")
    for name, model in models.items():
        if args.models and name not in args.models:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = model.fit()
        t = time.perf_counter()
        small = perturbed_fits(model, 1e-3, args.seeds, base.deviance)
        large = perturbed_fits(model, 0.1, args.seeds, base.deviance)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            auto = model.fit(start="auto")
        gap = abs(auto.deviance - base.deviance) / abs(base.deviance)
        print(f"{name:20s} {len(base.labels):3d} {base.deviance:12.4f} "
              f"{base.record.n_evaluations:6d} {small[0]:5d}/{args.seeds:<2d} {small[1]:6d} "
              f"{large[0]:4d}/{args.seeds:<2d} {large[1]:6d} {'ok' if gap < 1e-6 else 'NO':>5s} "
              f"{auto.record.n_evaluations:6d} {max(small[2], large[2], gap):10.1e}"
              f"  ({time.perf_counter() - t:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
