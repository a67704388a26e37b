"""Issue #22's benchmark: a three-level model with 10,000,000 rows kept as Parquet files,
fitted on a 2-worker dask LocalCluster; the data never reach the client.

The model is tests/factories.three_level_factor's (6 indicators, a factor at each of
students, classes and schools, 20 parameters); the data are simulated from it in
chunks of 5,000 schools x 10 classes x 20 students (1,000,000 rows), one Parquet file
per chunk and table, with a fixed seed per chunk. Every step runs in its own process
so that each one's peak memory is its own:

  simulate    writes the files (once; kept under --dir)
  memory      the first chunk (1,000,000 rows) fitted in this process from pandas
  cluster     the same chunk, then all chunks, fitted from dd.read_parquet on a
              LocalCluster of 1 and of 2 workers (threads_per_worker=1)

Printed per run: rows, workers, -2 log L, evaluations, fit time (shuffle and compile
on the workers included), time per evaluation of -2 log L with its gradient (five,
at the estimate), the client's peak resident memory and each worker's memory after
the fit. The 1,000,000-row cluster runs must give the in-memory -2 log L.

Run by hand: OPENBLAS_NUM_THREADS=1 python benchmarks/distributed_10m.py [--rows N]
Not a test: it prints a report (about 10 minutes at 10,000,000 rows on 2 cores).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHUNK_SCHOOLS, PER_CLASS, PER_SCHOOL = 5000, 20, 10        # 1,000,000 rows a chunk


def simulate(folder, n_chunks):
    """One Parquet file per chunk and table under folder/{student,klass,school}/."""
    import pandas as pd
    lam = np.array([1.0, 0.8, 0.9, 0.7, 1.1, 0.6])
    for table in ("student", "klass", "school"):
        (folder / table).mkdir(parents=True, exist_ok=True)
    for c in range(n_chunks):
        if (folder / "school" / f"part-{c:03d}.parquet").exists():
            continue
        rng = np.random.default_rng(1000 + c)
        n_top, n_mid = CHUNK_SCHOOLS, CHUNK_SCHOOLS * PER_SCHOOL
        n = n_mid * PER_CLASS
        school0, klass0, student0 = c * n_top, c * n_mid, c * n
        mid_top = np.repeat(np.arange(n_top), PER_SCHOOL)
        low_mid = np.repeat(np.arange(n_mid), PER_CLASS)
        eta = rng.normal(0, 1.0, n) + rng.normal(0, np.sqrt(0.4), n_mid)[low_mid] \
            + rng.normal(0, np.sqrt(0.3), n_top)[mid_top[low_mid]]
        y = 2.0 + eta[:, None] * lam + rng.normal(0, np.sqrt(0.5), (n, 6))
        low = pd.DataFrame(y, columns=[f"y{k}" for k in range(6)])
        low.insert(0, "school", school0 + mid_top[low_mid])
        low.insert(0, "klass", klass0 + low_mid)
        low.insert(0, "student", student0 + np.arange(n))
        mid = pd.DataFrame({"klass": klass0 + np.arange(n_mid), "school": school0 + mid_top})
        top = pd.DataFrame({"school": school0 + np.arange(n_top)})
        for table, frame in (("student", low), ("klass", mid), ("school", top)):
            frame.to_parquet(folder / table / f"part-{c:03d}.parquet", index=False)


def model_with(tables):
    """The benchmark's model on tables {level: DataFrame or Dask DataFrame}."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    import factories
    from xxmpy.distributed.shards import with_tables
    return with_tables(factories.three_level_factor(n_top=2), tables, "three levels")


def files(folder, n_chunks):
    return {t: [str(folder / t / f"part-{c:03d}.parquet") for c in range(n_chunks)]
            for t in ("student", "klass", "school")}


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_memory(folder, n_chunks):
    import pandas as pd
    from xxmpy.engine import deviance_and_gradient
    tables = {t: pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
              for t, paths in files(folder, n_chunks).items()}
    model = model_with(tables)
    t0 = time.perf_counter()
    fit = model.fit()
    seconds = time.perf_counter() - t0
    theta = fit.record.estimate
    t1 = time.perf_counter()
    for _ in range(5):
        deviance_and_gradient(fit.problem, theta)
    return dict(rows=len(tables["student"]), workers=0, deviance=fit.deviance,
                evaluations=fit.record.n_evaluations, fit_s=seconds,
                eval_ms=(time.perf_counter() - t1) / 5 * 1e3, client_mb=peak_mb(),
                worker_mb=[], converged=bool(fit.converged))


def run_cluster(folder, n_chunks, workers, shards):
    import dask.dataframe as dd
    import psutil
    from distributed import Client, LocalCluster
    from xxmpy.distributed import PartitionedModel
    tables = {t: dd.read_parquet(paths) for t, paths in files(folder, n_chunks).items()}
    model = model_with(tables)
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0",
                      memory_limit=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        t0 = time.perf_counter()
        fit = model.fit(executor=client, shards=shards)
        seconds = time.perf_counter() - t0
        built = PartitionedModel(model, client, shards)       # timed evaluations only
        theta = fit.record.estimate
        built.likelihood.deviance_and_gradient(theta)
        t1 = time.perf_counter()
        for _ in range(5):
            built.likelihood.deviance_and_gradient(theta)
        eval_ms = (time.perf_counter() - t1) / 5 * 1e3
        rss = client.run(lambda: psutil.Process().memory_info().rss / 2 ** 20)
    return dict(rows=built.level_units["student"], workers=workers, deviance=fit.deviance,
                evaluations=fit.record.n_evaluations, fit_s=seconds, eval_ms=eval_ms,
                client_mb=peak_mb(), worker_mb=sorted(round(v) for v in rss.values()),
                converged=bool(fit.converged))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", default="/tmp/xxmpy_distributed_bench")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--chunks", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = Path(args.dir)
    warnings.simplefilter("ignore")
    if args.step == "memory":
        print(json.dumps(run_memory(folder, args.chunks)))
        return
    if args.step == "cluster":
        print(json.dumps(run_cluster(folder, args.chunks, args.workers, args.shards)))
        return
    n_chunks = max(1, args.rows // (CHUNK_SCHOOLS * PER_SCHOOL * PER_CLASS))
    t0 = time.perf_counter()
    simulate(folder, n_chunks)
    print(f"data: {n_chunks} chunk(s) of 1,000,000 rows under {folder} "
          f"({time.perf_counter() - t0:.0f} s)")
    runs = [("memory", 1, None)] + [("cluster", 1, w) for w in (1, 2)]
    if n_chunks > 1:
        runs += [("cluster", n_chunks, w) for w in (1, 2)]
    print(f"{'rows':>10s} {'workers':>7s} {'-2 log L':>16s} {'evals':>5s} {'fit s':>7s} "
          f"{'ms/eval':>8s} {'client MB':>9s}  worker MB")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    for step, chunks, workers in runs:
        cmd = [sys.executable, __file__, "--dir", str(folder), "--step", step,
               "--chunks", str(chunks), "--shards", str(args.shards)]
        if workers:
            cmd += ["--workers", str(workers)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{step} {chunks} chunk(s): failed: {proc.stderr.strip()[-300:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['rows']:10d} {r['workers'] or 'in-mem':>7} {r['deviance']:16.4f} "
              f"{r['evaluations']:5d} {r['fit_s']:7.1f} {r['eval_ms']:8.1f} "
              f"{r['client_mb']:9.0f}  {r['worker_mb']}"
              + ("" if r["converged"] else "  NOT converged"))


if __name__ == "__main__":
    main()
