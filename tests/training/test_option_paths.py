"""A ``paths`` option (``kernel_path``) takes a path or a list of paths, nothing else: ``kernel_path: [1, 2]`` is
refused by converse-train before anything is built, naming the key. And a number YAML reads as a string
(``4e0``) is refused under ``train``/``val``/``logger`` even for keys the checker has no kind for."""
import cv2
import numpy as np
import pytest
import yaml

from converse_basicsr import train
from converse_basicsr.training.option_checks import OptionError, check_options


def blur_options(root, kernel_path):
    (root / 'gt').mkdir(exist_ok=True)
    cv2.imwrite(str(root / 'gt' / 'a.png'), np.full((16, 16, 3), 100, np.uint8))
    return dict(
        name='paths', model_type='SRModel', num_gpu=0, manual_seed=0, datasets=dict(
            train=dict(name='t', type='BlurKernelDataset', dataroot_gt=str(root / 'gt'), kernel_path=kernel_path,
                       gt_size=8, batch_size_per_gpu=1, num_worker_per_gpu=0)),
        network_g=dict(type='ConverseNet', num_feat=8), path={}, train=dict(
            optim_g=dict(type='Adam', lr=1e-3), scheduler=dict(type='MultiStepLR', milestones=[10], gamma=0.5),
            total_iter=1, pixel_opt=dict(type='L1Loss', loss_weight=1.0)), logger=dict(print_freq=1))


@pytest.mark.parametrize('bad', [[1, 2], ['k.npy', 3], 7, {'a': 'k.npy'}])
def test_check_options_refuses_non_path_values(tmp_path, bad):
    with pytest.raises(OptionError, match=r'datasets\.train\.kernel_path must be a path or a list of paths'):
        check_options(blur_options(tmp_path, bad), 'blur.yml')


@pytest.mark.parametrize('good', ['k.npy', ['a.npy', 'b'], []])
def test_check_options_accepts_paths(tmp_path, good):
    check_options(blur_options(tmp_path, good), 'blur.yml')


def test_train_exits_2_naming_the_key(tmp_path, monkeypatch, capsys):
    config = tmp_path / 'blur.yml'
    config.write_text(yaml.safe_dump(blur_options(tmp_path, [1, 2]), sort_keys=False))
    monkeypatch.chdir(tmp_path)
    assert train.main(['-opt', str(config)]) == 2
    err = capsys.readouterr().err
    assert f'converse-train: error: {config}: datasets.train.kernel_path must be a path or a list of paths' in err
    assert 'datasets.train.kernel_path must be a path or a list of paths, got [1, 2] (list)' in err
    assert 'Traceback' not in err and not (tmp_path / 'experiments').exists()


def test_a_number_read_as_a_string_under_val_is_named(tmp_path):
    opt = blur_options(tmp_path, 'k.npy')
    opt['val'] = {'val_freq': 10, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': '4e0'}}}
    with pytest.raises(OptionError, match=r"val\.metrics\.psnr\.crop_border must be an integer, got '4e0' \(str\)"):
        check_options(opt, 'blur.yml')
    opt['val']['metrics']['psnr']['crop_border'] = 4
    check_options(opt, 'blur.yml')
