"""One threading runtime for the operator's CPU work: channel groups on threads of its own, one core each.

The solve is a loop over channel groups (:mod:`.execution`), and a group is a complete sub-problem. On CPU,
:func:`for_each` hands the groups out one at a time to ``torch.get_num_threads()`` threads of a pool of its
own (started on first use, kept idle between calls, forgotten in a forked child); each runs its group start
to finish (padding, FFTs, products, the copy into the output) on one core, with torch's intra-op
parallelism switched off *in that thread* and pocketfft on one worker. The threads meet once, at the end of
the call.

Why: split inside every op (torch's OpenMP pool for the products, a second pool for the FFTs), each of the
hundred-odd small parallel ops of a call ends at a barrier that waits for every thread of the pool. On an
idle machine that costs little; when another process holds a core, one of the pool's threads is
descheduled at most barriers and each op waits a scheduler time slice for it (measured: 14 ms per op, the
2-thread call 5–7× slower than the 1-thread call, see ``docs/performance-under-load.md``). Handed out one at
a time, the groups go to whichever thread has a core: a thread that is descheduled delays one group, not
every op, and two threads are not slower than one.

torch has no per-thread setting for its intra-op threads (``torch.set_num_threads`` changes the whole
process), so a thread of ours calls ``omp_set_num_threads(1)`` of torch's OpenMP runtime, which is per
thread in OpenMP, and checks that ``torch.get_num_threads()`` then reads 1 there. Where that is not possible
(no OpenMP runtime in reach, another threading back end) or the caller's thread carries state that a new
thread would not see (a dispatch or function mode such as ``FlopCounterMode``, the profiler), the groups run
in the calling thread, as with one thread. Nothing here changes the calling thread or the process.
"""
import ctypes
import itertools
import os
import queue
import threading

import torch


def _omp_set_num_threads():
    """``omp_set_num_threads`` of the OpenMP runtime in the process's global namespace, or None."""
    try:
        function = ctypes.CDLL(None).omp_set_num_threads
    except (AttributeError, OSError, TypeError):  # no such symbol; no dlopen(NULL) (Windows)
        return None
    function.argtypes, function.restype = [ctypes.c_int], None
    return function


_set_num_threads = _omp_set_num_threads()


def single_threaded():
    """Switch torch's intra-op parallelism off in the calling thread (a thread of ours); True if it took."""
    if _set_num_threads is None:
        return False
    torch.get_num_threads()  # torch's once-per-thread setup first, so that it does not undo what follows
    _set_num_threads(1)
    return torch.get_num_threads() == 1


_capable = None


def capable():
    """Whether a new thread can be made single-threaded (probed once per process, in a thread of its own)."""
    global _capable
    if _capable is None:
        result = []
        probe = threading.Thread(target=lambda: result.append(single_threaded()), name='converse-probe')
        probe.start()
        probe.join()
        _capable = bool(result and result[0])
    return _capable


# torch's checks of per-thread state that a new thread would not see (private, so looked up defensively)
_STATE_CHECKS = tuple(
    getattr(module, name, None)
    for module, name in ((torch.autograd, '_profiler_enabled'), (torch._C, '_len_torch_dispatch_stack'),
                         (torch._C, '_len_torch_function_stack')))


def plain_caller():
    """Whether the calling thread's state carries over to new threads: no profiler, no dispatch or function
    mode (their ops would go unseen), no autocast (its state is per thread). False where torch offers no way
    to tell."""
    if any(check is None for check in _STATE_CHECKS):
        return False
    return not (any(check() for check in _STATE_CHECKS) or torch.is_autocast_enabled('cpu'))


def threads_for(device, count):
    """How many threads :func:`for_each` uses for ``count`` groups on ``device`` (1: the calling thread)."""
    if device.type != 'cpu' or count < 2 or getattr(_local, 'worker', False):  # never nested in a thread of ours
        return 1
    threads = min(torch.get_num_threads(), count)
    return threads if threads > 1 and plain_caller() and capable() else 1


_local = threading.local()
WAIT_SLICE = 0.05  # seconds: the longest a Ctrl-C waits while the caller waits for the threads


class _Pool:
    """Threads of ours, started on first use and kept (blocked on a queue when idle): each is made
    single-threaded once, when it starts, and then runs the jobs' tasks."""

    def __init__(self):
        self.tasks, self.threads, self.lock = queue.SimpleQueue(), [], threading.Lock()

    def submit(self, task, copies):
        """``task(single)`` on ``copies`` threads (``single``: whether that thread is single-threaded)."""
        with self.lock:
            while len(self.threads) < copies:
                thread = threading.Thread(target=self._serve, name=f'converse-{len(self.threads)}', daemon=True)
                thread.start()
                self.threads.append(thread)
        for _ in range(copies):
            self.tasks.put(task)

    def _serve(self):
        _local.worker = True
        single = single_threaded()
        while True:
            self.tasks.get()(single)


_pool = _Pool()


def _forget_pool():
    """In a forked child (a DataLoader worker) the pool's threads do not exist: start afresh when needed."""
    global _pool
    _pool = _Pool()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_pool)


class _Job:
    """One :func:`for_each` call: the indices still to hand out, the first error, the threads still running."""

    def __init__(self, work, count, threads):
        self.work, self.count, self.threads = work, count, threads
        self.indices, self.errors, self.finished = itertools.count(), [], threading.Semaphore(0)
        self.grad, self.inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run(self, single):
        try:
            if not single:
                raise RuntimeError('could not switch torch to one thread in a worker thread')
            with torch.inference_mode(self.inference), torch.set_grad_enabled(self.grad):
                for i in self.indices:  # next() on a count is atomic under the GIL
                    if i >= self.count or self.errors:
                        break
                    self.work(i)
        except BaseException as error:  # noqa: B902 - handed to the caller's thread
            self.errors.append(error)
        finally:
            self.finished.release()

    def wait(self):
        try:
            for _ in range(self.threads):
                # timed waits: a Ctrl-C landing just before a blocking wait would not wake it, and would be
                # handled only after the last group; Python runs the handler when the wait times out
                while not self.finished.acquire(timeout=WAIT_SLICE):
                    pass
        except BaseException:  # KeyboardInterrupt: the threads hand out no further index
            self.errors.append(None)
            raise
        if self.errors:
            raise self.errors[0]


def for_each(work, count, device):
    """``work(i)`` for ``i = 0 … count − 1``, each exactly once; on CPU on :func:`threads_for` threads.

    The threads take the next index in turn; each runs with the caller's grad and inference mode. The first
    exception raised by ``work`` is raised here once all threads have stopped (no index is handed out after it).
    """
    threads = threads_for(device, count)
    if threads == 1:
        for i in range(count):
            work(i)
        return
    job = _Job(work, count, threads)
    _pool.submit(job.run, threads)
    job.wait()
