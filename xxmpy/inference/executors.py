"""Independent tasks on a user's executor: a concurrent.futures.Executor or a
dask.distributed.Client (the seam of issue #22; local_pool.py is the default).

executor_map(executor, fn, shared, tasks) is [fn(shared, task) for task in tasks],
each call a task of the executor, the results in task order (so they do not depend
on the number of workers or on which worker ran what). ``shared`` (the profile
context with the compiled problem: large) travels once per worker where the
executor allows it: a dask Client scatters it to every worker (broadcast) and the
tasks refer to it; a concurrent.futures executor gets it pickled once, as bytes
sent with each task, which each worker process unpickles once (kept by digest).
fn must be a module-level function (it is pickled by reference). An interrupt
(Ctrl-C) or an error cancels the tasks not yet run and is raised here; the
executor itself belongs to the caller, who shuts it down.
"""
import hashlib
import pickle

_SHARED = {}            # in a worker process: digest -> the unpickled shared object
_KEEP = 4               # shared objects kept per process (a few CI runs at a time)


def is_dask_client(executor):
    """Whether ``executor`` is a dask.distributed.Client (without importing dask)."""
    return type(executor).__module__.startswith("distributed") and \
        hasattr(executor, "scatter")


def workers(executor):
    """The executor's number of workers, when it tells (else None)."""
    if is_dask_client(executor):
        return len(executor.nthreads()) or None          # asked of the scheduler now
    return getattr(executor, "_max_workers", None)


def _run_pickled(fn, digest, blob, task):
    """A concurrent.futures task: fn(shared, task), shared unpickled once per process."""
    if digest not in _SHARED:
        while len(_SHARED) >= _KEEP:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[digest] = pickle.loads(blob)
    return fn(_SHARED[digest], task)


def executor_map(executor, fn, shared, tasks, on_result=None):
    """[fn(shared, task) for task in tasks] on ``executor`` (module docstring);
    on_result() is called as each result is read, in task order."""
    if not hasattr(executor, "submit"):
        raise TypeError(f"executor= must be a concurrent.futures.Executor or a "
                        f"dask.distributed.Client, got {type(executor).__name__}.")
    tasks = list(tasks)
    if is_dask_client(executor):
        handle = executor.scatter(shared, broadcast=True)
        futures = [executor.submit(fn, handle, task, pure=False) for task in tasks]
    else:
        blob = pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(blob).hexdigest()
        futures = [executor.submit(_run_pickled, fn, digest, blob, task) for task in tasks]
    results = []
    try:
        for future in futures:
            results.append(future.result())
            if on_result is not None:
                on_result()
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return results
