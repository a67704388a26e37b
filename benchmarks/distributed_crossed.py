"""Issue #22's crossed benchmark: a crossed design's likelihood on shards, against the
same evaluation in this process.

Cases: InstEval through xm.lmer (REML: the fixed effect a shared flat level; students
sharded, lecturers and departments shared) and through the xxM API (ML, the mean a
parameter), and the simulated grade-point design at --scale of its full size
(benchmarks/cases.py: students sharded, instructors and departments shared).

Per case: the shared block's size, then the time of one evaluation of -2 log L with
its gradient (the median of five, at the start values) in this process on the whole
problem, on in-process shards, and on a LocalCluster of 1 and of 2 worker processes
(threads_per_worker=1) with the default shards (one a worker) and with --shards, each
with the relative difference of -2 log L from the whole problem's; and a fit on the
2-worker cluster with the default shards (time including the shards' compile on the
workers, evaluations, -2 log L against the in-process fit).

Run by hand: OPENBLAS_NUM_THREADS=1 python benchmarks/distributed_crossed.py
[--scale 0.125] [--shards 4]. Not a test: it prints a report.
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def per_evaluation(evaluate, theta, repeats=5):
    """(median seconds, -2 log L) of ``evaluate`` (theta -> (f, g)) at theta."""
    times, f = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        f, _ = evaluate(theta)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), f


def models(scale):
    """(name, xxM model) of each case; the lmer ones as xm.lmer builds them."""
    import cases

    from xxmpy.lmm.design import build_design
    from xxmpy.lmm.to_xxm import build_model
    formula = "y ~ 1 + (1|s) + (1|d) + (1|dept)"
    yield "InstEval xm.lmer REML", build_model(build_design(formula, cases.insteval_frame()),
                                               reml=True)
    yield "InstEval xxM API ML", cases.insteval()
    yield f"grades x{scale} xm.lmer ML", cases.grades(scale)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.125)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    from xxmpy.distributed import ShardedLikelihood
    from xxmpy.distributed.crossed import crossed_split
    from xxmpy.engine import deviance_and_gradient
    warnings.simplefilter("ignore")
    for name, model in models(args.scale):
        problem = model.compile()
        theta = problem.params.start
        top, _, shared, _ = crossed_split(model.spec)
        n_shared = sum(len(model.spec.submodels[s].data) * len(model.spec.submodels[s].etas)
                       for s in shared)
        print(f"\n{name}: {problem.n_observed:,} rows; {top} sharded, {shared} shared "
              f"({n_shared:,} etas: the block the client factors)")
        t_whole, f_whole = per_evaluation(lambda th: deviance_and_gradient(problem, th),
                                          theta)
        print(f"  {'in-process, whole problem':40s}{t_whole:8.3f} s per evaluation")
        local = ShardedLikelihood(model, args.shards)
        t, f = per_evaluation(local.deviance_and_gradient, theta)
        print(f"  {f'in-process, {args.shards} shards':40s}{t:8.3f} s   "
              f"rel. diff {abs(f - f_whole) / abs(f_whole):.1e}")
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0",
                              memory_limit=None) as cluster, Client(cluster) as client:
                client.wait_for_workers(workers)
                for shards in (None, args.shards):
                    remote = ShardedLikelihood(model, shards, client=client)
                    t, f = per_evaluation(remote.deviance_and_gradient, theta)
                    label = f"LocalCluster, {workers} worker(s), {remote.n_shards} shard(s)"
                    print(f"  {label:40s}{t:8.3f} s   "
                          f"rel. diff {abs(f - f_whole) / abs(f_whole):.1e}")
                if workers == 2:                # the default: a shard a worker
                    t0 = time.perf_counter()
                    fit = model.fit(executor=client)
                    t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        whole = model.fit()
        t_in = time.perf_counter() - t0
        print(f"  fit on 2 workers: {t_fit:.1f} s, {fit.record.n_evaluations} evaluations, "
              f"-2 log L {fit.deviance:.6f}; in process: {t_in:.1f} s, "
              f"{whole.record.n_evaluations} evaluations, -2 log L {whole.deviance:.6f}")


if __name__ == "__main__":
    main()
