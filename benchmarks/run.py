"""Benchmark runner: xxmpy and its peers on the cases of cases.py, in one run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/run.py [--cases A,B] [--repeat N]
        [--tools xxmpy,xxmpy-lmer,mixedlm,statsmodels,lme4] [--reml] [--threads N]

Each (case, tool) runs in a fresh subprocess, so peak memory (maximum
resident set size, minus the size once the data are loaded) belongs to that
fit alone. For xxmpy it reports the objective time, the objective+gradient
time (medians at the start values), the full fit time (compile included,
median of --repeat fits) and -2 log L; for the peers (mixedlm, statsmodels
MixedLM, lme4 through Rscript: fits of the lme4 formula, where installed) the fit
time and -2 log L (with --reml the REML criterion). --reml fits the lme4-formula
tools by REML (the xxM-API tool is ML only and is skipped). lme4's time is
measured inside R (mean over a batch of fits of at least 2 s after a warm-up fit;
R's start-up and reading the data are not counted). Ratios are against the first
tool of --tools that ran. Not a test: it prints a report.

Threads: every tool's worker runs with N threads (default 1) in its OpenBLAS, OpenMP
and Rayon pools (mixedlm's Rust core uses Rayon; R inherits the same variables): the
figures the issues' targets name are single-threaded; --threads 2 gives the
multi-threaded ones beside them.
"""
import argparse
import gc
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
PEER_TIMEOUT = 300          # seconds per peer fit before it counts as "timeout"


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _median_time(fn, reps, budget=3.0):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if sum(times) > budget:
            break
    return float(np.median(times))


def _evaluation_times(case):
    """(objective, objective + gradient) seconds at the start values, medians."""
    from xxmpy.engine import deviance, deviance_and_gradient
    problem = case.build().compile()
    theta = problem.params.start
    deviance_and_gradient(problem, theta)          # lowering and collapse happen once
    _median_time(lambda: deviance(problem, theta), 5)      # warm caches
    return (_median_time(lambda: deviance(problem, theta), 50),
            _median_time(lambda: deviance_and_gradient(problem, theta), 50))


def run_xxmpy(case, repeat, reml=False):
    if reml:
        raise NotImplementedError("the xxM API fits ML (REML: xm.lmer)")
    base = _rss_mb()
    f_time, fg_time = _evaluation_times(case)
    gc.collect()                # the fit's peak memory is its own, not two problems'
    fits = []
    for _ in range(repeat):
        model = case.build()
        t = time.perf_counter()
        result = model.fit()
        fits.append(time.perf_counter() - t)
    return dict(objective_ms=f_time * 1e3, gradient_ms=fg_time * 1e3,
                fit_s=float(np.median(fits)), deviance=result.deviance,
                evaluations=result.record.n_evaluations, status=result.record.status,
                peak_mb=_rss_mb() - base)


def run_xxmpy_lmer(case, repeat, reml=False):
    """The lmer front end on the peers' formula: design, xxM model, fit, GLS and modes."""
    import xxmpy as xm
    df = case.frame()
    base = _rss_mb()
    xm.lmer(case.formula, df, REML=reml)               # warm (imports, first compile)
    gc.collect()        # the warm fit's problem is freed before the timed fit, not by chance
    fit_s, fit = _timed_fits(lambda: xm.lmer(case.formula, df, REML=reml), repeat)
    return dict(fit_s=fit_s, deviance=fit.reml_criterion if reml else fit.deviance,
                peak_mb=_rss_mb() - base)


def _timed_fits(fit, repeat):
    """(median seconds of ``repeat`` calls of fit(), the last result)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), result


def run_mixedlm(case, repeat, reml=False):
    import mixedlm
    df = case.frame()
    base = _rss_mb()
    mixedlm.lmer(case.formula, df, REML=reml)          # warm
    gc.collect()
    fit_s, fit = _timed_fits(lambda: mixedlm.lmer(case.formula, df, REML=reml), repeat)
    dev = fit.deviance() if callable(fit.deviance) else fit.deviance
    return dict(fit_s=fit_s, deviance=float(dev), peak_mb=_rss_mb() - base)


def run_statsmodels(case, repeat, reml=False):
    df = case.frame()
    if case.statsmodels is None:
        raise NotImplementedError(case.note or "no statsmodels form")
    base = _rss_mb()
    fit_s, fit = _timed_fits(lambda: case.statsmodels(df).fit(reml=reml), repeat)
    return dict(fit_s=fit_s, deviance=float(-2 * fit.llf), peak_mb=_rss_mb() - base)


LME4 = """
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
f <- as.formula(args[2])
reml <- args[3] == "TRUE"
fit <- lmer(f, d, REML = reml)
n <- 0; t0 <- proc.time()[["elapsed"]]
repeat {
  fit <- lmer(f, d, REML = reml); n <- n + 1
  if (proc.time()[["elapsed"]] - t0 >= 2 || n >= 200) break
}
cat(sprintf("%.6f %.10f %d\n", (proc.time()[["elapsed"]] - t0) / n,
            if (reml) REMLcrit(fit) else deviance(fit), n))
