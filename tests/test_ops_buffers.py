"""Converse2D's working buffers: results that callers keep are never shared with or overwritten by a later call."""
import threading

import pytest
import torch

from converse_basicsr.ops import Converse2D, execution
from converse_basicsr.ops.converse2d import PADDING_MODES, pad_into
from converse_basicsr.ops.literal import literal_converse2d
from converse_basicsr.ops.workspace import WORKSPACE


def make_layer(scale, seed=0):
    torch.manual_seed(seed)
    layer = Converse2D(6, 6, 5, scale=scale, padding=3, padding_mode='replicate')
    with torch.no_grad():
        layer.bias.normal_()
    return layer


def arrange(x, layout):
    return x.contiguous(memory_format=torch.channels_last) if layout == 'channels_last' else x


def storages(*tensors):
    return {t.untyped_storage().data_ptr() for t in tensors}


@pytest.mark.parametrize('scale', [1, 2])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
@pytest.mark.parametrize('mode', ['eval_cached', 'no_grad'])
def test_two_kept_outputs_stay_intact(scale, layout, mode):
    """Two calls at the same size, both outputs kept: each equals its own input's result."""
    layer = make_layer(scale)
    layer.train(mode == 'no_grad')  # eval: from the cached response
    x1, x2 = (arrange(torch.rand(2, 6, 14, 12, generator=torch.Generator().manual_seed(i)), layout) for i in (1, 2))
    with torch.no_grad():
        y1 = layer(x1)
        kept = y1.clone()
        y2 = layer(x2)
        y3 = layer(x1)
    assert storages(y1) != storages(y2) and storages(y1) != storages(y3)
    assert torch.equal(y1, kept)  # not overwritten by the later calls
    assert torch.equal(y1, y3)
    for x, y in ((x1, y1), (x2, y2)):
        expected = literal_converse2d(x.double(), layer.weight.double(), layer.bias.double(), scale, 3, 'replicate')
        assert ((y.double() - expected).abs().max() / expected.abs().max()).item() < 2e-6


@pytest.mark.parametrize('scale', [1, 2])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_two_graphs_alive_backpropagate_their_own_inputs(scale, layout):
    """Autograd keeps rfft2(x) of every call for its backward: two calls whose graphs are both alive, then
    one backward through both, give the gradients of the literal algorithm for each."""
    layer = make_layer(scale).train()
    inputs = [arrange(torch.rand(1, 6, 10, 9, generator=torch.Generator().manual_seed(i)), layout).requires_grad_(True)
              for i in (3, 4)]
    outputs = [layer(x) for x in inputs]  # both graphs alive
    (outputs[0].square().sum() + (outputs[1] * 3).sin().sum()).backward()
    ref = [x.detach().double().requires_grad_(True) for x in inputs]
    weight, bias = (p.detach().double().requires_grad_(True) for p in (layer.weight, layer.bias))
    ref_out = [literal_converse2d(x, weight, bias, scale, 3, 'replicate') for x in ref]
    (ref_out[0].square().sum() + (ref_out[1] * 3).sin().sum()).backward()
    pairs = [(x.grad, r.grad) for x, r in zip(inputs, ref)]
    for ours, theirs in pairs + [(layer.weight.grad, weight.grad), (layer.bias.grad, bias.grad)]:
        assert ((ours.double() - theirs).abs().max() / theirs.abs().max()).item() < 1e-5


# --- many channel groups: intermediates in this thread's working buffers ---------------------------------------


@pytest.fixture
def small_groups(monkeypatch):
    """Groups of one channel, so that every call goes through the working buffers (the maps above fit one group)."""
    monkeypatch.setattr(execution, 'CHANNELS_LAST_GROUP_BYTES', 1)
    monkeypatch.setattr(execution, 'CHUNK_BYTES', 1)


def workspace_storages():
    return storages(*WORKSPACE.buffers.values())


def saved_spectra(output):
    """The complex tensors that the graph of ``output`` saves for its backward (``rfft2(x)``)."""
    nodes, found = [output.grad_fn], []
    while nodes:
        node = nodes.pop()
        if 'ReverseConvolution' in type(node).__name__:
            found += [t for t in node.saved_tensors if t.is_complex()]
        nodes += [child for child, _ in node.next_functions if child is not None]
    return found


@pytest.mark.parametrize('mode', PADDING_MODES)
@pytest.mark.parametrize('padding', [0, 1, 4])
def test_pad_into_a_buffer_equals_functional_pad(mode, padding):
    x = torch.rand(2, 3, 7, 5)
    expected = torch.nn.functional.pad(x, (padding,) * 4, mode=mode) if padding else x
    first = pad_into(x, torch.full(expected.shape, float('nan')), padding, mode, (2, 3))
    last = torch.full(expected.permute(0, 2, 3, 1).shape, float('nan'))
    assert torch.equal(first, expected)
    assert torch.equal(pad_into(x.permute(0, 2, 3, 1), last, padding, mode, (1, 2)), expected.permute(0, 2, 3, 1))


@pytest.mark.parametrize('scale', [1, 2])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_grouped_outputs_and_saved_spectra_are_not_working_buffers(small_groups, scale, layout):
    """With many groups the intermediates live in the working buffers; the outputs, gradients and the
    spectrum saved for backward do not, and two graphs alive still backpropagate their own inputs."""
    test_two_kept_outputs_stay_intact(scale, layout, 'no_grad')
    layer = make_layer(scale).train()
    x = arrange(torch.rand(1, 6, 10, 9), layout).requires_grad_(True)
    y = layer(x)
    kept = saved_spectra(y)
    y.sum().backward()
    assert kept and WORKSPACE.buffers
    assert not storages(y, x.grad, layer.weight.grad, *kept) & workspace_storages()
    test_two_graphs_alive_backpropagate_their_own_inputs(scale, layout)


def test_working_buffers_are_per_thread(small_groups):
    """Two threads solving at once each use their own buffers and get the single-threaded results."""
    layer = make_layer(2).eval()
    inputs = [torch.rand(2, 6, 24, 20, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    with torch.no_grad():
        expected = [layer(x) for x in inputs]
    results, buffers = [None] * 2, [None] * 2
    start = threading.Barrier(2)

    def work(i):
        start.wait()
        with torch.no_grad():
            for _ in range(20):
                results[i] = layer(inputs[i])
        buffers[i] = workspace_storages()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert buffers[0] and buffers[1] and not buffers[0] & buffers[1]
    for ours, theirs in zip(results, expected):
        assert torch.equal(ours, theirs)
