"""Converse2D's working buffers: results that callers keep are never shared with or overwritten by a later call.

The operator's full-size results (output, the ``rfft2(x)`` kept for the backward, the input gradient) come
from ``ops/buffers.py``, which hands a storage out again once nothing else holds it. It pools only maps
of 32 MiB and more; the ``pooled`` fixture lowers that to 0 bytes, so that these small cases go through it.
"""
import pytest
import torch

from converse_basicsr.ops import Converse2D, buffers, converse2d
from converse_basicsr.ops.literal import literal_converse2d


@pytest.fixture(params=['pooled', 'unpooled'])
def pooled(request, monkeypatch):
    """Every map through the pool (``MIN_BYTES = 0``), or none; an empty pool before and after."""
    buffers.release()
    monkeypatch.setattr(buffers, 'MIN_BYTES', 0 if request.param == 'pooled' else 2**62)
    yield request.param == 'pooled'
    buffers.release()


@pytest.fixture
def pool_on(monkeypatch):
    """Every map through the pool; an empty pool before and after."""
    buffers.release()
    monkeypatch.setattr(buffers, 'MIN_BYTES', 0)
    yield
    buffers.release()


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
def test_two_kept_outputs_stay_intact(pooled, scale, layout, mode):
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
def test_two_graphs_alive_backpropagate_their_own_inputs(pooled, scale, layout):
    """Autograd keeps rfft2(x) of every call for its backward: two calls whose graphs are both alive, then
    one backward through both, give the gradients of the literal algorithm for each."""
    layer = make_layer(scale).train()
    inputs = [
        arrange(torch.rand(1, 6, 10, 9, generator=torch.Generator().manual_seed(i)), layout).requires_grad_(True)
        for i in (3, 4)
    ]
    outputs = [layer(x) for x in inputs]  # both graphs alive
    (outputs[0].square().sum() + (outputs[1] * 3).sin().sum()).backward()
    ref = [x.detach().double().requires_grad_(True) for x in inputs]
    weight, bias = (p.detach().double().requires_grad_(True) for p in (layer.weight, layer.bias))
    ref_out = [literal_converse2d(x, weight, bias, scale, 3, 'replicate') for x in ref]
    (ref_out[0].square().sum() + (ref_out[1] * 3).sin().sum()).backward()
    pairs = [(x.grad, r.grad) for x, r in zip(inputs, ref)]
    for ours, theirs in pairs + [(layer.weight.grad, weight.grad), (layer.bias.grad, bias.grad)]:
        assert ((ours.double() - theirs).abs().max() / theirs.abs().max()).item() < 1e-5


def pooled_storages():
    return {storage.data_ptr() for storage in buffers._pool}


def test_pool_hands_out_only_storages_nobody_holds(pool_on):
    """A storage is handed out again only once no tensor, view or graph refers to it."""
    first = buffers.empty((3, 4, 5), torch.float32, 'cpu')
    address = first.untyped_storage().data_ptr()
    second = buffers.empty((3, 4, 5), torch.float32, 'cpu')  # first is alive
    assert second.untyped_storage().data_ptr() != address
    view = first[1:]
    del first
    third = buffers.empty((3, 4, 5), torch.float32, 'cpu')  # a view of first is alive
    assert third.untyped_storage().data_ptr() != address
    saved = view.clone().requires_grad_(True)
    graph = (saved * view).sum()  # autograd keeps view (as the other factor) for the backward
    del view
    fourth = buffers.empty((3, 4, 5), torch.float32, 'cpu')
    assert fourth.untyped_storage().data_ptr() != address
    graph.backward()  # frees the saved tensors
    del graph, fourth, third, second
    again = buffers.empty((3, 4, 5), torch.float32, 'cpu')
    assert again.untyped_storage().data_ptr() in pooled_storages()


@pytest.mark.parametrize('groups', ['one group', 'groups of two channels'])
def test_reused_outputs_follow_their_callers(monkeypatch, pooled, groups):
    """Outputs that the caller dropped are reused (with the pool on), kept ones never; the values are right."""
    import converse_basicsr.ops.execution as execution
    if groups != 'one group':
        per_channel = execution.spectrum_bytes(1, 1, (22, 22), torch.complex64)
        monkeypatch.setattr(execution, 'group_bytes', lambda device, last: 2 * per_channel)
    layer = make_layer(1).train()
    x = torch.rand(1, 6, 16, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = literal_converse2d(x.double(), layer.weight.double(), layer.bias.double(), 1, 3, 'replicate')
        kept = layer(x)
        addresses = set()
        for _ in range(3):
            y = layer(x)
            addresses.add(y.untyped_storage().data_ptr())
            assert y.untyped_storage().data_ptr() != kept.untyped_storage().data_ptr()
            del y
    assert len(addresses) == (1 if pooled else len(addresses))
    assert ((kept.double() - expected).abs().max() / expected.abs().max()).item() < 2e-6


def test_pool_is_bounded(monkeypatch, pool_on):
    """The pool forgets free storages beyond MAX_BYTES; release() forgets all of them."""
    monkeypatch.setattr(buffers, 'MAX_BYTES', 4 * 4000)
    kept = [buffers.empty((1000, ), torch.float32, 'cpu') for _ in range(3)]
    assert buffers.held_bytes() == 3 * 4000
    del kept
    for _ in range(5):
        buffers.empty((1000, ), torch.float32, 'cpu')
        buffers.empty((1500, ), torch.float32, 'cpu')
    assert buffers.held_bytes() <= 4 * 4000
    assert buffers.empty((3000, ), torch.float32, 'cpu').untyped_storage().data_ptr() not in pooled_storages()
    buffers.release()
    assert buffers.held_bytes() == 0


@pytest.mark.parametrize('padding_mode', ['circular', 'reflect', 'replicate', 'constant'])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_gradient_kept_by_the_caller_is_not_reused(pooled, padding_mode, layout):
    """x.grad holds the input gradient of the first backward; a second backward accumulates into it."""
    layer = make_layer(1).train()
    layer.padding_mode = padding_mode
    x = arrange(torch.rand(2, 6, 11, 9, generator=torch.Generator().manual_seed(2)), layout).requires_grad_(True)
    converse2d(x, layer.weight, layer.bias, 1, 3, padding_mode).square().sum().backward()
    once = x.grad.clone()
    converse2d(x, layer.weight, layer.bias, 1, 3, padding_mode).square().sum().backward()
    assert torch.allclose(x.grad, 2 * once, rtol=1e-6, atol=0)
    ref = x.detach().double().requires_grad_(True)
    literal_converse2d(ref, layer.weight.double(), layer.bias.double(), 1, 3, padding_mode).square().sum().backward()
    assert ((once.double() - ref.grad).abs().max() / ref.grad.abs().max()).item() < 1e-5
