"""The test pipeline: KernelSRModel, checkpoint loading, the entry point, and the paper's numbers.

The acceptance checks run the shipped configs (options/test) through ``converse_basicsr.test.main``
on a subset in CI (the models are slow on CPU) and on every image behind ``-m slow``.
"""
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from basicsr.data import build_dataset
from basicsr.models import build_model
from converse_basicsr import test as entry
from tests.helpers.shared_files import REPO_ROOT, shared_path, shared_root

TINY_USRNET = dict(type='ConverseUSRNet', num_feat=8, num_block=1, num_iter=1)


def model_opt(network_g, model_type='SRModel', is_train=False, scale=1, **path):
    opt = dict(name='t', model_type=model_type, scale=scale, num_gpu=0, is_train=is_train, dist=False, rank=0,
               world_size=1, network_g=network_g, path=dict({'pretrain_network_g': None}, **path))
    if is_train:
        opt['train'] = dict(ema_decay=0.5, optim_g=dict(type='Adam', lr=1e-2),
                            scheduler=dict(type='MultiStepLR', milestones=[100],
                                           gamma=0.5), pixel_opt=dict(type='L1Loss', loss_weight=1.0, reduction='mean'))
    return opt


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('images')
    rng = np.random.RandomState(0)
    for name in ('p.png', 'q.png'):
        cv2.imwrite(str(folder / name), cv2.GaussianBlur(rng.randint(0, 256, (24, 32, 3), dtype=np.uint8), (5, 5), 2))
    np.save(folder / 'k.npy', np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.)
    return folder


def batch(dataset, indices):
    samples = [dataset[i] for i in indices]
    return {key: torch.stack([s[key] for s in samples]) for key in ('lq', 'gt', 'kernel')}


def test_kernel_sr_model_trains_and_tests_with_kernel(image_folder):
    torch.manual_seed(0)
    model = build_model(model_opt(dict(TINY_USRNET, kernel_size=5), 'KernelSRModel', is_train=True))
    train_set = build_dataset(
        dict(name='train', type='BlurKernelDataset', phase='train', dataroot_gt=str(image_folder), gt_size=16,
             kernel_size=5))
    np.random.seed(0)
    data = batch(train_set, [0, 1])
    assert data['kernel'].shape == (2, 1, 5, 5)
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data(data)
    model.optimize_parameters(1)
    assert np.isfinite(model.log_dict['l_pix'])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    model.test()  # with EMA, testing uses net_g_ema(lq, kernel, sf)
    with torch.no_grad():
        expected = model.net_g_ema(data['lq'], data['kernel'], 1)
    torch.testing.assert_close(model.output, expected, rtol=0, atol=0)
    model.kernel = torch.roll(data['kernel'], 1, dims=-1)
    first = model.output
    model.test()
    assert not torch.allclose(model.output, first)  # the kernel reaches the network
    with pytest.raises(KeyError, match='kernel'):
        model.feed_data({'lq': data['lq'], 'gt': data['gt']})


def test_kernel_sr_model_passes_scale():
    model = build_model(model_opt(TINY_USRNET, 'KernelSRModel', scale=2))
    model.feed_data({'lq': torch.rand(1, 3, 8, 12), 'kernel': torch.ones(1, 1, 7, 7) / 49})
    model.test()
    assert model.output.shape == (1, 3, 16, 24)


