"""converse-test's evaluation helpers at their edges, without running a model: optional test sets (a ``~``
folder, every set absent), where BasicSR's validation saved a result (with and without ``val.suffix``), and the
per-image CSV files when results were not saved."""
import os
import re

import pytest
import yaml

from converse_basicsr.evaluation import protocols


def _opt(**datasets):
    return {'name': 'run', 'datasets': datasets}


def test_an_optional_set_under_home_is_found_through_the_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    (tmp_path / 'sets' / 'Mine').mkdir(parents=True)
    opt = _opt(test_1={'name': 'Mine', 'dataroot_gt': '~/sets/Mine', 'optional': True},
               test_2={'name': 'Gone', 'dataroot_gt': '~/sets/Gone', 'optional': True})
    assert protocols.drop_absent_optional_datasets(opt) == ['Gone (~/sets/Gone)']
    assert list(opt['datasets']) == ['test_1']


def test_every_optional_set_absent_is_an_error_naming_them(tmp_path):
    config = tmp_path / 'c.yml'
    config.write_text(yaml.safe_dump(_opt(test_1={'name': 'A', 'dataroot_gt': str(tmp_path / 'a'), 'optional': True})))
    with pytest.raises(FileNotFoundError, match=re.escape(f"A ({tmp_path / 'a'})")):
        protocols.load_present_datasets(str(config))


def test_a_present_set_leaves_the_options_file_as_it_is(tmp_path):
    (tmp_path / 'a').mkdir()
    config = tmp_path / 'c.yml'
    config.write_text(yaml.safe_dump(_opt(test_1={'name': 'A', 'dataroot_gt': str(tmp_path / 'a')})))
    opt, run_file = protocols.load_present_datasets(str(config))
    assert run_file == str(config) and 'skipped_datasets' not in opt


def test_the_result_path_is_the_one_basicsr_validation_saves():
    """BasicSR's SRModel saves ``visualization/<dataset>/<image stem>_<val.suffix or name>.png`` when testing."""
    opt = {'name': 'exp', 'val': {'suffix': None}, 'path': {'visualization': '/v'}}
    assert protocols.result_image_path(opt, 'Set5',
                                       '/data/lq/baby.x4.png') == os.path.join('/v', 'Set5', 'baby.x4_exp.png')
    opt['val']['suffix'] = 'ours'
    assert protocols.result_image_path(opt, 'Set5', 'baby.png') == os.path.join('/v', 'Set5', 'baby_ours.png')


def test_no_per_image_csv_without_saved_results(tmp_path):
    """``val.save_img: false``: nothing saved to measure, so no CSV (a warning), rather than a missing-file error."""
    opt = {
        'name': 'run', 'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}},
        'path': {'log': str(tmp_path / 'log'), 'visualization': str(tmp_path / 'vis')},
        'datasets': {'test_1': {'name': 'A', 'type': 'NoSuchDataset'}}
    }
    assert protocols.write_per_image_csv(opt) == []
    assert not (tmp_path / 'log').exists()
    opt['val'] = {'save_img': True}  # no metrics: nothing to measure either
    assert protocols.write_per_image_csv(opt) == []
