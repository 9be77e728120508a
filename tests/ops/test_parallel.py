"""The CPU threading design of the operator (no timing): channel groups on threads of their own, each running
torch and pocketfft on one thread; with the same groups the results independent of the thread count, with a
group per thread (small maps) equal within float32 rounding; state-carrying callers kept in their own thread."""
import math
import signal
import sys
import threading
import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import converse_basicsr.ops.execution as execution
from converse_basicsr.ops import converse2d, parallel


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_groups(monkeypatch):
    """Three groups of two channels (of the 6-channel maps below), as large maps run."""
    monkeypatch.setattr(execution, 'channel_groups',
                        lambda device, last, per_channel, channels: [slice(c, c + 2) for c in range(0, channels, 2)])


class FFTSpy:
    """Stands in for ``scipy.fft`` in :mod:`.execution`: records, per call, the calling thread, torch's intra-op
    thread count in that thread and the keyword arguments."""

    def __init__(self, real):
        self.real, self.calls, self.lock = real, [], threading.Lock()

    def _record(self, name, args, kwargs):
        with self.lock:
            self.calls.append((name, threading.current_thread().name, torch.get_num_threads(), sorted(kwargs)))
        return getattr(self.real, name)(*args, **kwargs)

    def rfft2(self, *args, **kwargs):
        return self._record('rfft2', args, kwargs)

    def irfft2(self, *args, **kwargs):
        return self._record('irfft2', args, kwargs)


@pytest.fixture
def fft_spy(monkeypatch):
    spy = FFTSpy(execution._scipy_fft)
    monkeypatch.setattr(execution, '_scipy_fft', spy)

    def refuse(*args, **kwargs):
        raise AssertionError('torch.fft called on CPU')

    for name in ('rfft2', 'irfft2'):
        monkeypatch.setattr(torch.fft, name, refuse)
    return spy


def case(layout, scale, requires_grad=False):
    g = torch.Generator().manual_seed(scale)
    x = torch.rand(2, 6, 20, 18, generator=g)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.softmax(torch.randn(1, 6, 25, generator=g), -1).view(1, 6, 5, 5)
    bias = torch.randn(1, 6, 1, 1, generator=g)
    return [t.requires_grad_(requires_grad) for t in (x, weight, bias)]


def forward_backward(layout, scale):
    """Output and the three gradients of one call with autograd."""
    leaves = case(layout, scale, requires_grad=True)
    out = converse2d(*leaves, scale, 3, 'reflect')
    out.backward(torch.linspace(-1, 1, out.numel()).view(out.shape))
    return [out.detach()] + [t.grad for t in leaves]


@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
@pytest.mark.parametrize('grad', [False, True])
def test_groups_run_on_threads_of_their_own_each_single_threaded(monkeypatch, two_threads, small_groups, fft_spy,
                                                                 layout, grad):
    """With 2 threads, every FFT of the forward and the backward runs on a thread of the operator's pool (not
    the caller's), with torch single-threaded there and pocketfft on its default one worker; never torch.fft."""
    if grad:
        forward_backward(layout, 1)
    else:
        with torch.no_grad():
            converse2d(*case(layout, 1), 1, 3, 'reflect')
    assert len(fft_spy.calls) == (12 if grad else 6)  # 3 groups × (rfft2, irfft2), twice with the backward
    for name, thread, torch_threads, kwargs in fft_spy.calls:
        assert thread.startswith('converse-') and torch_threads == 1
        assert 'workers' not in kwargs


@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
@pytest.mark.parametrize('scale', [1, 2])
def test_outputs_and_gradients_do_not_depend_on_the_thread_count(small_groups, layout, scale):
    """With the same channel groups (fixed here), every group runs the same ops on one thread whether that thread
    is the caller's (1 thread) or one of the pool's (2 threads): no bit changes."""
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(forward_backward(layout, scale))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results):
        assert torch.equal(one, two)


@pytest.mark.parametrize('mode', ['flop counter', 'profiler'])
def test_callers_with_thread_state_keep_the_work_in_their_thread(two_threads, small_groups, fft_spy, mode):
    """A dispatch mode (FlopCounterMode) or the profiler sees only its own thread: the groups run there."""
    context = FlopCounterMode(display=False) if mode == 'flop counter' else torch.profiler.profile()
    with context, torch.no_grad():
        converse2d(*case('channels_last', 1), 1, 3, 'reflect')
    assert len(fft_spy.calls) == 6
    assert {thread for _, thread, _, _ in fft_spy.calls} == {threading.current_thread().name}
    if mode == 'flop counter':  # the kernel's spectra are matrix products: counted
        assert context.get_total_flops() > 0


def test_inference_mode_carries_over_to_the_threads(two_threads, small_groups):
    """Under inference mode the outputs are inference tensors, written by the threads (which would fail
    outside inference mode) and equal to those of a plain call."""
    x, weight, bias = case('contiguous', 2)
    with torch.no_grad():
        expected = converse2d(x, weight, bias, 2, 3, 'reflect')
    with torch.inference_mode():
        out = converse2d(x, weight, bias, 2, 3, 'reflect')
    assert out.is_inference() and torch.equal(out, expected)


