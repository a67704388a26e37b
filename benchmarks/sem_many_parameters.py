"""Two-level CFAs with many parameters (issue #24, target 6): time, evaluations and
how many of them the finite-difference Hessians take.

p indicators and q factors on each level (p / q indicators per factor), 200 clusters
of 20, complete data simulated with a fixed seed; the model written in lavaan syntax
(xm.sem), as lavaan users would. lavaan fits the same data and syntax in the same run
when Rscript and lavaan are installed (timed inside R, one fit after a warm-up, with
the default SEs as xm.sem computes them); the ratio is xxmpy / lavaan, and the -2 log L
of both are printed (-2 logl for lavaan).

Run by hand: OPENBLAS_NUM_THREADS=1 python benchmarks/sem_many_parameters.py
Not a test: it prints a report.
"""
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import xxmpy as xm
import xxmpy.fit.optimize as optimize


def simulate(p, q, clusters=200, per=20, seed=1):
    rng = np.random.default_rng(seed)
    size = p // q
    lam = np.zeros((p, q))
    for j in range(q):
        lam[j * size:(j + 1) * size, j] = rng.uniform(0.6, 1.0, size)
        lam[j * size, j] = 1.0
    g = np.repeat(np.arange(clusters), per)
    y = (rng.normal(size=(g.size, q)) @ lam.T
         + (rng.normal(0, 0.5, (clusters, q)) @ lam.T)[g]
         + rng.normal(0, 0.3, (clusters, p))[g] + rng.normal(0, 0.7, (g.size, p)))
    data = pd.DataFrame(y, columns=[f"y{k}" for k in range(p)])
    data["g"] = g
    blocks = []
    for level, name in (("1", "fw"), ("2", "fb")):
        lines = [f"  {name}{j} =~ " + " + ".join(f"y{k}" for k in range(j * size,
                                                                       (j + 1) * size))
                 for j in range(q)]
        blocks.append(f"level: {level}\n" + "\n".join(lines))
    return "\n".join(blocks), data


LAVAAN = r"""
suppressPackageStartupMessages(library(lavaan))
args <- commandArgs(TRUE)
data <- read.csv(args[1])
model <- paste(readLines(args[2]), collapse = "\n")
fit <- sem(model, data = data, cluster = "g")          # warm-up
t0 <- proc.time()[["elapsed"]]
fit <- sem(model, data = data, cluster = "g")
cat(sprintf("%.4f %.6f\n", proc.time()[["elapsed"]] - t0, -2 * as.numeric(logLik(fit))))
"""


def lavaan_fit(model, data):
    """(seconds, -2 log L) of lavaan's sem on the same data, or None without R / lavaan."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / name for name in ("data.csv", "model.lav", "fit.R")]
        data.to_csv(paths[0], index=False)
        paths[1].write_text(model)
        paths[2].write_text(LAVAAN)
        proc = subprocess.run(["Rscript", str(paths[2]), str(paths[0]), str(paths[1])],
                              capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return None
    seconds, deviance = proc.stdout.split()
    return float(seconds), float(deviance)


def main():
    warnings.simplefilter("ignore")
    counted = {"hessian": 0}
    original = optimize.hessian_of

    def counting(fg, x, *args, **kwargs):
        def counted_fg(point):                 # every gradient a Hessian takes
            counted["hessian"] += 1
            return fg(point)
        return original(counted_fg, x, *args, **kwargs)
    optimize.hessian_of = counting
    print(f"{'p':>3s} {'q':>2s} {'params':>6s} {'fit s':>6s} {'evals':>6s} {'iters':>5s} "
          f"{'hessian evals':>13s} {'ms/eval':>7s} {'-2 log L':>14s} {'lavaan s':>8s} "
          f"{'ratio':>5s} {'lavaan -2 log L':>15s}")
    for p, q in ((12, 3), (24, 6)):
        model, data = simulate(p, q)
        counted["hessian"] = 0
        t0 = time.perf_counter()
        fit = xm.sem(model, data, cluster="g")
        seconds = time.perf_counter() - t0
        rec = fit.record
        peer = lavaan_fit(model, data)
        print(f"{p:3d} {q:2d} {fit.n_parameters:6d} {seconds:6.2f} {rec.n_evaluations:6d} "
              f"{rec.n_iterations:5d} {counted['hessian']:13d} "
              f"{1e3 * seconds / rec.n_evaluations:7.1f} {fit.fit.deviance:14.4f} "
              + (f"{peer[0]:8.2f} {seconds / peer[0]:5.2f} {peer[1]:15.4f}" if peer else
                 f"{'-':>8s}") + f"  {'converged' if fit.converged else rec.status}")


if __name__ == "__main__":
    main()
