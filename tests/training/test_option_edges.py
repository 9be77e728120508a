"""Edges of the training option checks (``training/basicsr_keys.py``, ``training/option_checks.py``) that the
recipe tests leave open: a TCP port and ``ema_decay`` keep to their ranges, a dataroot of an ``optional: true``
entry may be missing while any other may not, a pretrained network must be a file, an error found twice (as the
dataset's option and as BasicSR's loader key) is reported once, and ``converse-test``'s check says how many
dataroots are missing beyond the one it names; a dataset's ``name`` and ``val.suffix`` follow the folder-name rule,
and a truncated LMDB is named whichever dataroot it is."""
import os

import pytest
import yaml

from converse_basicsr.training.basicsr_keys import basicsr_key_errors, dataroot_errors
from converse_basicsr.training.option_checks import (OptionError, check_color_channels, check_option_file,
                                                     check_options, folder_name_errors, input_file_errors)


def test_a_port_is_at_most_65535():
    assert basicsr_key_errors({'name': 'x', 'dist_params': {'backend': 'gloo', 'port': 65535}}, False) == []
    assert basicsr_key_errors({'name': 'x', 'dist_params': {'backend': 'gloo', 'port': 65536}},
                              False) == ['dist_params.port must be an integer in [1, 65535], got 65536 (int)']


def test_ema_decay_is_a_fraction():
    assert basicsr_key_errors({'name': 'x', 'train': {'ema_decay': 0.999}}, False) == []
    assert basicsr_key_errors({'name': 'x', 'train': {'ema_decay': 1.5}},
                              False) == ['train.ema_decay must be a number in [0, 1], got 1.5 (float)']


def test_only_an_optional_entry_may_miss_its_dataroot(tmp_path):
    missing = str(tmp_path / 'absent')
    datasets = {'test_1': {'dataroot_gt': missing, 'optional': True}, 'test_2': {'dataroot_gt': missing}}
    errors = dataroot_errors({'datasets': datasets})
    assert len(errors) == 1 and errors[0].startswith(f'datasets.test_2.dataroot_gt: {missing!r} does not exist')


def test_a_pretrained_network_that_is_a_folder_is_named(tmp_path):
    errors = dataroot_errors({'path': {'pretrain_network_g': str(tmp_path)}})
    assert len(errors) == 1 and errors[0].startswith(f'path.pretrain_network_g: {str(tmp_path)!r} is not a file')


def test_an_error_found_by_two_checks_is_one_line():
    opt = {
        'name': 'x', 'model_type': 'SRModel', 'network_g': {'type': 'ConverseDnCNN'}, 'datasets': {
            'train': {'name': 't', 'type': 'GaussianNoiseDataset', 'dataroot_gt': 'a', 'batch_size_per_gpu': '2'}
        }
    }
    with pytest.raises(OptionError) as refused:
        check_options(opt, 'f.yml', is_train=False)
    assert str(refused.value) == "f.yml: datasets.train.batch_size_per_gpu must be an integer, got '2' (str)"


def test_converse_test_counts_the_missing_dataroots_it_does_not_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    entry = {'type': 'GaussianNoiseDataset', 'color': 'gray', 'sigma': 25}
    opt = {
        'name': 'x', 'model_type': 'SRModel', 'network_g': {'type': 'ConverseDnCNN'},
        'datasets': {f'test_{n}': dict(entry, name=f'set{n}', dataroot_gt=f'absent{n}')
                     for n in (1, 2, 3)}
    }
    config = tmp_path / 'test.yml'
    config.write_text(yaml.safe_dump(opt))
    with pytest.raises(OptionError) as refused:
        check_option_file(str(config))
    message = str(refused.value)
    assert message.startswith(f"{config}: datasets.test_1.dataroot_gt: 'absent1' does not exist")
    assert '(and 2 more); run from a folder where these paths exist' in message


def test_dataset_names_and_the_result_suffix_stay_inside_their_folder():
    opt = {'name': 'x', 'datasets': {'val': {'name': '../val'}}, 'val': {'suffix': 'a/b'}}
    errors = folder_name_errors(opt)
    assert len(errors) == 2, errors
    assert errors[0].startswith('datasets.val.name must be a folder name') and "got '../val'" in errors[0]
    assert errors[1].startswith('val.suffix must be a folder name') and "got 'a/b'" in errors[1]


def _lmdb(folder, pages=8):
    """An LMDB of a few values, each larger than a page (so a truncation cuts data pages off)."""
    import lmdb
    env = lmdb.open(str(folder), map_size=1 << 22)
    with env.begin(write=True) as txn:
        for i in range(pages):
            txn.put(f'{i}'.encode(), bytes([i]) * 8192)
    env.close()
    return folder


@pytest.mark.parametrize('key', ['dataroot_gt', 'dataroot_lq'])
def test_a_truncated_lmdb_is_named_for_either_dataroot(tmp_path, key):
    good, cut = _lmdb(tmp_path / 'good.lmdb'), _lmdb(tmp_path / 'cut.lmdb')
    data = cut / 'data.mdb'
    os.truncate(data, os.path.getsize(data) // 2)
    other = 'dataroot_lq' if key == 'dataroot_gt' else 'dataroot_gt'
    dataset = {'io_backend': {'type': 'lmdb'}, key: str(cut), other: str(good)}
    errors = input_file_errors({'datasets': {'train': dataset}})
    assert len(errors) == 1 and errors[0].startswith(f"datasets.train.{key}: LMDB '{data}' is truncated"), errors
    dataset['io_backend'] = {'type': 'disk'}  # read as image folders: not an LMDB's business
    assert input_file_errors({'datasets': {'train': dataset}}) == []


@pytest.mark.parametrize('color, channels, advice', [
    ('gray', 3, 'set datasets.train.color: rgb or network_g.num_in_ch: 1'),
    ('rgb', 1, 'set datasets.train.color: gray or network_g.num_in_ch: 3'),
])
def test_a_colour_mismatch_advises_the_colour_that_fits_the_network(color, channels, advice):
    opt = {
        'network_g': {'type': 'ConverseDnCNN', 'num_in_ch': channels},
        'datasets': {'train': {'type': 'GaussianNoiseDataset', 'color': color}}
    }
    with pytest.raises(OptionError) as refused:
        check_color_channels(opt)
    assert str(refused.value).endswith(advice)