def test_every_index_runs_once_and_the_first_error_reaches_the_caller(two_threads):
    seen, lock = [], threading.Lock()

    def work(i):
        with lock:
            seen.append((i, threading.get_ident()))

    parallel.for_each(work, 9, torch.device('cpu'))
    assert sorted(i for i, _ in seen) == list(range(9))
    assert threading.get_ident() not in {thread for _, thread in seen}

    def failing(i):
        if i == 3:
            raise ValueError('group 3')

    with pytest.raises(ValueError, match='group 3'):
        parallel.for_each(failing, 9, torch.device('cpu'))


def _in(ident, function):
    """Whether the thread ``ident`` is inside ``function`` of :mod:`.parallel` (from its current stack)."""
    frame = sys._current_frames().get(ident)
    while frame is not None:
        if frame.f_code.co_name == function and frame.f_code.co_filename == parallel.__file__:
            return True
        frame = frame.f_back
    return False


def _until(condition):
    deadline = time.monotonic() + 60
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)


def _groups_run_after(stop, settled, count=200):
    """``for_each`` over ``count`` indices: index 0 calls ``stop(ident of its thread)`` once the caller waits for
    the threads; every index then waits until ``settled(that ident)`` (the failure or the interrupt recorded, read
    from the threads' stacks, not from timing). Returns the indices run and the exception the caller saw, after
    the pool's threads are idle again."""
    seen, lock, stopped, stopper = [], threading.Lock(), threading.Event(), []
    main = threading.main_thread().ident

    def work(i):
        with lock:
            seen.append(i)
        if i == 0:
            _until(lambda: _in(main, 'wait'))
            stopper.append(threading.get_ident())
            stopped.set()
            stop(stopper[0])
        stopped.wait(60)
        _until(lambda: settled(stopper[0]))

    try:
        parallel.for_each(work, count, torch.device('cpu'))
    except BaseException as error:  # noqa: B902 - the failure or the interrupt under test
        raised = error
    else:
        raised = None
    _until(lambda: not any(_in(t.ident, 'run') for t in threading.enumerate()))
    return seen, raised


def _fail(ident):
    raise ValueError('group 0 failed')


def test_after_a_group_fails_no_further_group_is_taken(two_threads):
    """The other thread finishes the group it holds, then takes no other."""
    seen, raised = _groups_run_after(_fail, lambda ident: not _in(ident, 'run'))
    assert isinstance(raised, ValueError)
    assert set(seen) <= {0, 1}  # 1: if the other thread took it before the failure was recorded


def _interrupt(main, missed):
    """One SIGINT to the main thread, then wait (10 s at most) until it has left the pool's ``wait``; ``missed``
    gets True if it has not. A signal that lands just before a blocking lock wait is not seen by that wait (CPython
    checks for signals between bytecodes): the pool's wait is timed (``parallel.WAIT_SLICE``) so that one signal
    is always handled."""
    signal.pthread_kill(main, signal.SIGINT)
    deadline = time.monotonic() + 10
    while _in(main, 'wait') and time.monotonic() < deadline:
        time.sleep(0.001)
    missed.append(_in(main, 'wait'))


@pytest.mark.skipif(not hasattr(signal, 'pthread_kill'), reason='no pthread_kill')
def test_after_the_caller_is_interrupted_no_further_group_is_taken(two_threads):
    """Ctrl-C while the caller waits for the threads: the caller sees KeyboardInterrupt at once and the threads
    finish the groups they hold and take no other (they would otherwise run the rest with nobody waiting)."""
    # Python's own Ctrl-C handler, also where the suite was started with SIGINT ignored (a job started with & by
    # a non-interactive shell): the signal would otherwise never arrive
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupted_run()
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted_run():
    main, missed = threading.main_thread().ident, []
    seen, raised = _groups_run_after(lambda ident: _interrupt(main, missed),
                                     lambda ident: bool(missed) and (missed[0] or not _in(main, 'wait')))
    assert missed == [False], 'one Ctrl-C did not stop the wait within 10 s'
    assert isinstance(raised, KeyboardInterrupt)
    assert set(seen) <= {0, 1}  # 1: if the other thread took it before the failure was recorded


def test_without_a_per_thread_setting_the_caller_runs_every_group(monkeypatch, two_threads):
    """Where torch's threads cannot be switched off per thread, nothing is started: one thread, the caller's."""
    monkeypatch.setattr(parallel, '_set_num_threads', None)
    monkeypatch.setattr(parallel, '_capable', None)
    seen = []
    parallel.for_each(lambda i: seen.append(threading.get_ident()), 4, torch.device('cpu'))
    assert seen == [threading.get_ident()] * 4
    assert parallel.threads_for(torch.device('cpu'), 4) == 1


