"""The training entry point's checks before anything is built (unknown keys, values of the wrong kind),
``--check-data``, ``num_gpu: auto``, and the memory policy of every entry point."""
import glob
import os
import subprocess
import sys
import textwrap
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml

import basicsr.train
from converse_basicsr import train
from converse_basicsr.training.option_checks import OptionError, check_options, load_options

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# Written as text: YAML itself must read ``2e-3`` (no decimal point) as a string, as it does in a user's file.
BAD_CONFIG = '''
name: bad_options
model_type: SRModel
num_gpu: 0
manual_seed: 0
datasets:
  train:
    name: t
    type: GaussianNoiseDataset
    dataroot_gt: {root}
    color: gray
    sigma_range: [5, 50]
    noise_sed: 3
    gt_size: 8
    batch_size_per_gpu: 2
    num_worker_per_gpu: 0
network_g:
  type: ConverseDnCNN
  num_feat: '16'
  num_blocks: 2
path: {{}}
train:
  optim_g: {{type: Adam, lr: 2e-3}}
  scheduler: {{type: MultiStepLR, milestones: [10], gamma: 0.5}}
  total_iter: 1
  pixel_opt: {{type: L1Loss, loss_weight: 1.0}}
logger: {{print_freq: 1, save_checkpoint_freq: 5e3, use_tb_logger: false}}
'''


def _images(folder, count=3, size=12, channels=1):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    for i in range(count):
        cv2.imwrite(str(folder / f'{i}.png'), rng.randint(0, 256, (size, size, channels), dtype=np.uint8))
    return folder


def test_bad_keys_and_kinds_are_errors_naming_file_key_and_kind(tmp_path, monkeypatch, capsys):
    config = tmp_path / 'bad.yml'
    config.write_text(BAD_CONFIG.format(root=_images(tmp_path / 'img')))
    monkeypatch.chdir(tmp_path)
    assert train.main(['-opt', str(config)]) == 2
    err = capsys.readouterr().err
    assert f'converse-train: error: {config}: 5 bad option(s)' in err
    assert ("datasets.train.noise_sed is not an option of GaussianNoiseDataset (did you mean 'noise_seed'?)" in err)
    assert "network_g.num_blocks is not an option of ConverseDnCNN (did you mean 'num_block'?)" in err
    assert "network_g.num_feat must be an integer, got '16' (str)" in err
    assert "train.optim_g.lr must be a number, got '2e-3' (str); YAML reads" in err and 'write 2.0e-3' in err
    assert "logger.save_checkpoint_freq must be a number, got '5e3' (str)" in err
    assert 'Traceback' not in err and not (tmp_path / 'experiments').exists()


@pytest.mark.parametrize('entry, value, message', [
    (('network_g', 'eps'), True, 'network_g.eps must be a number, got True (bool)'),
    (('datasets', 'train', 'sigma_range'), [5], 'datasets.train.sigma_range must be a list [lo, hi] of two numbers'),
    (('datasets', 'train', 'use_rot'), 'yes', "datasets.train.use_rot must be true or false, got 'yes'"),
    (('datasets', 'train', 'batch_size_per_gpu'), 2.5, 'datasets.train.batch_size_per_gpu must be an integer'),
    (('train', 'scheduler', 'milestones'), ['10'], "train.scheduler.milestones must be a list of numbers"),
    (('num_gpu', ), 'two', "num_gpu must be an integer or 'auto', got 'two'"),
])
def test_each_kind_is_checked(tmp_path, entry, value, message):
    opt = yaml.safe_load(BAD_CONFIG.format(root=tmp_path))
    del opt['datasets']['train']['noise_sed'], opt['network_g']['num_blocks']
    opt['network_g']['num_feat'], opt['train']['optim_g']['lr'], opt['logger']['save_checkpoint_freq'] = 16, 2e-3, 5
    check_options(opt, 'good.yml')  # the repaired file passes
    target = opt
    for key in entry[:-1]:
        target = target[key]
    target[entry[-1]] = value
    with pytest.raises(OptionError, match='^good.yml: [^\\n]*$') as error:  # one line
        check_options(opt, 'good.yml')
    assert message in str(error.value)


# every shipped option file: converse-compare's in options/compare/, BasicSR's everywhere else
ALL_CONFIGS = sorted(glob.glob(osp.join(REPO, 'options', '**', '*.yml'), recursive=True))
COMPARE_CONFIGS = [p for p in ALL_CONFIGS if f'{osp.sep}compare{osp.sep}' in p]
SHIPPED_CONFIGS = [p for p in ALL_CONFIGS if p not in COMPARE_CONFIGS]


def test_shipped_configs_cover_every_kind():
    folders = {osp.relpath(p, osp.join(REPO, 'options')).split(osp.sep)[0] for p in SHIPPED_CONFIGS}
    assert {'train', 'test'} <= folders and COMPARE_CONFIGS


@pytest.mark.parametrize('config', COMPARE_CONFIGS, ids=osp.basename)
def test_shipped_compare_configs_pass_the_compare_checks(config, monkeypatch):
    from converse_basicsr.evaluation.compare_options import check_compare_options
    monkeypatch.chdir(REPO)  # their paths are relative to the repository root, as the README runs them
    with open(config, encoding='utf-8') as f:
        check_compare_options(yaml.safe_load(f), config)


@pytest.mark.parametrize('config', SHIPPED_CONFIGS, ids=lambda p: osp.relpath(p, osp.join(REPO, 'options')))
def test_shipped_configs_pass_the_checks(config):
    check_options(load_options(config), config, is_train=f'{osp.sep}test{osp.sep}' not in config)


