"""Converse2D on every available device, and the device-aware execution choices (CUDA cases skip without CUDA)."""
import pytest
import torch

import converse_basicsr.ops.execution as execution
from converse_basicsr.ops import converse2d
from converse_basicsr.ops.literal import literal_converse2d

DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA'))]


def rel_err(out, ref):
    return ((out.double().cpu() - ref.double().cpu()).abs().max() / ref.double().abs().max()).item()


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
@pytest.mark.parametrize('scale', [1, 2])
def test_float32_forward_and_backward_match_float64_literal(device, layout, scale):
    """float32 on the device against the float64 literal algorithm (TF32 plays no part: no matmul of data)."""
    g = torch.Generator().manual_seed(scale)
    x = torch.rand(2, 8, 20, 18, generator=g, dtype=torch.float64)
    weight = torch.softmax(torch.randn(1, 8, 25, generator=g, dtype=torch.float64), -1).view(1, 8, 5, 5)
    bias = torch.randn(1, 8, 1, 1, generator=g, dtype=torch.float64)
    grad = torch.randn(2, 8, 20 * scale, 18 * scale, generator=g, dtype=torch.float64)
    leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    expected = literal_converse2d(*leaves, scale, 4, 'reflect')
    expected.backward(grad)
    ours = [t.float().to(device).requires_grad_(True) for t in (x, weight, bias)]
    x_in = ours[0].contiguous(memory_format=torch.channels_last) if layout == 'channels_last' else ours[0]
    out = converse2d(x_in, *ours[1:], scale, 4, 'reflect')
    assert out.device.type == device
    assert out.is_contiguous(memory_format=torch.channels_last) == (layout == 'channels_last')
    out.backward(grad.float().to(device))
    assert rel_err(out.detach(), expected.detach()) < 2e-6
    for mine, theirs in zip(ours, leaves):
        assert rel_err(mine.grad, theirs.grad) < 2e-5


@pytest.mark.parametrize('device', DEVICES)
def test_channels_last_map_is_transformed_in_place(monkeypatch, device):
    """A channels-last activation is transformed over its H and W axes as it lies: no copy to channels
    first (on CUDA through torch.fft over dims 1 and 2)."""
    seen = []
    real_rfft2 = execution.rfft2
    monkeypatch.setattr(execution, 'rfft2', lambda t, axes, cl: seen.append((t.shape, axes)) or real_rfft2(t, axes, cl))
    x = torch.rand(1, 6, 12, 10, device=device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        converse2d(x, torch.full((1, 6, 3, 3), 1 / 9, device=device), torch.zeros(1, 6, 1, 1, device=device), 1, 2)
    assert seen == [(torch.Size([1, 16, 14, 6]), (-3, -2))]


def test_channel_groups_are_cache_sized_on_cpu_and_follow_memory_on_cuda(monkeypatch):
    """On CPU a group is cache-sized whatever the thread count (each thread runs a group of its own); on CUDA
    the free memory sizes it."""
    monkeypatch.setattr(torch.cuda, 'mem_get_info', lambda device=None: (8 * 2**30, 16 * 2**30))
    cpu, cuda = torch.device('cpu'), torch.device('cuda')
    threads = torch.get_num_threads()
    try:
        sizes = []
        for n in (1, 4):
            torch.set_num_threads(n)
            sizes.append((execution.group_bytes(cpu, False), execution.group_bytes(cpu, True),
                          execution.group_bytes(cuda, False), execution.group_bytes(cuda, True)))
    finally:
        torch.set_num_threads(threads)
    assert sizes[0] == sizes[1] == (2**21, 2**24, 2**30, 2**30)  # CUDA: an eighth of the free memory
    # one 512² map of 64 channels under torchrun's OMP_NUM_THREADS=1: one group on CUDA, not 64
    per_channel = execution.spectrum_bytes(1, 1, (524, 524), torch.complex64)
    assert len(execution.channel_groups(cuda, False, per_channel, 64)) == 1


def test_channel_groups_are_equal():
    """Groups split the channels evenly (no 58 + 6 split that leaves a second thread idle)."""
    cpu = torch.device('cpu')
    per_channel = execution.spectrum_bytes(1, 1, (268, 268), torch.complex64)  # C = 64 at 256², channels last
    assert execution.channel_groups(cpu, True, per_channel, 64) == [slice(0, 32), slice(32, 64)]
    groups = execution.channel_groups(cpu, False, per_channel, 128)  # 7 channels fit 2 MiB: 19 groups of 6–7
    assert [g.start for g in groups[1:]] == [g.stop for g in groups[:-1]] and groups[0].start == 0
    assert len(groups) == 19 and groups[-1].stop == 128 and {g.stop - g.start for g in groups} == {6, 7}
