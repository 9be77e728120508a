"""The blocks without autograd (archs/inference_path.py): pointwise layers in row blocks, GELU and residual sums
in place. They must give the blocks' own results, leave the caller's input alone, and step aside whenever a
hook, autograd or autocast could see the difference."""
import pytest
import torch

from converse_basicsr.archs import blocks, inference_path
from converse_basicsr.archs.blocks import ConverseBlock, ConverseBlockAlpha
from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN


def reference(module, *args):
    """``module(*args)`` through the blocks' autograd-path forward (in-place work turned off)."""
    original = blocks.works_in_place
    blocks.works_in_place = lambda block, x: False
    try:
        with torch.no_grad():
            return module(*args)
    finally:
        blocks.works_in_place = original


def make_block(kind, operator='converse'):
    torch.manual_seed(0)
    block = kind(8, 8, 5, operator=operator).eval()
    if kind is ConverseBlockAlpha:
        with torch.no_grad():
            block.alpha1.normal_()
            block.alpha2.normal_()
    return block


@pytest.mark.parametrize('kind', [ConverseBlock, ConverseBlockAlpha])
@pytest.mark.parametrize('operator', ['converse', 'conv'])
@pytest.mark.parametrize('row_block_bytes', [1, 2**22])  # one row per block, or the whole map
def test_equals_the_plain_forward_and_keeps_the_input(monkeypatch, kind, operator, row_block_bytes):
    monkeypatch.setattr(inference_path, 'ROW_BLOCK_BYTES', row_block_bytes)
    block = make_block(kind, operator)
    x = torch.rand(2, 8, 13, 11,
                   generator=torch.Generator().manual_seed(1)).contiguous(memory_format=torch.channels_last)
    before = x.clone()
    used = []
    monkeypatch.setattr(blocks, 'run_branch', lambda *a, **k: used.append(1) or inference_path.run_branch(*a, **k))
    with torch.no_grad():
        out = block(x)
    assert used, 'the in-place path did not run'
    assert torch.equal(x, before)  # the residual input is the caller's: never written
    expected = reference(block, x)
    assert ((out - expected).abs().max() / expected.abs().max()).item() < 1e-6


def test_whole_model_equals_the_plain_forward():
    torch.manual_seed(0)
    model = ConverseDnCNN(num_feat=16, num_block=3).eval()
    x = torch.rand(2, 1, 40, 37)
    with torch.no_grad():
        out = model(x)
    expected = reference(model, x)
    assert ((out - expected).abs().max() / expected.abs().max()).item() < 1e-6


def test_outputs_seen_by_hooks_are_not_changed_afterwards():
    """A forward hook that keeps the GELU's output: the block falls back, the kept map stays as it was."""
    block = make_block(ConverseBlock)
    kept = []
    block.conv1[2].register_forward_hook(lambda module, args, output: kept.append((output, output.clone())))
    with torch.no_grad():
        block(torch.rand(1, 8, 12, 12))
    output, copy = kept[0]
    assert torch.equal(output, copy)


@pytest.mark.parametrize('situation', ['grad', 'autocast', 'global hook'])
def test_steps_aside(situation):
    block = make_block(ConverseBlock)
    x = torch.rand(1, 8, 12, 12)
    if situation == 'grad':
        assert not inference_path.works_in_place(block, x)  # parameters require grad, grad mode on
        with torch.no_grad():
            assert inference_path.works_in_place(block, x)
    elif situation == 'autocast':
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            assert not inference_path.works_in_place(block, x)
    else:
        handle = torch.nn.modules.module.register_module_forward_hook(lambda *args: None)
        try:
            with torch.no_grad():
                assert not inference_path.works_in_place(block, x)
        finally:
            handle.remove()
