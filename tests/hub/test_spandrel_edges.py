"""Our spandrel descriptors' edges (hub/spandrel_arches.py): the non-blind USRNet's blur kernel, purpose, tags, the
scale of a ConverseUp RRDBNet, and the minimum input side of another project's arch."""
import pytest
import spandrel
import torch

import converse_basicsr.spandrel_support as cs
from converse_basicsr.hub import zoo
from converse_basicsr.hub.public import detect


def _descriptor(arch, kwargs):
    torch.manual_seed(0)
    cs.install()
    return spandrel.ModelLoader().load_from_state_dict(zoo.build_arch(arch, kwargs).state_dict())


def test_usrnet_takes_its_blur_kernel_as_k_by_k_or_1_1_k_k():
    d = _descriptor('ConverseUSRNet',
                    dict(num_feat=8, num_block=1, num_iter=2, kernel_size=5, kernel_hidden=8, num_kernel_feat=2))
    with pytest.raises(ValueError, match='set its blur kernel first'):
        d(torch.rand(1, 3, 8, 8))
    cs.set_blur_kernel(d, torch.full((5, 5), 1 / 25))
    assert d.model.blur_kernel.shape == (1, 1, 5, 5)
    for bad in (torch.full((1, 1, 25, 1), 1 / 25), torch.full((3, 3), 1 / 9)):
        with pytest.raises(ValueError, match=r'needs a \(1, 1, 5, 5\) blur kernel'):
            cs.set_blur_kernel(d, bad)


def test_purpose_and_tags_follow_the_scale():
    denoiser = _descriptor('ConverseDnCNN', dict(num_in_ch=1, num_feat=8, num_block=2))
    assert denoiser.purpose == 'Restoration' and denoiser.scale == 1
    sr = _descriptor('ConverseMSRResNet', dict(num_feat=8, num_block=1, upscale=2))
    assert sr.purpose == 'SR' and sr.scale == 2
    assert {'8nf', 'x2'} <= set(sr.tags)


@torch.no_grad()
def test_converse_up_rrdbnet_x2_declares_its_scale():
    kwargs = dict(base=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, scale=2, num_feat=8, num_block=1, num_grow_ch=4))
    d = _descriptor('ConverseUp', kwargs)
    assert d.scale == 2 and d.input_channels == 3  # RRDBNet x2 pixel-unshuffles 3 channels into 12
    assert d.model(torch.rand(1, 3, 8, 6)).shape == (1, 3, 16, 12)


def test_a_foreign_arch_without_size_requirements_declares_a_minimum_of_one():
    torch.manual_seed(0)
    net = zoo.build_arch('SRVGGNetCompact', dict(num_feat=4, num_conv=1, upscale=2))
    _, info = detect(net.state_dict(), 'compact.pth')
    assert info.arch != '' and info.min_size == 1
