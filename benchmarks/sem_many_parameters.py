"""Two-level CFAs with many parameters (issue #24, target 6): time, evaluations and
how many of them the finite-difference Hessians take.

p indicators and q factors on each level (p / q indicators per factor), 200 clusters
of 20, complete data simulated with a fixed seed; the model written in lavaan syntax
(xm.sem), as lavaan users would. The issue's reference: lavaan 0.6-14 takes 0.44 s
(12 indicators, 3 factors, 66 parameters) and 2.5 s (24, 6: 150 parameters).

Run by hand: OPENBLAS_NUM_THREADS=1 python benchmarks/sem_many_parameters.py
Not a test: it prints a report.
"""
import time
import warnings

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


def main():
    warnings.simplefilter("ignore")
    counted = {"hessian": 0}
    original = optimize.hessian_of

    def counting(fg, x, *args, **kwargs):
        linear = kwargs.get("linear")
        means = 0 if linear is None else int(np.sum(linear))
        counted["hessian"] += x.size + (x.size - means if kwargs.get("central", True) else 0)
        return original(fg, x, *args, **kwargs)
    optimize.hessian_of = counting
    print(f"{'p':>3s} {'q':>2s} {'params':>6s} {'fit s':>6s} {'evals':>6s} {'iters':>5s} "
          f"{'hessian evals':>13s} {'ms/eval':>7s}")
    for p, q in ((12, 3), (24, 6)):
        model, data = simulate(p, q)
        counted["hessian"] = 0
        t0 = time.perf_counter()
        fit = xm.sem(model, data, cluster="g")
        seconds = time.perf_counter() - t0
        rec = fit.record
        print(f"{p:3d} {q:2d} {fit.n_parameters:6d} {seconds:6.2f} {rec.n_evaluations:6d} "
              f"{rec.n_iterations:5d} {counted['hessian']:13d} "
              f"{1e3 * seconds / rec.n_evaluations:7.1f}  "
              f"{'converged' if fit.converged else rec.status}")


if __name__ == "__main__":
    main()
