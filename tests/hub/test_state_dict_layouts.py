"""The one reader of checkpoint layouts (``hub.state_dicts``): a file saved from (Distributed)DataParallel has every
key prefixed ``module.``; every reader (``read_state_dict``, the converter's ``load_original_state_dict``, BasicSR's
``load_network`` through the compat fix) must strip it, or the weights do not load into the bare network."""
import pytest
import torch
from torch import nn

from converse_basicsr.hub.state_dicts import ZooError, load_original_state_dict, read_state_dict, unwrap_state_dict


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 1, 3))


def _dataparallel(state):
    return {f'module.{k}': v for k, v in state.items()}


@pytest.mark.parametrize('wrap', ['plain', 'params', 'params_ema'])
def test_dataparallel_prefixes_are_stripped_in_every_layout(wrap):
    state = _net().state_dict()
    prefixed = _dataparallel(state)
    checkpoint = prefixed if wrap == 'plain' else {wrap: prefixed}
    unwrapped = unwrap_state_dict(checkpoint)
    assert list(unwrapped) == list(state)
    assert all(torch.equal(unwrapped[k], state[k]) for k in state)


def test_a_key_that_only_contains_module_is_kept():
    state = {'module.a': torch.zeros(1), 'submodule.b': torch.ones(1)}  # not all prefixed: a real module name
    assert list(unwrap_state_dict(state)) == ['module.a', 'submodule.b']


def test_dataparallel_file_loads_into_the_bare_network(tmp_path):
    source, target = _net(), nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 1, 3))
    torch.save({'params': _dataparallel(source.state_dict())}, tmp_path / 'dp.pth')
    target.load_state_dict(read_state_dict(tmp_path / 'dp.pth'), strict=True)
    x = torch.rand(1, 1, 8, 8)
    assert torch.equal(target(x), source(x))


def test_converter_loader_reads_a_dataparallel_checkpoint(tmp_path):
    source, target = _net(), nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 1, 3))
    torch.save(_dataparallel(source.state_dict()), tmp_path / 'dp.pth')
    result = load_original_state_dict(target, tmp_path / 'dp.pth')
    assert result.new_keys == [] and result.dropped_keys == []
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), source.state_dict().values()))


def test_a_file_of_no_tensors_names_the_file(tmp_path):
    torch.save({'params': {'module.w': 3}}, tmp_path / 'numbers.pth')
    with pytest.raises(ZooError, match='numbers.pth'):
        read_state_dict(tmp_path / 'numbers.pth')
