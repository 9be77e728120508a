"""The CPU threading design of the operator (no timing): channel groups on threads of their own, each running
torch and pocketfft on one thread; the results independent of the thread count; state-carrying callers kept
in their own thread."""
import threading

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
            self.calls.append((name, threading.get_ident(), torch.get_num_threads(), sorted(kwargs)))
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
    """With 2 threads, every FFT of the forward and the backward runs on one of two threads that are not the
    caller's, with torch single-threaded there and pocketfft on its default one worker; never torch.fft."""
    assert parallel.capable()  # probed once per process (in a thread of its own), before the spy
    started = []
    real = parallel.single_threaded
    monkeypatch.setattr(parallel, 'single_threaded', lambda: started.append(threading.get_ident()) or real())
    if grad:
        forward_backward(layout, 1)
    else:
        with torch.no_grad():
            converse2d(*case(layout, 1), 1, 3, 'reflect')
    assert len(started) == (4 if grad else 2)  # two threads for the forward, two for the backward
    assert threading.get_ident() not in started
    assert len(fft_spy.calls) == (12 if grad else 6)  # 3 groups × (rfft2, irfft2), twice with the backward
    for name, thread, torch_threads, kwargs in fft_spy.calls:
        assert thread in started and torch_threads == 1
        assert 'workers' not in kwargs


@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
@pytest.mark.parametrize('scale', [1, 2])
def test_outputs_and_gradients_do_not_depend_on_the_thread_count(small_groups, layout, scale):
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
    assert {thread for _, thread, _, _ in fft_spy.calls} == {threading.get_ident()}
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


def test_without_a_per_thread_setting_the_caller_runs_every_group(monkeypatch, two_threads):
    """Where torch's threads cannot be switched off per thread, nothing is started: one thread, the caller's."""
    monkeypatch.setattr(parallel, '_set_num_threads', None)
    monkeypatch.setattr(parallel, '_capable', None)
    seen = []
    parallel.for_each(lambda i: seen.append(threading.get_ident()), 4, torch.device('cpu'))
    assert seen == [threading.get_ident()] * 4
    assert parallel.threads_for(torch.device('cpu'), 4) == 1
