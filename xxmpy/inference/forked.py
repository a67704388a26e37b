"""Independent tasks run in forked worker processes (POSIX), results streamed back.

A process pool (concurrent.futures) costs tens of milliseconds to start and
stop, more than a whole set of profile CIs of a small model takes. Here each
worker is a plain fork of this process, so it shares everything already
computed (the compiled problem, the fit) without pickling it; this process
hands out task indices one at a time through a pipe (the next to whichever
worker answers first) and reads each result back, pickled, through another,
and computes tasks itself while no answer is waiting. A fork still costs
several milliseconds (page tables, copy-on-write), which is why profile.py
runs short jobs in-process.

Results are returned in task order, so they do not depend on the number of
workers or on which worker ran what. Workers die with this process: on Linux
the kernel sends them SIGKILL when it ends (PR_SET_PDEATHSIG), however it ends
(SIGTERM, SIGKILL, a crash); and when the map ends with an exception (Ctrl-C
included), they are killed rather than waited for.
"""
import ctypes
import ctypes.util
import os
import pickle
import select
import signal
import struct
import sys
import traceback

_HEADER = struct.Struct("<q")       # a message: its length (or a task index), then bytes


def available():
    """Whether this platform can fork workers."""
    return hasattr(os, "fork")


def forked_map(fn, tasks, n_jobs, on_result=None):
    """[fn(task) for task in tasks], computed by this process and ``n_jobs - 1``
    forked workers.

    fn and tasks reach the workers through the fork (nothing is pickled on the
    way in); each result must pickle. Tasks are handed out one at a time: to a
    worker as soon as it answers, and to this process whenever no answer is
    waiting. on_result() is called as each result arrives (a progress bar). An
    exception in a worker's fn is raised here as RuntimeError with its traceback.
    """
    tasks = list(tasks)
    results, workers, next_task = [None] * len(tasks), [], 0
    try:
        for _ in range(min(n_jobs, len(tasks)) - 1):
            workers.append(_Worker(fn, tasks))
        busy = {}
        for w in workers:
            w.send(next_task)
            busy[w.results] = w
            next_task += 1
        while busy or next_task < len(tasks):
            wait = None if next_task == len(tasks) else 0.0
            ready, _, _ = select.select(list(busy), [], [], wait) if busy else ([], [], [])
            for fd in ready:
                w = busy[fd]
                index, ok, value = w.receive(tasks)
                if not ok:
                    raise RuntimeError(f"a worker failed on task {tasks[index]!r}:\n{value}")
                results[index] = value
                if on_result is not None:
                    on_result()
                if next_task < len(tasks):
                    w.send(next_task)
                    next_task += 1
                else:
                    del busy[fd]
            if not ready and next_task < len(tasks):      # nobody waiting: work here
                results[next_task] = fn(tasks[next_task])
                next_task += 1
                if on_result is not None:
                    on_result()
    except BaseException:
        for w in workers:
            w.kill()
        raise
    for w in workers:
        w.stop()
    return results


class _Worker:
    """One forked child: reads task indices, writes (index, ok, result) messages."""

    def __init__(self, fn, tasks):
        task_r, self.tasks = os.pipe()
        self.results, result_w = os.pipe()
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:                                 # the child
            _die_with(parent)
            os.close(self.tasks)
            os.close(self.results)
            _serve(fn, tasks, task_r, result_w)           # never returns
        os.close(task_r)
        os.close(result_w)

    def send(self, index):
        os.write(self.tasks, _HEADER.pack(index))

    def receive(self, tasks):
        try:
            size = _HEADER.unpack(_read(self.results, _HEADER.size))[0]
            return pickle.loads(_read(self.results, size))
        except EOFError:
            raise RuntimeError(f"worker process {self.pid} ended without answering "
                               f"(killed or crashed) while running one of {tasks!r}") from None

    def stop(self):
        """Tell the worker to end after its last task, and reap it."""
        try:
            self.send(-1)
        except OSError:
            pass
        self._close_and_reap()

    def kill(self):
        """End the worker now (the map is failing or interrupted) and reap it."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        self._close_and_reap()

    def _close_and_reap(self):
        for fd in (self.tasks, self.results):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _die_with(parent):
    """In a worker: have the kernel kill it when the parent ends (Linux), and end now
    if the parent is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)            # PR_SET_PDEATHSIG = 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)          # Ctrl-C is the parent's to act on
    if os.getppid() != parent:
        os._exit(1)


def _serve(fn, tasks, task_r, result_w):
    code = 0
    try:
        while True:
            index = _HEADER.unpack(_read(task_r, _HEADER.size))[0]
            if index < 0:
                break
            try:
                message = (index, True, fn(tasks[index]))
            except BaseException as exc:          # reported in the parent, with its trace
                message = (index, False, "".join(traceback.format_exception(exc)))
            data = pickle.dumps(message)
            os.write(result_w, _HEADER.pack(len(data)))
            _write(result_w, data)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _read(fd, n):
    """Exactly n bytes from fd; EOFError if the other end closed first."""
    chunks, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError("a worker process ended without answering")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
