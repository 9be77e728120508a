"""spandrel loads this package's checkpoints after ``install()``; no false claims either way."""
import warnings

import pytest
import spandrel
import torch

import converse_basicsr.spandrel_support as cs
from converse_basicsr.hub import zoo
from converse_basicsr.hub.shape_inference import infer_arch
from converse_basicsr.hub.spandrel_arches import min_input_size
from tests.helpers.shared_files import shared_path
from tests.helpers.spandrel_models import NOT_BUILT, build_small, spandrel_classes

cs.install()
OURS = {a.id for a in cs.ARCHITECTURES}
# name -> (scale, in, out, purpose, tiling, measured minimum input side: min runs, min - 1 fails)
PUBLISHED = {
    'converse_dncnn': (1, 1, 1, 'Restoration', spandrel.ModelTiling.DISCOURAGED, 6),
    'converse_srresnet': (4, 3, 3, 'SR', spandrel.ModelTiling.DISCOURAGED, 1),
    'conversenet': (1, 3, 3, 'Restoration', spandrel.ModelTiling.DISCOURAGED, 2),
    'converse_usrnet': (1, 3, 3, 'Restoration', spandrel.ModelTiling.INTERNAL, 2),
}
KERNEL = torch.full((1, 1, 7, 7), 1 / 49)


def _published(name):
    return shared_path('reference', 'zoo', zoo.ZOO[name].filename)


def _run(model, name, x):
    return model(x, KERNEL, 1) if zoo.ZOO[name].kernel_size else model(x)


@pytest.mark.parametrize('name', list(PUBLISHED))
def test_published_checkpoints_load_with_honest_descriptors(name):
    path = _published(name)
    d = spandrel.ModelLoader().load_from_file(path)
    scale, cin, cout, purpose, tiling, minimum = PUBLISHED[name]
    assert d.architecture.id == 'converse_basicsr.' + zoo.ZOO[name].arch
    assert (d.scale, d.input_channels, d.output_channels, d.purpose, d.tiling) == (scale, cin, cout, purpose, tiling)
    assert d.size_requirements.minimum == minimum and not d.supports_half and not d.supports_bfloat16
    ours = zoo.load_pretrained(path)
    torch.manual_seed(0)
    x = torch.rand(1, cin, 24, 20)
    if name == 'converse_usrnet':
        with pytest.raises(ValueError, match='set its blur kernel'):
            d(x)
        cs.set_blur_kernel(d, KERNEL)
    with torch.no_grad():
        expected = _run(ours, name, x).clamp(0, 1)
    assert d(x).shape == (1, cout, 24 * scale, 20 * scale)
    assert (d(x) - expected).abs().max() <= 1e-6
    with torch.no_grad():  # the declared minimum is the measured one
        _run(ours, name, torch.rand(1, cin, minimum, minimum))
        if minimum > 1:
            with pytest.raises((RuntimeError, ValueError)):
                _run(ours, name, torch.rand(1, cin, minimum - 1, minimum - 1))


SMALL = [
    ('ConverseDnCNN', dict(num_in_ch=3, num_feat=8, num_block=2, kernel_size=5)),
    ('ConverseMSRResNet', dict(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=2, upscale=2, kernel_size=3)),
    ('ConverseMSRResNet', dict(num_feat=8, num_block=1, upscale=3)),
    ('ConverseUpMSRResNet', dict(num_feat=8, num_block=2, upscale=4)),
    ('ConverseNet', dict(num_in_ch=1, num_feat=8, num_block=3, kernel_size=5)),
    ('ConverseUSRNet', dict(num_feat=8, num_block=2, num_iter=3, kernel_size=5, kernel_hidden=16, num_kernel_feat=4)),
    ('ConverseUp', dict(base=dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=4))),
    ('ConverseUp', dict(base=dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=3))),
    ('ConverseUp', dict(base=dict(type='MSRResNet', num_feat=8, num_block=2, upscale=2), kernel_size=4)),
    ('ConverseUp', dict(base=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4))),
]


