"""The minimum input size is one rule (``ops/padding.py``): the operator, spandrel's descriptors and the
exported file's ``converse.min_size`` give the same answer for every padding mode."""
import json

import pytest
import torch

from converse_basicsr.export import exporter
from converse_basicsr.hub import spandrel_arches
from converse_basicsr.ops import PADDING_MODES, Converse2D
from converse_basicsr.ops.padding import min_size


def _smallest_f_pad_accepts(padding, mode):
    """PyTorch's own answer: the smallest square size ``F.pad`` pads in ``mode`` (the truth, not our rule)."""
    for n in range(1, padding + 3):
        try:
            torch.nn.functional.pad(torch.zeros(1, 1, n, n), (padding, ) * 4, mode=mode)
            return n
        except (RuntimeError, ValueError):
            continue
    raise AssertionError(f'F.pad refuses every size up to {padding + 2}')


@pytest.mark.parametrize('padding', [0, 1, 3])
@pytest.mark.parametrize('mode', PADDING_MODES)
def test_operator_spandrel_and_export_agree(mode, padding):
    truth = _smallest_f_pad_accepts(padding, mode)
    assert {'circular': max(1, padding), 'reflect': padding + 1}.get(mode, 1) == truth  # the rule as stated
    assert min_size(padding, mode) == truth
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), Converse2D(2, 2, 3, 1, padding, mode)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, truth, truth + 1)).shape[-2:] == (truth, truth + 1)  # runs at the minimum
        if truth > 1:
            with pytest.raises(ValueError, match=f'at least {truth}x{truth}'):
                model(torch.rand(1, 3, truth - 1, truth + 1))
    assert spandrel_arches.min_input_size(model) == truth  # size_requirements.minimum
    meta = exporter.metadata(model, 3, 2, 1, 0, ['input'])
    assert json.loads(meta[exporter.METADATA_PREFIX + 'min_size']) == truth


def test_the_largest_layer_rule_wins():
    layers = [Converse2D(2, 2, 3, 1, 4, 'circular'), Converse2D(2, 2, 3, 1, 3, 'reflect'), Converse2D(2, 2, 3, 1, 6)]
    model = torch.nn.Sequential(*layers[:2])
    assert spandrel_arches.min_input_size(model) == 4
    assert spandrel_arches.min_input_size(torch.nn.Sequential(*layers)) == 6  # circular 6 (the default mode)
    assert spandrel_arches.min_input_size(torch.nn.Conv2d(3, 3, 3, padding=2, padding_mode='circular')) == 1