"""


def run_lme4(case, repeat, reml=False):
    """lme4's lmer in R (Rscript), timed inside R (module docstring)."""
    import shutil
    import tempfile
    if shutil.which("Rscript") is None:
        raise ImportError("Rscript")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        case.frame().to_csv(path, index=False)
        script = Path(tmp) / "fit.R"
        script.write_text(LME4)
        proc = subprocess.run(["Rscript", str(script), str(path), case.formula,
                               "TRUE" if reml else "FALSE"], capture_output=True, text=True,
                              timeout=case.timeout or PEER_TIMEOUT * 3)
    if proc.returncode != 0:
        raise NotImplementedError("lme4: " + proc.stderr.strip().splitlines()[-1][:50])
    seconds, dev, n = proc.stdout.split()
    return dict(fit_s=float(seconds), deviance=float(dev), peak_mb=float("nan"),
                note=f"{n} fits in R")


TOOLS = {"xxmpy": run_xxmpy, "xxmpy-lmer": run_xxmpy_lmer, "mixedlm": run_mixedlm,
         "statsmodels": run_statsmodels, "lme4": run_lme4}


def worker(case_name, tool, repeat, reml=False):
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(HERE))
    import cases
    case = next(c for c in cases.CASES if c.name == case_name)
    if tool not in ("xxmpy",) and case.formula is None:
        out = dict(skipped="no lme4 form: " + case.note if case.note else "no lme4 form")
    else:
        try:
            out = TOOLS[tool](case, repeat, reml)
        except ImportError:
            out = dict(skipped="not installed")
        except NotImplementedError as exc:
            out = dict(skipped=str(exc))
    if case_name == "slope_1M" and tool == "xxmpy":
        out["csv_read_s"] = _csv_read_time(case)
    print(json.dumps(out))


def _csv_read_time(case):
    import pandas as pd
    path = Path("/tmp") / "xxmpy_bench_slope_1M.csv"
    if not path.exists():
        case.frame().to_csv(path, index=False)
    return _median_time(lambda: pd.read_csv(path), 3, budget=10.0)


def spawn(case_name, tool, repeat, reml=False, timeout=0, threads=1):
    n = str(threads)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n, RAYON_NUM_THREADS=n)
    limit = timeout or PEER_TIMEOUT * (repeat + 1)
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", case_name, tool,
                               "--repeat", str(repeat)] + (["--reml"] if reml else []),
                              capture_output=True, text=True, env=env, timeout=limit)
    except subprocess.TimeoutExpired:
        return dict(skipped=f"timeout ({limit} s)")
    if proc.returncode != 0:
        return dict(skipped="error: " + proc.stderr.strip().splitlines()[-1][:60])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(v, spec):
    width = int(spec.split(".")[0])
    return format(v, spec) if isinstance(v, (int, float)) else format(str(v), f">{width}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="")
    ap.add_argument("--tools", default="xxmpy,xxmpy-lmer,mixedlm,statsmodels")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", nargs=2)
    ap.add_argument("--reml", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, args.repeat, args.reml)
        return
    sys.path.insert(0, str(HERE))
    import cases
    wanted = [c for c in cases.CASES
              if (c.name in args.cases.split(",") if args.cases else not c.on_request)]
    tools = args.tools.split(",")
    print(f"{'case':17s} {'tool':12s} {'obj ms':>8s} {'obj+grad':>9s} {'fit s':>8s} "
          f"{'fit/xxmpy':>9s} {'mem MB':>7s} {'-2 log L':>16s}  note")
    for case in wanted:
        ours = None
        for tool in tools:
            r = spawn(case.name, tool, 1 if case.big else args.repeat, args.reml,
                      case.timeout, args.threads)
            if "skipped" in r:
                print(f"{case.name:17s} {tool:12s} {'':>8s} {'':>9s} {'':>8s} {'':>9s} "
                      f"{'':>7s} {'':>16s}  {r['skipped']}")
                continue
            if ours is None:                  # ratios against the first tool that ran
                ours = r["fit_s"]
            ratio = r["fit_s"] / ours if ours else float("nan")
            note = r.get("note", "")
            if tool == "xxmpy":
                note = (f"grad/obj {r['gradient_ms'] / r['objective_ms']:.1f}, "
                        f"{r['evaluations']} evals, {r['status']}")
                if "csv_read_s" in r:
                    note += f", read_csv {r['csv_read_s']:.2f} s"
            print(f"{case.name:17s} {tool:12s} {_fmt(r.get('objective_ms', ''), '8.2f')} "
                  f"{_fmt(r.get('gradient_ms', ''), '9.2f')} {r['fit_s']:8.3f} {ratio:9.2f} "
                  f"{r['peak_mb']:7.0f} {r['deviance']:16.4f}  {note}", flush=True)


if __name__ == "__main__":
    main()
