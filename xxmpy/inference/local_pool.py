"""Independent tasks on the standard library's process pool, the default for parallel
profile CIs (it replaced the home-made fork pool, issue #22).

local_map(fn, shared, tasks, n_jobs) is [fn(shared, task) for task in tasks] on a
concurrent.futures.ProcessPoolExecutor of n_jobs workers started by fork (POSIX):
``shared`` (the profile context with the compiled problem) is put in this module
before the workers start, so each inherits it through the fork and nothing large is
pickled on the way in; each task sends only its own small arguments, and each
result comes back pickled. Results are returned in task order, so they do not
depend on the number of workers or on which worker ran what.

The guarantees of the former pool hold: workers die with this process (on Linux the
kernel sends them SIGKILL when it ends, however it ends: PR_SET_PDEATHSIG, set by
the pool's initializer); they ignore Ctrl-C, which is this process's to act on; when
the map ends with an exception (Ctrl-C included) the workers are killed rather than
waited for; an exception in a task is raised here as RuntimeError with the worker's
traceback, and a worker that dies (killed, crashed) is reported, not waited for.
Where fork is not available, tasks run in this process.
"""
import ctypes
import ctypes.util
import itertools
import multiprocessing
import os
import signal
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

_SHARED = {}            # token -> the shared object, inherited by the forked workers
_TOKENS = itertools.count()


def available():
    """Whether this platform can fork workers."""
    return "fork" in multiprocessing.get_all_start_methods()


def _die_with(parent):
    """A worker's initializer: have the kernel kill it when the parent ends (Linux), end
    now if the parent is already gone, leave Ctrl-C to the parent."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)            # PR_SET_PDEATHSIG = 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() != parent:
        os._exit(1)


def _run(fn, token, task):
    """A worker's task: (True, fn(shared, task)) or (False, the formatted traceback)."""
    try:
        return True, fn(_SHARED[token], task)
    except BaseException as exc:              # reported in the parent, with its trace
        return False, "".join(traceback.format_exception(exc))


def local_map(fn, shared, tasks, n_jobs, on_result=None):
    """[fn(shared, task) for task in tasks] on n_jobs forked pool workers (module
    docstring); fn must be a module-level function; on_result() is called as each
    result is read, in task order."""
    tasks = list(tasks)
    if n_jobs <= 1 or not available():
        out = []
        for task in tasks:
            out.append(fn(shared, task))
            if on_result is not None:
                on_result()
        return out
    token = next(_TOKENS)
    _SHARED[token] = shared
    pool = ProcessPoolExecutor(min(n_jobs, len(tasks)),
                               mp_context=multiprocessing.get_context("fork"),
                               initializer=_die_with, initargs=(os.getpid(),))
    try:
        futures = [pool.submit(_run, fn, token, task) for task in tasks]
        results = []
        for task, future in zip(tasks, futures):
            try:
                ok, value = future.result()
            except BrokenProcessPool:
                raise RuntimeError(f"a worker process ended without answering (killed or "
                                   f"crashed) while running one of {tasks!r}") from None
            if not ok:
                raise RuntimeError(f"a worker failed on task {task!r}:\n{value}")
            results.append(value)
            if on_result is not None:
                on_result()
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        del _SHARED[token]
    pool.shutdown(wait=True)
    return results