def test_plain_state_dict_loads_and_mismatch_lists_keys(tmp_path):
    network = dict(type='ConverseDnCNN', num_feat=8, num_block=1)
    torch.manual_seed(0)
    source = build_model(model_opt(network)).net_g
    plain = tmp_path / 'plain.pth'
    torch.save(source.state_dict(), plain)
    model = build_model(model_opt(network, pretrain_network_g=str(plain), param_key_g=None))
    for a, b in zip(source.state_dict().values(), model.net_g.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    state = source.state_dict()
    first = next(iter(state))
    state['extra.weight'] = state.pop(first)
    bad = tmp_path / 'bad.pth'
    torch.save(state, bad)
    expected = rf'(?s)Missing key\(s\).*{re.escape(first)}.*Unexpected key\(s\).*extra.weight'
    with pytest.raises(RuntimeError, match=expected):
        build_model(model_opt(network, pretrain_network_g=str(bad), param_key_g=None))


def test_entry_point_end_to_end(image_folder, tmp_path):
    """``python -m converse_basicsr.test`` on a tiny config: log, results, CSVs, optional slot skipped."""
    kernel = str(image_folder / 'k.npy')
    blur = dict(type='BlurKernelDataset', dataroot_gt=str(image_folder), io_backend={'type': 'disk'})
    opt = dict(
        name='tiny', model_type='KernelSRModel', scale=1, num_gpu=0, manual_seed=0, datasets=dict(
            test_1=dict(blur, name='one_kernel', kernel_path=kernel), test_2=dict(blur, name='two_kernels',
                                                                                  kernel_path=[kernel, kernel]),
            test_3=dict(blur, name='absent', dataroot_gt=str(tmp_path / 'nowhere'), optional=True, kernel_path=kernel)),
        network_g=dict(TINY_USRNET, kernel_size=5), path=dict(pretrain_network_g=None), val=dict(
            save_img=True, suffix=None, metrics=dict(
                psnr=dict(type='calculate_psnr', crop_border=1, test_y_channel=False),
                ssim=dict(type='calculate_ssim', crop_border=1, test_y_channel=False))))
    config = tmp_path / 'tiny.yml'
    config.write_text(yaml.safe_dump(opt))
    run = subprocess.run([sys.executable, '-m', 'converse_basicsr.test', '-opt',
                          str(config)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'skipping optional datasets that are not present: absent' in run.stderr
    results = tmp_path / 'results' / 'tiny'
    log = next(results.glob('test_tiny_*.log')).read_text()
    rows = {
        name: list(csv.DictReader(open(results / f'per_image_{name}.csv')))
        for name in ('one_kernel', 'two_kernels')
    }
    assert [r['image'] for r in rows['one_kernel']] == ['p.png', 'q.png']
    assert [r['image'] for r in rows['two_kernels']] == ['p_k.png', 'q_k.png'] * 2
    for name, dataset_rows in rows.items():
        logged = re.search(rf'Validation {name}\n\s+# psnr: ([\d.]+).*\n\s+# ssim: ([\d.]+)', log)
        assert logged, log[-2000:]
        for column, value in zip(('psnr', 'ssim'), logged.groups()):
            assert abs(np.mean([float(r[column]) for r in dataset_rows]) - float(value)) < 1e-4
    assert len(list((results / 'visualization' / 'one_kernel').glob('*.png'))) == 2
    assert 'absent' not in log.split('Testing')[-1]


def test_missing_required_dataroot_is_an_error(tmp_path, monkeypatch):
    opt = yaml.safe_load((REPO_ROOT / 'options/test/test_converse_dncnn_sigma25.yml').read_text())
    opt['datasets']['test_1']['dataroot_gt'] = str(tmp_path / 'no_such_set')
    config = tmp_path / 'c.yml'
    config.write_text(yaml.safe_dump(opt))
    monkeypatch.chdir(tmp_path)
    with pytest.raises((FileNotFoundError, ValueError), match='dataroot_gt.*no_such_set'):  # ValueError: OptionError
        entry.run(['-opt', str(config)])


# ---- the paper's numbers, through the shipped configs -------------------------------------------


@pytest.fixture(scope='module')
def tables():
    return json.loads(shared_path('reference', 'paper_tables.json').read_text())


def run_shipped_config(config, tmp_path, monkeypatch, datasets=None, images=None):
    """Run ``options/test/<config>`` with ../shared resolved through ``shared_path``, keeping the dataset
    entries named in ``datasets`` (default all present) and the ``images`` (default all); per-image rows."""
    shared_path('testsets'), shared_path('reference')
    text = (REPO_ROOT / 'options' / 'test' / config).read_text().replace('../shared', str(shared_root()))
    opt = yaml.safe_load(text)
    opt['num_gpu'] = 0
    opt['datasets'] = {k: v for k, v in opt['datasets'].items() if datasets is None or v['name'] in datasets}
    if images:
        (tmp_path / 'meta_info.txt').write_text('\n'.join(images) + '\n')
        for entry_opt in opt['datasets'].values():
            entry_opt['meta_info'] = str(tmp_path / 'meta_info.txt')
    path = tmp_path / config
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    csv_files = entry.run(['-opt', str(path)])
    return {
        Path(f).stem[len('per_image_'):]: {
            r['image']: {k: float(v)
                         for k, v in r.items() if k != 'image'}
            for r in csv.DictReader(open(f))
        }
        for f in csv_files
    }


def check_against_reference(measured, reference, key, mean=None, images=None, ssim_key=None):
    """Every image asked for (``images``, default every reference image) is measured, each within 0.01 dB of
    the published code's PSNR (and, given ``ssim_key``, within 2e-4 of its SSIM, which is rounded to 4 decimals)."""
    assert set(measured) == set(images or reference), (sorted(measured), images)
    for image, values in measured.items():
        assert abs(values['psnr'] - reference[image][key]) < 0.01, (image, values['psnr'], reference[image][key])
        if ssim_key:
            ssim = reference[image][ssim_key]
            assert abs(values['ssim'] - ssim) < 2e-4, (image, values['ssim'], ssim)
    if mean is not None:
        assert abs(np.mean([v['psnr'] for v in measured.values()]) - mean) < 0.005


def test_check_against_reference_needs_every_image_asked_for():
    reference = {'a.png': {'psnr': 30.0, 'ssim': 0.9}, 'b.png': {'psnr': 31.0, 'ssim': 0.8}}
    check_against_reference({'a.png': {'psnr': 30.004, 'ssim': 0.9001}}, reference, 'psnr', images=['a.png'],
                            ssim_key='ssim')
    for measured in ({}, {'b.png': {'psnr': 31.0, 'ssim': 0.8}}):  # nothing, or another image, measured
        with pytest.raises(AssertionError):
            check_against_reference(measured, reference, 'psnr', images=['a.png'])
    with pytest.raises(AssertionError):  # SSIM off by 1e-3
        check_against_reference({'a.png': {'psnr': 30.0, 'ssim': 0.901}}, reference, 'psnr', images=['a.png'],
                                ssim_key='ssim')


def denoising(tables, tmp_path, monkeypatch, images=None):
    measured = run_shipped_config('test_converse_dncnn_sigma25.yml', tmp_path, monkeypatch, ['Set12'], images)
    part = tables['denoising_sigma25_gray']
    mean = None if images else part['reference_mean']['Converse-DnCNN']['Set12']
    check_against_reference(measured['Set12'], part['reference_per_image']['Converse-DnCNN']['Set12'], 'psnr', mean,
                            images, ssim_key='ssim')


def super_resolution(tables, tmp_path, monkeypatch, datasets):
    measured = run_shipped_config('test_converse_srresnet_x4.yml', tmp_path, monkeypatch, datasets)
    part = tables['sr_x4_y_channel']
    for name in datasets:
        check_against_reference(measured[name], part['reference_per_image']['Converse-SRResNet'][name], 'psnr_y',
                                part['reference_mean_basicsr_metric']['Converse-SRResNet'][name], ssim_key='ssim_y')


def deblurring(tables, tmp_path, monkeypatch, config, model, kernels, images=None):
    names = [f'CBSD68_4_kernel_{k}' for k in kernels]
    measured = run_shipped_config(config, tmp_path, monkeypatch, names, images)
    reference = tables['deblurring_sigma2.55']['reference_per_image']['CBSD68_4'][model]['per_kernel']
    assert set(measured) == set(names)
    for k, name in zip(kernels, names):
        per_image = {img: {'psnr': v} for img, v in reference[f'kernel_{k}']['per_image'].items()}
        check_against_reference(measured[name], per_image, 'psnr', None if images else reference[f'kernel_{k}']['mean'],
                                images)


def test_denoising_set12_subset(tables, tmp_path, monkeypatch):
    denoising(tables, tmp_path, monkeypatch, images=['07.png'])


def test_super_resolution_set5(tables, tmp_path, monkeypatch):
    super_resolution(tables, tmp_path, monkeypatch, ['Set5'])


def test_deblurring_conversenet_subset(tables, tmp_path, monkeypatch):
    deblurring(tables, tmp_path, monkeypatch, 'test_conversenet_deblur.yml', 'ConverseNet', [2], ['102061.png'])


def test_deblurring_converse_usrnet_subset(tables, tmp_path, monkeypatch):
    deblurring(tables, tmp_path, monkeypatch, 'test_converse_usrnet_deblur.yml', 'Converse-USRNet', [4], ['101087.png'])


@pytest.mark.slow
def test_denoising_set12_full(tables, tmp_path, monkeypatch):
    denoising(tables, tmp_path, monkeypatch)


@pytest.mark.slow
def test_super_resolution_set5_set14_full(tables, tmp_path, monkeypatch):
    super_resolution(tables, tmp_path, monkeypatch, ['Set5', 'Set14'])


@pytest.mark.slow
@pytest.mark.parametrize('config,model', [('test_conversenet_deblur.yml', 'ConverseNet'),
                                          ('test_converse_usrnet_deblur.yml', 'Converse-USRNet')])
def test_deblurring_cbsd68_4_full(tables, tmp_path, monkeypatch, config, model):
    deblurring(tables, tmp_path, monkeypatch, config, model, [1, 2, 3, 4, 5])


def test_reproduce_tables_no_run_tabulates_any_config(tables, tmp_path):
    """``scripts/reproduce_tables.py --no-run`` on a shipped config and on a config it has never seen."""
    reference = tables['denoising_sigma25_gray']['reference_per_image']['Converse-DnCNN']['Set12']
    results = tmp_path / 'results' / 'test_ConverseDnCNN_sigma25'
    results.mkdir(parents=True)
    shifted = {'01.png': 0.003, '02.png': -0.001}  # measured = reference + shift
    rows = [
        f"{img},{reference[img]['psnr'] + d:.6f},{reference[img]['ssim'] - d / 10:.6f}" for img, d in shifted.items()
    ]
    (results / 'per_image_Set12.csv').write_text('image,psnr,ssim\n' + '\n'.join(rows) + '\n')
    custom = yaml.safe_load((REPO_ROOT / 'options/test/test_converse_dncnn_sigma25.yml').read_text())
    custom.update(name='my_model', network_g=dict(custom['network_g'], operator='conv'))
    custom['datasets'] = {'test_1': dict(custom['datasets']['test_1'], name='MyPhotos')}
    (tmp_path / 'custom.yml').write_text(yaml.safe_dump(custom))
    (tmp_path / 'results' / 'my_model').mkdir()
    (tmp_path / 'results' / 'my_model' /
     'per_image_MyPhotos.csv').write_text('image,psnr,ssim\na.png,20.5,0.5\nb.png,21.5,0.7\n')
    run = subprocess.run([
        sys.executable,
        str(REPO_ROOT / 'scripts' / 'reproduce_tables.py'), '--no-run', '--tables',
        str(shared_path('reference', 'paper_tables.json')), 'options/test/test_converse_dncnn_sigma25.yml',
        str(tmp_path / 'custom.yml')
    ], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = {line.split(' | ')[1]: line for line in run.stdout.splitlines() if line.startswith('| ') and ' | ' in line}
    mean = np.mean([reference[img]['psnr'] + d for img, d in shifted.items()])
    expected = f'| Converse-DnCNN | Set12 | 2 | 30.70 | 30.6986 | {mean:.4f} |'
    assert lines['Set12'].startswith(expected), lines['Set12']
    assert lines['Set12'].endswith('| 0.0030 | 0.0003 |'), lines['Set12']  # worst PSNR and SSIM differences
    assert lines['MyPhotos'] == '| my_model | MyPhotos | 2 | — | — | 21.0000 | 0.6000 | — | — |'
