"""converse-train's option edges: a zero for any frequency or ratio BasicSR divides by, and the colour rule for the
datasets whose images are RGB unless ``color`` says otherwise, each exit status 2 naming the key, before anything
is built."""
import cv2
import numpy as np
import pytest
import yaml

from converse_basicsr import train
from converse_basicsr.data.blur_dataset import BlurKernelDataset
from converse_basicsr.data.noise_dataset import GaussianNoiseDataset


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    rng = np.random.RandomState(0)
    for i in range(2):
        cv2.imwrite(str(folder / f'{i}.png'), rng.randint(0, 256, (24, 24, 3), dtype=np.uint8))
    np.save(tmp_path / 'kernel.npy', np.full((7, 7), 1 / 49, np.float32))
    return folder


def _options(images, **train_dataset):
    dataset = dict(name='t', type='GaussianNoiseDataset', dataroot_gt=str(images), color='gray', sigma=25, gt_size=16,
                   batch_size_per_gpu=2, num_worker_per_gpu=0)
    dataset.update(train_dataset)
    return {
        'name': 'edges', 'model_type': 'SRModel', 'num_gpu': 0, 'manual_seed': 0, 'datasets': {
            'train': dataset, 'val': dict(name='v', type='GaussianNoiseDataset', dataroot_gt=str(images), color='gray',
                                          sigma=25)
        }, 'network_g': {'type': 'ConverseDnCNN', 'num_in_ch': 1, 'num_feat': 4, 'num_block': 1}, 'path': {}, 'train': {
            'optim_g': {'type': 'Adam',
                        'lr': 1.0e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
            'total_iter': 1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}
        }, 'val': {'val_freq': 5, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 5, 'use_tb_logger': False}
    }


def _train(tmp_path, opt, monkeypatch, capsys):
    config = tmp_path / 'edges.yml'
    config.write_text(yaml.safe_dump(opt))
    monkeypatch.chdir(tmp_path)
    status = train.main(['-opt', str(config)])
    return status, capsys.readouterr().err


@pytest.mark.parametrize('where', [('val', 'val_freq'), ('logger', 'print_freq'), ('logger', 'save_checkpoint_freq'),
                                   ('datasets', 'train', 'dataset_enlarge_ratio')])
def test_a_zero_that_basicsr_divides_by_is_an_option_error(tmp_path, images, monkeypatch, capsys, where):
    opt = _options(images)
    target = opt
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = 0
    status, err = _train(tmp_path, opt, monkeypatch, capsys)
    assert status == 2 and f'{".".join(where)} must be' in err, err
    assert 'Traceback' not in err and not (tmp_path / 'experiments').exists()


def test_the_options_above_are_otherwise_accepted(tmp_path, images):
    """The base options pass the checks: the errors above come from the zeros alone."""
    from converse_basicsr.training.option_checks import check_color_channels, check_options
    opt = _options(images)
    check_options(opt, 'edges.yml')
    check_color_channels(opt)


@pytest.mark.parametrize('dataset', [GaussianNoiseDataset, BlurKernelDataset])
def test_datasets_without_color_deliver_rgb(images, dataset):
    """What the colour rule assumes for the package's datasets: without ``color``, a sample is 3-channel."""
    opt = dict(name='t', type=dataset.__name__, dataroot_gt=str(images), phase='train', gt_size=16, sigma=5,
               kernel_path=str(images.parent / 'kernel.npy'))
    if dataset is GaussianNoiseDataset:
        del opt['kernel_path']
    assert dataset(opt)[0]['gt'].shape[0] == 3


@pytest.mark.parametrize('dataset, extra', [
    ('GaussianNoiseDataset', {}),
    ('BicubicDownsampleDataset', {'scale': 2}),
    ('BlurKernelDataset', {'kernel_path': 'kernel.npy'}),
    ('PairedImageDataset', {'dataroot_lq': 'images', 'io_backend': {'type': 'disk'}, 'scale': 1}),
])
def test_rgb_by_default_datasets_need_color_for_a_gray_network(tmp_path, images, monkeypatch, capsys, dataset, extra):
    extra = {k: str(tmp_path / v) if k in ('kernel_path', 'dataroot_lq') else v for k, v in extra.items()}
    opt = _options(images)
    opt['datasets']['train'] = {k: v for k, v in opt['datasets']['train'].items() if k not in ('color', 'sigma')}
    opt['datasets']['train'].update(type=dataset, **extra)
    status, err = _train(tmp_path, opt, monkeypatch, capsys)
    assert status == 2, err
    assert "datasets.train.color is 'rgb' (3-channel images) but network_g.num_in_ch is 1" in err
