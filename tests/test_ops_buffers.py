"""Converse2D's working buffers: results that callers keep are never shared with or overwritten by a later call."""
import pytest
import torch

from converse_basicsr.ops import Converse2D
from converse_basicsr.ops.literal import literal_converse2d


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
