"""The padding that Converse2D applies before the solve, and the adjoint its backward applies group by group."""
import pytest
import torch
from torch.nn import functional as F

from converse_basicsr.ops.padding import pad, pad_adjoint

CASES = [('circular', 1), ('circular', 4), ('circular', 5), ('reflect', 1), ('reflect', 4), ('replicate', 1),
         ('replicate', 7), ('constant', 3)]  # 5 × 6 maps: circular up to 5, reflect below 5


@pytest.mark.parametrize('padding_mode, padding', CASES)
@pytest.mark.parametrize('channels_last', [False, True])
def test_adjoint_is_the_gradient_of_the_padding(padding_mode, padding, channels_last):
    """pad_adjoint(g) is the gradient of F.pad's input for the output gradient g, in both layouts."""
    g = torch.Generator().manual_seed(padding)
    x = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64).requires_grad_(True)
    grad = torch.randn(2, 3, 5 + 2 * padding, 6 + 2 * padding, generator=g, dtype=torch.float64)
    F.pad(x, (padding, ) * 4, mode=padding_mode).backward(grad)
    if channels_last:
        ours = pad_adjoint(grad.permute(0, 2, 3, 1).contiguous(), padding, padding_mode, True).permute(0, 3, 1, 2)
    else:
        ours = pad_adjoint(grad, padding, padding_mode)
    assert ours.shape == x.shape
    assert (ours - x.grad).abs().max().item() < 1e-12


@pytest.mark.parametrize('padding_mode, padding', CASES)
def test_channels_last_padding_equals_channels_first(padding_mode, padding):
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    ours = pad(x.permute(0, 2, 3, 1), padding, padding_mode, channels_last=True).permute(0, 3, 1, 2)
    assert torch.equal(ours, F.pad(x, (padding, ) * 4, mode=padding_mode))


@pytest.mark.parametrize('padding_mode, padding', [('circular', 6), ('reflect', 5)])
def test_too_large_padding_names_the_sizes(padding_mode, padding):
    with pytest.raises(ValueError, match=f'padding={padding}.*5x6'):
        pad(torch.zeros(1, 1, 5, 6), padding, padding_mode)
