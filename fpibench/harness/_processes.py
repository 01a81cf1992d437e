"""Run jobs in fresh spawned processes, at most ``workers`` at a time, one job per process.

Each job has a process of its own, so a process that dies (killed, out of memory,
``os._exit`` in native code) takes only its own job with it: the jobs running beside it go on
and finish normally (a shared process pool would fail them all as broken).  A job whose
process died is started again, up to ``attempts`` times in all (a kill from outside may not
recur; a training cell resumes from its checkpoint); after that it is reported as failed with
the process's exit code.  A job that raises is reported with its traceback and not retried.
"""
from __future__ import annotations

import multiprocessing
import signal
import traceback
from collections import deque
from multiprocessing.connection import wait
from typing import Any, Callable, Hashable, Iterable, Tuple

ATTEMPTS = 2


def _child(conn, function, args) -> None:
    try:
        message = ("ok", function(*args))
    except BaseException:  # noqa: BLE001 - everything goes back to the parent as text
        message = ("error", traceback.format_exc())
    conn.send(message)
    conn.close()


def exit_reason(code) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def run_isolated(jobs: Iterable[Tuple[Hashable, tuple]], function: Callable, workers: int,
                 done: Callable[..., Any], attempts: int = ATTEMPTS) -> None:
    """Call ``function(*args)`` for every ``(key, args)`` in its own process; report each job once
    through ``done(key, result=...)`` or ``done(key, error=text)``."""
    ctx = multiprocessing.get_context("spawn")
    queue = deque((key, args, 1) for key, args in jobs)
    running = {}  # receiving end of the job's pipe -> (key, args, attempt, process)
    try:
        while queue or running:
            while queue and len(running) < max(1, workers):
                key, args, attempt = queue.popleft()
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_child, args=(send, function, args), name=f"fpibench-{key}")
                process.start()
                send.close()  # the child holds the only sending end: its exit makes ours readable
                running[receive] = (key, args, attempt, process)
            for receive in wait(list(running)):
                key, args, attempt, process = running.pop(receive)
                try:
                    status, value = receive.recv()
                except (EOFError, OSError):
                    status, value = "died", None
                receive.close()
                process.join()
                if status == "ok":
                    done(key, result=value)
                elif status == "error":
                    done(key, error=value)
                elif attempt < attempts:
                    queue.appendleft((key, args, attempt + 1))
                else:
                    done(key, error=f"the worker process running this cell died ({exit_reason(process.exitcode)}) "
                                    f"in each of {attempts} attempts; the cells beside it were not affected\n")
    finally:
        for _, _, _, process in running.values():
            process.terminate()
            process.join()