@pytest.fixture
def data_with_faults(tmp_path):
    """A folder with one corrupt and one empty image, and an LMDB whose meta_info lists a missing key."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    folder = _images(tmp_path / 'train', count=4)
    (folder / '1.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    (folder / '3.png').write_bytes(b'')
    good = _images(tmp_path / 'good', count=2, size=48)  # big enough for BasicSR's LMDB map-size estimate
    make_lmdb_from_imgs(str(good), str(tmp_path / 'val.lmdb'), ['0.png', '1.png'], ['0', '1'])
    with open(tmp_path / 'val.lmdb' / 'meta_info.txt', 'a') as f:
        f.write('ghost.png (48,48,1) 1\n')
    opt = {
        'name': 'check', 'model_type': 'SRModel', 'num_gpu': 0, 'datasets': {
            'train': {
                'name': 'folder', 'type': 'GaussianNoiseDataset', 'dataroot_gt': str(folder), 'color': 'gray',
                'sigma': 25, 'gt_size': 8
            }, 'val': {
                'name': 'lmdb', 'type': 'GaussianNoiseDataset', 'io_backend': {'type': 'lmdb'},
                'dataroot_gt': str(tmp_path / 'val.lmdb'), 'color': 'gray', 'sigma': 25
            }
        }, 'network_g': {'type': 'ConverseDnCNN'}, 'path': {}, 'train': {}, 'logger': {}
    }
    return tmp_path, opt


def test_check_data_lists_every_bad_image_and_key(data_with_faults, monkeypatch, capsys):
    root, opt = data_with_faults
    config = root / 'check.yml'
    config.write_text(yaml.dump(opt))
    monkeypatch.chdir(root)
    assert train.main(['-opt', str(config), '--check-data']) == 1
    err = capsys.readouterr().err
    bad = [line for line in err.splitlines() if line.startswith('bad: ')]
    assert len(bad) == 3, err
    assert 'bad: datasets.train: ' + str(root / 'train' / '1.png') in bad[0] and 'corrupt' in bad[0]
    assert 'bad: datasets.train: ' + str(root / 'train' / '3.png') in bad[1]
    assert bad[2].startswith('bad: datasets.val: ghost: KeyError') and 'ghost' in bad[2]
    assert f'checked 7 image(s) of {config}: 3 bad' in err
    assert '4/4' in err and '3/3' in err  # the progress bars
    assert not (root / 'experiments').exists()  # checking trains nothing

    for name in ('1.png', '3.png'):
        cv2.imwrite(str(root / 'train' / name), np.zeros((12, 12), np.uint8))
    opt['datasets'].pop('val')
    config.write_text(yaml.dump(opt))
    assert train.main(['-opt', str(config), '--check-data']) == 0
    assert 'checked 4 image(s)' in capsys.readouterr().err


def test_num_gpu_auto_trains_on_what_is_there(tmp_path, monkeypatch):
    """``num_gpu: auto`` becomes the CUDA device count; without a GPU (here) training runs on the CPU."""
    root = _images(tmp_path / 'img', count=2)
    opt = yaml.safe_load(BAD_CONFIG.format(root=root))
    del opt['datasets']['train']['noise_sed'], opt['network_g']['num_blocks']
    opt['network_g'].update(num_feat=4, num_block=1)
    opt['train']['optim_g']['lr'] = 1e-3
    opt['logger']['save_checkpoint_freq'] = 1
    opt['num_gpu'] = 'auto'
    config = tmp_path / 'auto.yml'
    config.write_text(yaml.dump(opt))
    built = {}
    build = basicsr.train.build_model
    monkeypatch.setattr(basicsr.train, 'build_model', lambda o: built.setdefault('model', build(o)))
    monkeypatch.chdir(tmp_path)
    assert train.main(['-opt', str(config)]) == 0
    model = built['model']
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert model.opt['num_gpu'] == gpus
    assert model.device.type == ('cuda' if gpus else 'cpu')
    assert next(model.net_g.parameters()).device.type == model.device.type
    assert (tmp_path / 'experiments' / 'bad_options' / 'models' / 'net_g_latest.pth').is_file()


MEMORY_SCRIPT = textwrap.dedent('''
    import sys
    from converse_basicsr.utils import runtime
    assert not runtime.freed_memory_retained()
    entry = sys.argv[1]
    try:
        if entry == 'converse-train':
            from converse_basicsr.train import main
            main(['-opt', 'no_such_file.yml'])
        elif entry == 'converse-test':
            from converse_basicsr.test import main
            main(['--config', 'no_such_config'])
        elif entry == 'converse-restore':
            from converse_basicsr.restore import main
            main(['--model', 'no_such_model', '--input', 'no_such_input.png', '--output', 'out'])
        else:  # converse-demo (scripts/demo.py wraps it): stop at its first step
            from converse_basicsr import demo
            from converse_basicsr.training import demo as steps
            def stop():
                raise RuntimeError('stopped after the memory policy')
            steps.show_operator = stop
            demo.main(['--output', 'demo_output'])
    except (Exception, SystemExit) as error:
        print('entry point stopped:', type(error).__name__, file=sys.stderr)
    print('retained', runtime.freed_memory_retained())
''')


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='the policy is a glibc setting')
@pytest.mark.parametrize('entry', ['converse-train', 'converse-test', 'converse-restore', 'demo'])
def test_entry_points_set_their_memory_policy(entry, tmp_path):
    """Each entry point calls runtime.retain_freed_memory() (in a fresh interpreter, stopped after it)."""
    env = {k: v for k, v in os.environ.items() if k != 'CONVERSE_RETAIN_FREED_MEMORY'}
    result = subprocess.run([sys.executable, '-c', MEMORY_SCRIPT, entry], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == 'retained True', result.stdout + result.stderr[-2000:]