# Float32 rounding of the operation (the tolerance of the 1- vs 2-thread comparison below). A radix-2 FFT of n
# points has a normwise relative error of at most log2(n)·η/(1 − log2(n)·η), η = μ + γ4·(√2 + μ) ≈ (1 + 4√2)·u
# for twiddles accurate to μ ≈ u (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., Thm 24.2);
# u = 2⁻²⁴. The output passes through two transforms (rfft2, irfft2); a gradient through three (the output
# gradient's rfft2, the saved spectrum, the irfft2 or the sum over the n frequencies, whose pairwise rounding is
# within the same log2(n)·u). Each float32 result is then within EPS_PASSES · log2(n) · η of the exact one,
# normwise, and two of them within twice that of each other.
U = 2.0**-24
ETA = (1 + 4 * 2**0.5) * U
EPS_PASSES = 3


def rounding_bound(size):
    """The normwise relative distance of a float32 result of the operator at padded ``size`` from the exact."""
    return EPS_PASSES * math.log2(size[0] * size[1]) * ETA


def test_small_maps_get_a_group_per_thread_and_agree_within_float32_rounding(monkeypatch):
    """A 16-channel 128² map (1.2 MB of spectra, one cache-sized group) is split in two on 2 threads; a
    16-channel 16² map (too small to be worth a thread) is not. A group's size can change the rounding of its
    work (channels last, the kernel's spectra are one matrix product over the group's channels, and the BLAS
    picks its kernels by the product's width: 8 and 16 channels round differently on an AVX-512 EPYC, up to
    1.6e-5 of 20.9), so the split changes results within float32 rounding, not beyond: each 1- and 2-thread
    result, both layouts, forward and backward, is within :func:`rounding_bound` of the float64 result."""
    cpu, threads = torch.device('cpu'), torch.get_num_threads()
    per_channel = execution.spectrum_bytes(1, 1, (134, 134), torch.complex64)
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 16, 128, 128, generator=g, dtype=torch.float64)
    weight = torch.softmax(torch.randn(1, 16, 49, generator=g, dtype=torch.float64), -1).view(1, 16, 7, 7)
    bias = torch.randn(1, 16, 1, 1, generator=g, dtype=torch.float64)
    grad = torch.cos(torch.arange(x.numel(), dtype=torch.float64)).view(x.shape)

    def run(t, dtype):
        leaves = [p.detach().to(dtype).clone().requires_grad_(True) for p in (t, weight, bias)]
        out = converse2d(*leaves, 1, 3, 'circular')
        out.backward(grad.to(dtype))
        return [out.detach()] + [leaf.grad for leaf in leaves]

    try:
        counts, results = [], {}
        for n in (1, 2):
            torch.set_num_threads(n)
            counts.append((len(execution.channel_groups(cpu, False, per_channel,
                                                        16)), len(execution.channel_groups(cpu, True, per_channel, 16)),
                           len(execution.channel_groups(cpu, False, per_channel // 64, 16))))
            for layout, t in (('contiguous', x), ('channels_last', x.contiguous(memory_format=torch.channels_last))):
                results[layout, n] = run(t, torch.float32)
                if n == 1:
                    results[layout, 'exact'] = run(t, torch.float64)
    finally:
        torch.set_num_threads(threads)
    assert counts == [(1, 1, 1), (2, 2, 1)]
    bound = rounding_bound((134, 134))
    for layout in ('contiguous', 'channels_last'):
        for name, one, two, exact in zip(('output', 'input grad', 'weight grad', 'bias grad'), results[layout, 1],
                                         results[layout, 2], results[layout, 'exact']):
            scale = exact.norm()
            for result in (one, two):
                assert (result.double() - exact).norm() <= bound * scale, (layout, name)
            assert (one.double() - two.double()).norm() <= 2 * bound * scale, (layout, name)


def _forked_child(queue, inputs):
    """In the child only the operator runs (torch's own OpenMP pool does not survive a fork: plain parallel
    torch ops in a forked child wait forever with or without this package)."""
    torch.set_num_threads(2)
    with torch.no_grad():
        out = converse2d(*inputs, 1, 3, 'reflect')
    queue.put(bool(torch.isfinite(out).all()))


@pytest.mark.skipif(not hasattr(__import__('os'), 'fork'), reason='no fork')
def test_a_forked_child_starts_threads_of_its_own(two_threads, small_groups):
    """A DataLoader worker is a fork of a process whose pool threads exist; in the child they do not, and the
    child's calls must not wait for them."""
    import multiprocessing
    inputs = case('contiguous', 1)
    with torch.no_grad():
        converse2d(*inputs, 1, 3, 'reflect')  # the parent's pool threads exist now
    assert any(t.name.startswith('converse-') for t in threading.enumerate())
    context = multiprocessing.get_context('fork')
    results = context.Queue()
    child = context.Process(target=_forked_child, args=(results, inputs))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
    assert child.exitcode == 0 and results.get(timeout=5) is True