@pytest.mark.parametrize('arch,kwargs', SMALL, ids=[f'{a}-{i}' for i, (a, _) in enumerate(SMALL)])
def test_trained_checkpoints_load_through_spandrel(arch, kwargs, tmp_path):
    """What converse-train writes ({'params': ..., 'params_ema': ...}): hyper-parameters recovered, outputs equal."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        net = zoo.build_arch(arch, kwargs).eval()
    for p in net.parameters():  # alphas start at 0: make every branch count
        p.data.add_(0.05 * torch.randn_like(p))
    path = tmp_path / 'net_g_latest.pth'
    torch.save({'params': {k: v * 0 for k, v in net.state_dict().items()}, 'params_ema': net.state_dict()}, path)
    d = spandrel.ModelLoader().load_from_file(path)
    assert d.architecture.id == 'converse_basicsr.' + arch
    got_arch, got = infer_arch(d.model.state_dict())
    assert got_arch == arch and _subset(kwargs, got), got
    cin = kwargs.get('num_in_ch', kwargs.get('base', {}).get('num_in_ch', 3))
    x = torch.rand(1, cin, 16, 12)
    if arch == 'ConverseUSRNet':
        cs.set_blur_kernel(d, torch.full((5, 5), 1 / 25))
        expected = net(x, torch.full((1, 1, 5, 5), 1 / 25), 1)
    else:
        expected = net(x)
    with torch.no_grad():
        assert (d(x) - expected.clamp(0, 1)).abs().max() <= 1e-6
    assert d.scale * 16 == expected.shape[-2] and d.input_channels == cin
    assert d.size_requirements.minimum == min_input_size(net)


def test_spandrel_archs_are_not_claimed_and_do_not_claim_ours():
    """Every arch spandrel ships, built from its own classes: none of our detectors claims it, and none of
    spandrel's claims any of ours (the published checkpoints and every SMALL config)."""
    built = []
    for arch_id, name, cls in spandrel_classes():
        if (arch_id, name) in NOT_BUILT:
            continue
        state_dict = build_small(arch_id, name, cls)
        assert spandrel.MAIN_REGISTRY[arch_id].detect(state_dict), f'{arch_id}.{name} built wrongly'
        claims = [a.id for a in cs.ARCHITECTURES if a.detect(state_dict)]
        assert not claims, f'{claims} claim spandrel {arch_id}.{name}'
        built.append(arch_id)
    assert len(set(built)) == len([s for s in spandrel.MAIN_REGISTRY if s.architecture.id not in OURS]) >= 42
    ours = [torch.load(_published(n), weights_only=True) for n in PUBLISHED]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ours += [zoo.build_arch(a, k, device='meta').state_dict() for a, k in SMALL]
    overlapping = set()
    for state_dict in ours:
        theirs = [
            s.architecture.id for s in spandrel.MAIN_REGISTRY
            if s.architecture.id not in OURS and _claims(s, state_dict)
        ]
        first = next(
            s.architecture.id for s in spandrel.MAIN_REGISTRY.architectures('detection') if _claims(s, state_dict))
        assert first in OURS, f'{first} is detected before ours'
        overlapping.update(theirs)
    # keys overlap: SCUNet's detector takes Converse-DnCNN (m_head/m_body/m_tail), ESRGAN's ConverseUp-RRDBNet;
    # ours are detected first (asserted above), so spandrel's own detectors never see them
    assert overlapping == {'SCUNet', 'ESRGAN'}


def _subset(given, inferred):
    return all(_subset(v, inferred.get(k)) if isinstance(v, dict) else inferred.get(k) == v for k, v in given.items())


def _claims(support, state_dict):
    try:
        return support.detect(state_dict)
    except Exception:  # a detector that crashes on a foreign state dict claims nothing
        return False
