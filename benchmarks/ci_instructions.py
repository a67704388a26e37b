"""Instructions per profile-CI run, counted by valgrind (deterministic, unlike time).

Run by hand: python benchmarks/ci_instructions.py [case ...]
Needs valgrind (apt-get install valgrind). Wall-clock times on this VM vary by
up to 2x from run to run; the number of instructions executed does not, so
this is the measure to compare two versions of the code by. Each case runs in
its own process under callgrind with counting switched on only around two
profile_ci runs (after a warm-up run), and the report is millions of
instructions (Mi) per run. At this machine's ~3.5 instructions per ns on this
code, 100 Mi is about 29 ms.

Under valgrind OpenBLAS may pick other kernels than it does natively, and the
simulated 20-parameter model's fit then ends elsewhere (seen: -2 log L 66371.9
instead of 61156.3); each case's -2 log L is therefore compared with a native
fit, and a case that differs is reported as such instead of counted.
"""
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RUNS = 2


def _cases():
    import cases
    import reference_models as ref
    return {"Dyestuff": ref.one_way, "Pastes": ref.pastes, "sleepstudy": ref.sleepstudy,
            "brim": ref.brim, "three_level_20par": lambda: cases.three_level(n_top=20)}


def inner(name):
    """Under valgrind: fit, warm up, then count RUNS profile_ci runs."""
    warnings.simplefilter("ignore")
    model = _cases()[name]()
    model.compile()
    result = model.fit()
    ci = result.profile_ci(n_jobs=1, progress=False)
    print(f"deviance {result.deviance!r}")
    toggle = ["callgrind_control", "-i"]
    subprocess.run(toggle + ["on", str(os.getpid())], capture_output=True, check=True)
    for _ in range(RUNS):
        result.profile_ci(n_jobs=1, progress=False)
    subprocess.run(toggle + ["off", str(os.getpid())], capture_output=True, check=True)
    print(f"evaluations {ci.n_evaluations}")


def count(name):
    """(million instructions per profile_ci run, evaluations) of one case."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={tmp}/callgrind.out", sys.executable, __file__,
             "--inner", name],
            capture_output=True, text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    collected = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    evaluations = re.search(r"evaluations (\d+)", out.stdout)
    deviance = re.search(r"deviance (\S+)", out.stdout)
    if collected is None or evaluations is None or deviance is None:
        raise RuntimeError(f"valgrind run of {name} failed:\n{out.stderr[-2000:]}")
    return (int(collected.group(1)) / RUNS / 1e6, int(evaluations.group(1)),
            float(deviance.group(1)))


def native_deviance(name):
    warnings.simplefilter("ignore")
    return _cases()[name]().fit().deviance


def main(only=()):
    print(f"{'case':22s} {'Mi per CI':>10s} {'evals':>6s} {'ki per eval':>12s}")
    for name in _cases():
        if only and name not in only:
            continue
        mi, evals, deviance = count(name)
        native = native_deviance(name)
        if abs(deviance - native) > 1e-6 * abs(native):
            print(f"{name:22s} not counted: under valgrind -2 log L {deviance:.4f}, "
                  f"natively {native:.4f}")
            continue
        print(f"{name:22s} {mi:10.1f} {evals:6d} {1e3 * mi / evals:12.0f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inner"]:
        inner(sys.argv[2])
    else:
        main(sys.argv[1:])
