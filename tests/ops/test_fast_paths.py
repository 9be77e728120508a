"""The fast paths stay exact: the response cache, autocast, torch.compile (no timing assertions)."""
import gc
import math

import cv2
import numpy as np
import pytest
import torch

from converse_basicsr.archs.blocks import ConverseBlock
from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN
from converse_basicsr.archs.converse_srresnet_arch import ConverseMSRResNet
from converse_basicsr.archs.converse_usrnet_arch import ConverseUSRNet
from converse_basicsr.archs.conversenet_arch import ConverseNet
from converse_basicsr.ops import Converse2D, converse2d
from converse_basicsr.ops.literal import literal_converse2d
from tests.helpers.shared_files import shared_path


def rel_err(out, ref):
    return ((out.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def psnr(a, b):
    return 10 * math.log10(1.0 / (a.double() - b.double()).pow(2).mean().item())


def make_layer(seed=0, **kwargs):
    torch.manual_seed(seed)
    args = dict(in_channels=6, out_channels=6, kernel_size=5, scale=1, padding=3, padding_mode='replicate')
    args.update(kwargs)
    layer = Converse2D(**args)
    with torch.no_grad():
        layer.bias.normal_()
    return layer.eval()


def uncached(layer, x):
    """The layer's output computed from scratch (the functional form, no cache)."""
    with torch.no_grad():
        return converse2d(x, layer.weight, layer.bias, layer.scale, layer.padding, layer.padding_mode, layer.eps)


def eval_output(layer, x):
    with torch.no_grad():
        return layer(x)


# --- the frequency-response cache -------------------------------------------------------------


def test_cache_is_used_and_matches_uncached():
    layer, x = make_layer(), torch.rand(2, 6, 10, 12)
    first = eval_output(layer, x)
    assert len(layer._cache) == 1
    (stamp, response), = layer._cache.values()
    second = eval_output(layer, x)
    assert layer._cache[next(iter(layer._cache))][1] is response  # reused, not rebuilt
    assert torch.equal(first, second)
    assert rel_err(second, uncached(layer, x)) < 1e-6


@pytest.mark.parametrize('change', ['weight_inplace', 'bias_inplace', 'load_state_dict', 'new_parameter', 'eps'])
def test_changed_parameters_change_next_eval_output(change):
    layer, x = make_layer(), torch.rand(1, 6, 9, 9)
    before = eval_output(layer, x)
    with torch.no_grad():
        if change == 'weight_inplace':
            layer.weight[0, 0, 2, 2] += 0.5
        elif change == 'bias_inplace':
            layer.bias.add_(1.0)
        elif change == 'load_state_dict':
            layer.load_state_dict(make_layer(seed=1).state_dict())
        elif change == 'new_parameter':
            layer.weight = torch.nn.Parameter(torch.flip(layer.weight, dims=(-1, )).clone())
        else:
            layer.eps = 1e-2
    after = eval_output(layer, x)
    assert rel_err(after, before) > 1e-3
    assert rel_err(after, uncached(layer, x)) < 1e-6


def test_optimizer_step_changes_next_eval_output():
    layer, x = make_layer(scale=2, padding=2), torch.rand(2, 6, 8, 8)
    before = eval_output(layer, x)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    layer.train()
    layer(x).square().mean().backward()
    optimizer.step()
    layer.eval()
    after = eval_output(layer, x)
    assert rel_err(after, before) > 1e-4
    assert rel_err(after, uncached(layer, x)) < 1e-6


def test_model_eval_after_training_step_uses_new_weights():
    torch.manual_seed(0)
    model = ConverseDnCNN(num_feat=8, num_block=2).eval()
    x = torch.rand(1, 1, 16, 16)
    before = eval_output(model, x)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    model(x).sum().backward()
    optimizer.step()
    model.eval()
    after = eval_output(model, x)
    for module in model.modules():
        if isinstance(module, Converse2D):
            module._cache.clear()
    assert torch.equal(after, eval_output(model, x))
    assert rel_err(after, before) > 1e-4


def test_cache_holds_no_graph_and_nothing_while_training():
    layer, x = make_layer(), torch.rand(1, 6, 8, 8, requires_grad=True)
    layer(x).sum().backward()  # eval mode, grad enabled: no caching
    assert layer._cache == {}
    layer.train()
    with torch.no_grad():
        layer(x)
    assert layer._cache == {}  # training mode: nothing cached
    layer.eval()
    with torch.no_grad():
        layer(x)
    assert len(layer._cache) == 1
    for stamp, response in layer._cache.values():
        assert not response.requires_grad and response.grad_fn is None
    # a cached entry keeps no autograd graph (and so no activations) alive
    layer(x).sum().backward()
    assert layer._cache == {}


def test_cache_is_bounded():
    layer = make_layer()
    for size in range(8, 16):
        eval_output(layer, torch.rand(1, 6, size, size + 1))
        assert len(layer._cache) <= 4
    assert len(layer._cache) == 4
    out = eval_output(layer, torch.rand(1, 6, 15, 16))  # the most recent size is still cached
    assert out.shape == (1, 6, 15, 16)
    del layer
    gc.collect()


def test_large_responses_are_not_cached(monkeypatch):
    layer, x = make_layer(), torch.rand(1, 6, 12, 12)
    monkeypatch.setattr(Converse2D, 'CACHE_MAX_BYTES', 6 * 18 * 10 * 8 - 1)  # one byte short of this size
    out = eval_output(layer, x)
    assert layer._cache == {}
    assert rel_err(out, uncached(layer, x)) < 1e-6
    monkeypatch.setattr(Converse2D, 'CACHE_MAX_BYTES', 6 * 18 * 10 * 8)
    eval_output(layer, x)
    assert len(layer._cache) == 1


# --- mixed precision ---------------------------------------------------------------------------


@pytest.mark.parametrize('scale', [1, 2])
def test_operator_under_autocast_computes_in_float32(scale):
    layer = make_layer(scale=scale, padding=2)
    x = torch.rand(1, 6, 10, 10)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x)
        out_half_input = layer(x.bfloat16())
        out_eval = eval_output(layer, x)
    assert out.dtype == torch.float32 and out_eval.dtype == torch.float32
    assert rel_err(out, uncached(layer, x)) < 1e-6
    assert rel_err(out_eval, uncached(layer, x)) < 1e-6
    assert rel_err(out_half_input, uncached(layer, x.bfloat16().float())) < 1e-6
    layer.train()
    ref_grads = torch.autograd.grad(layer(x).square().sum(), (layer.weight, layer.bias))
    with torch.autocast('cpu', dtype=torch.bfloat16):  # backward inside the region: still float32
        grads = torch.autograd.grad(layer(x).square().sum(), (layer.weight, layer.bias))
    for g, r in zip(grads, ref_grads):
        assert g.dtype == torch.float32 and rel_err(g, r) < 1e-5


def read_image(folder, name, crop, gray):
    path = shared_path('testsets', folder, name)
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    image = image[:crop, :crop].astype(np.float32) / 255.0
    tensor = torch.from_numpy(np.ascontiguousarray(image if gray else image[..., ::-1]))
    return tensor[None, None] if gray else tensor.permute(2, 0, 1)[None]


def autocast_psnr(model, *args):
    model.eval()
    with torch.no_grad():
        ref = model(*args)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(*args)
    assert torch.isfinite(out).all()
    return psnr(out.float().clamp(0, 1), ref.clamp(0, 1))


def test_dncnn_autocast_close_to_float32_on_set12(zoo_dir):
    """Published Converse-DnCNN, Set12/01.png crop with σ = 25 noise: bf16 autocast within 45 dB of float32."""
    model = ConverseDnCNN()
    model.load_state_dict(torch.load(zoo_dir / 'converse_dncnn.pth', map_location='cpu'))
    clean = read_image('Set12', '01.png', 64, gray=True)
    noisy = clean + 25 / 255 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    assert autocast_psnr(model, noisy) > 45


def test_srresnet_autocast_close_to_float32(zoo_dir):
    model = ConverseMSRResNet()
    model.load_state_dict(torch.load(zoo_dir / 'converse_srresnet.pth', map_location='cpu'))
    assert autocast_psnr(model, read_image('Set14', 'baboon.png', 32, gray=False)) > 45


def test_deblurring_archs_autocast_finite_and_close(zoo_dir):
    """ConverseNet (35 blocks) and Converse-USRNet: the residual stream stays float32 under autocast."""
    image = read_image('CBSD68_4', '101085.png', 40, gray=False)
    kernel = torch.from_numpy(np.load(shared_path('reference', 'kernels', 'kernel_1.npy'))).float()
    kernel = (kernel / kernel.sum()).view(1, 1, 7, 7)
    net = ConverseNet()
    net.load_state_dict(torch.load(zoo_dir / 'conversenet.pth', map_location='cpu'))
    usrnet = ConverseUSRNet()
    usrnet.load_state_dict(torch.load(zoo_dir / 'converse_usrnet.pth', map_location='cpu'))
    assert autocast_psnr(net, image) > 45
    assert autocast_psnr(usrnet, image, kernel, 1) > 45


# --- torch.compile -----------------------------------------------------------------------------


def test_compiled_converse2d_matches_eager_forward_and_backward():
    layer = make_layer(scale=2, padding=2).train()
    x = torch.rand(2, 6, 10, 10)
    compiled = torch.compile(layer, fullgraph=True)  # fullgraph: a graph break is an error
    out = compiled(x)
    ref = layer(x)
    assert rel_err(out, ref) < 1e-5
    grads = torch.autograd.grad(out.square().sum(), (layer.weight, layer.bias))
    ref_grads = torch.autograd.grad(ref.square().sum(), (layer.weight, layer.bias))
    for g, r in zip(grads, ref_grads):
        assert rel_err(g, r) < 1e-4
    literal = literal_converse2d(x.double(), layer.weight.double(), layer.bias.double(), 2, 2, 'replicate')
    assert rel_err(out, literal) < 1e-5


def test_compiled_converse_block_matches_eager():
    torch.manual_seed(0)
    block = ConverseBlock(8, 8, kernel_size=3, padding=2).eval()
    x = torch.rand(1, 8, 12, 12)
    compiled = torch.compile(block, fullgraph=True)
    with torch.no_grad():
        out, ref = compiled(x), block(x)
    assert rel_err(out, ref) < 1e-5
