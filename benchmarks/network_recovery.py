"""How often prune and stepup recover a known network (issue #20's check).

A two-level model (rows in clusters): six variables whose within-cluster residuals
form a sparse Gaussian graphical model (TRUE_EDGES, 6 of 15 possible edges) and
independent cluster random intercepts. For each seed the data are simulated,
then (a) the full within network is fitted and pruned (recursive, alpha 0.01,
no adjustment, and Holm), (b) the empty network is fitted and stepped up (alpha
0.01, BIC). Reported: the share of true edges kept (sensitivity) and of absent
edges left out (specificity), over seeds.

Run by hand: OPENBLAS_NUM_THREADS=1 python benchmarks/network_recovery.py [--seeds N]
Not a test: it prints a report.
"""
import argparse
import time
import warnings

import numpy as np
import pandas as pd

import xxmpy as xm

P = 6
TRUE_EDGES = {(1, 0): 0.3, (2, 1): 0.3, (3, 2): -0.25, (4, 3): 0.3, (5, 4): 0.25, (5, 0): 0.2}
SCALES = np.array([1.0, 0.9, 1.1, 1.0, 0.8, 1.2])


def simulate(seed, n_clusters=50, per_cluster=10):
    rng = np.random.default_rng(seed)
    omega = np.zeros((P, P))
    for (r, c), w in TRUE_EDGES.items():
        omega[r, c] = omega[c, r] = w
    sigma = SCALES[:, None] * np.linalg.inv(np.eye(P) - omega) * SCALES[None, :]
    cluster = np.repeat(np.arange(n_clusters), per_cluster)
    y = (rng.multivariate_normal(np.zeros(P), sigma, len(cluster))
         + rng.normal(0, 0.5, (n_clusters, P))[cluster])
    rows = pd.DataFrame(y, columns=[f"y{k + 1}" for k in range(P)])
    rows["row"], rows["cluster"] = np.arange(len(rows)), cluster
    return rows, n_clusters


def model(rows, n_clusters, pattern):
    ys = [f"y{k + 1}" for k in range(P)]
    etas = [f"u{k + 1}" for k in range(P)]
    return (xm.Model(["row", "cluster"])
            .level("row", parents=["cluster"], ys=ys, data=rows)
            .level("cluster", etas=etas, data=pd.DataFrame({"cluster": range(n_clusters)}))
            .within("row", "theta", pattern, np.eye(P), form="ggm")
            .within("row", "nu", np.ones((P, 1)), np.zeros((P, 1)))
            .within("cluster", "psi", np.eye(P), np.eye(P) * 0.3)
            .between("cluster", "row", "lambda", np.zeros((P, P)), np.eye(P)))


def edges(fit):
    omega = fit.network("row").to_numpy()
    return {(r, c) for r in range(P) for c in range(r) if omega[r, c] != 0}


def rates(found):
    absent = P * (P - 1) // 2 - len(TRUE_EDGES)
    kept = len(found & set(TRUE_EDGES)) / len(TRUE_EDGES)
    left_out = 1 - len(found - set(TRUE_EDGES)) / absent
    return kept, left_out


def main(seeds):
    warnings.simplefilter("ignore")
    methods = {"prune (none)": [], "prune (holm)": [], "stepup (bic)": []}
    t0 = time.perf_counter()
    for seed in range(seeds):
        rows, n = simulate(seed)
        full = model(rows, n, np.ones((P, P))).fit(start="auto")
        empty = model(rows, n, np.eye(P)).fit(start="auto")
        methods["prune (none)"].append(rates(edges(xm.prune(full, 0.01, recursive=True).fit)))
        methods["prune (holm)"].append(rates(edges(xm.prune(full, 0.01, "holm",
                                                             recursive=True).fit)))
        methods["stepup (bic)"].append(rates(edges(xm.stepup(empty, 0.01).fit)))
    print(f"{seeds} seeds, 500 rows in 50 clusters, 6 true edges of 15 "
          f"({time.perf_counter() - t0:.1f} s)")
    print(f"{'method':14s} {'true edges kept':>16s} {'absent left out':>16s} "
          f"{'exact network':>14s}")
    for name, got in methods.items():
        got = np.array(got)
        exact = np.mean((got[:, 0] == 1) & (got[:, 1] == 1))
        print(f"{name:14s} {got[:, 0].mean():16.3f} {got[:, 1].mean():16.3f} {exact:14.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    main(parser.parse_args().seeds)
