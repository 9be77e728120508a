"""Each fix in ``converse_basicsr.training.compat`` has a test here that fails without it, and importing the package
applies none of the training fixes.

Where a fix replaces a basicsr function, the test also checks (on a machine without CUDA) that the
original, kept as ``__wrapped__``, really fails, so the test keeps meaning something. Atomic checkpoints and
checked resume: ``test_train_checkpoints.py``; the exact resume: ``test_train_resume.py``.
"""
import os
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist

import basicsr.train
from basicsr.models import build_model
from basicsr.models.base_model import BaseModel
from basicsr.utils import dist_util
from converse_basicsr.hub.zoo import ZooError
from converse_basicsr.training import compat

NO_CUDA = not torch.cuda.is_available()
COMPAT_FILE = compat.__file__

compat.apply_training_fixes()  # what the entry points do; the tests below check each fix

# BasicSR's functions that apply_training_fixes() replaces, and those it leaves alone.
PATCHED = {
    'BaseModel': ['load_network', 'save_network', 'save_training_state', 'model_to_device', 'get_optimizer'],
    'basicsr.train': ['load_resume_state'], 'dist_util': ['_init_dist_pytorch', '_init_dist_slurm'],
    'RealESRGANModel': ['__init__', '_dequeue_and_enqueue'], 'RealESRNetModel': ['__init__', '_dequeue_and_enqueue'],
    'SwinIRModel': ['test'], 'realesrgan_model': ['filter2D'], 'realesrnet_model': ['filter2D']
}
UNTOUCHED = {'BaseModel': ['resume_training'], 'EnlargedSampler': ['__init__', '__iter__', 'set_epoch']}

OWNERSHIP_SCRIPT = textwrap.dedent('''
    import json, os, sys
    {first_import}
    import basicsr, basicsr.train
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.models.base_model import BaseModel
    from basicsr.models.realesrgan_model import RealESRGANModel
    from basicsr.models.realesrnet_model import RealESRNetModel
    from basicsr.models.swinir_model import SwinIRModel
    from basicsr.utils import dist_util
    owners = {{'BaseModel': BaseModel, 'EnlargedSampler': EnlargedSampler, 'basicsr.train': basicsr.train,
              'dist_util': dist_util, 'RealESRGANModel': RealESRGANModel, 'RealESRNetModel': RealESRNetModel,
              'SwinIRModel': SwinIRModel, 'realesrgan_model': sys.modules['basicsr.models.realesrgan_model'],
              'realesrnet_model': sys.modules['basicsr.models.realesrnet_model']}}
    root = os.path.dirname(basicsr.__file__)

    def basicsr_own(fn):
        code = getattr(fn, '__wrapped__', fn).__code__  # under torch.no_grad's wrapper for a decorated method
        return fn.__module__.startswith('basicsr') and code.co_filename.startswith(root)

    def report():
        names = {names}
        return {{f'{{owner}}.{{name}}': basicsr_own(getattr(owners[owner], name))
                for owner, members in names.items() for name in members}}

    before = report()
    from converse_basicsr.training.compat import apply_training_fixes
    apply_training_fixes()
    print(json.dumps({{'modules': sorted(m for m in sys.modules if m.startswith('converse_basicsr')),
                      'before': before, 'after': report()}}))
''')


@pytest.mark.parametrize('first_import', ['import converse_basicsr', 'from converse_basicsr.ops import Converse2D'])
def test_import_leaves_basicsr_alone_until_training_fixes(first_import):
    """In a fresh interpreter: after importing the package (or only the operator) every BasicSR method and
    function is BasicSR's own; apply_training_fixes() replaces exactly the listed ones (the exact resume
    lives in converse_basicsr.training.pipeline and patches nothing)."""
    names = {owner: PATCHED.get(owner, []) + UNTOUCHED.get(owner, []) for owner in {**PATCHED, **UNTOUCHED}}
    script = OWNERSHIP_SCRIPT.format(first_import=first_import, names=names)
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = __import__('json').loads(result.stdout.strip().splitlines()[-1])
    assert all(report['before'].values()), report['before']
    assert 'converse_basicsr.training.pipeline' not in report['modules']
    for owner, members in names.items():
        for name in members:
            assert report['after'][f'{owner}.{name}'] == (name not in PATCHED.get(owner, [])), (owner, name)


def test_every_fix_is_applied_and_listed():
    assert compat._APPLIED == {fix.__name__ for fix in compat.FIXES}
    assert compat.FIXES == compat.IMPORT_FIXES + compat.TRAINING_FIXES
    assert basicsr.train.load_resume_state.__module__ == 'converse_basicsr.training.compat'
    assert dist_util._init_dist_pytorch.__module__ == 'converse_basicsr.training.compat'


def test_fix_torchvision_functional_tensor():
    """Without the fix ``import basicsr`` fails on current torchvision; with it, it works. In a fresh
    interpreter that loads compat.py on its own, so converse_basicsr's own import does not interfere."""
    script = textwrap.dedent(f'''
        import importlib.util, sys
        try:
            import basicsr
            print('without fix: imported')
        except ImportError as error:
            print('without fix: ImportError', error)
        for name in [m for m in sys.modules if m == 'basicsr' or m.startswith('basicsr.')]:
            del sys.modules[name]
        spec = importlib.util.spec_from_file_location('compat_alone', {COMPAT_FILE!r})
        compat = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compat)
        compat.fix_torchvision_functional_tensor()
        import basicsr
        from basicsr.data.degradations import rgb_to_grayscale
        print('with fix: imported')
    ''')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "without fix: ImportError No module named 'torchvision.transforms.functional_tensor'" in result.stdout
    assert 'with fix: imported' in result.stdout


def _resume_opt(tmp_path, auto_resume):
    for sub in ('training_states', 'models'):
        (tmp_path / sub).mkdir(exist_ok=True)
    return {
        'name': 'resume_test', 'auto_resume': auto_resume, 'network_g': {'type': 'ConverseDnCNN'}, 'path': {
            'training_states': str(tmp_path / 'training_states'), 'models': str(tmp_path / 'models'),
            'resume_state': None
        }
    }


def _save_state(tmp_path, iteration):
    # What BasicSR saves: optimizer state (tensors) and a MultiStepRestartLR state (holds a Counter), and the
    # model file of the same iteration (resume loads it).
    state = {
        'epoch': 0, 'iter': iteration, 'optimizers': [{'state': {0: {'exp_avg': torch.ones(2)}}}],
        'schedulers': [{'milestones': Counter([10, 20]), 'last_epoch': iteration}]
    }
    path = tmp_path / 'training_states' / f'{iteration}.state'
    torch.save(state, path)
    torch.save({'params': {'w': torch.zeros(1)}}, tmp_path / 'models' / f'net_g_{iteration}.pth')
    return str(path)


def test_fix_resume_without_cuda(tmp_path):
    opt = _resume_opt(tmp_path, auto_resume=True)
    _save_state(tmp_path, 4)
    latest = _save_state(tmp_path, 12)
    state = basicsr.train.load_resume_state(opt)  # --auto_resume: the latest state of this experiment
    assert state['iter'] == 12 and opt['path']['resume_state'] == latest
    assert state['optimizers'][0]['state'][0]['exp_avg'].device.type == 'cpu'
    assert opt['path']['pretrain_network_g'].endswith('net_g_12.pth')  # basicsr's check_resume ran

    opt = _resume_opt(tmp_path, auto_resume=False)
    opt['path']['resume_state'] = _save_state(tmp_path, 4)
    assert basicsr.train.load_resume_state(opt)['iter'] == 4
    opt['path']['resume_state'] = str(tmp_path / 'missing.state')
    with pytest.raises(ValueError, match='path.resume_state.*missing.state'):
        basicsr.train.load_resume_state(opt)
    fresh = tmp_path / 'fresh'
    fresh.mkdir()
    assert basicsr.train.load_resume_state(_resume_opt(fresh, auto_resume=True)) is None  # nothing to resume

    if NO_CUDA:  # the original cannot resume here
        opt = _resume_opt(tmp_path, auto_resume=False)
        opt['path']['resume_state'] = latest
        with pytest.raises((RuntimeError, AssertionError)):
            basicsr.train.load_resume_state.__wrapped__(opt)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def single_process_group(monkeypatch, tmp_path):
    """Environment for a one-process group (restored afterwards, also what the slurm path sets);
    destroys whatever group the test creates."""
    for key, value in dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(_free_port()), RANK='0', WORLD_SIZE='1',
                           LOCAL_RANK='0').items():
        monkeypatch.setenv(key, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.parametrize('launcher', ['pytorch', 'slurm'])
def test_fix_distributed_init_without_cuda(single_process_group, monkeypatch, tmp_path, launcher):
    if launcher == 'slurm':
        scontrol = tmp_path / 'scontrol'
        scontrol.write_text('#!/bin/sh\necho 127.0.0.1\n')
        scontrol.chmod(0o755)
        monkeypatch.setenv('PATH', f'{tmp_path}{os.pathsep}{os.environ["PATH"]}')
        for key, value in dict(SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_NODELIST='node0').items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv('MASTER_ADDR', 'unset')  # the slurm path takes it from scontrol
    if NO_CUDA:  # the original: torch.cuda.set_device(rank % device_count()) with no device
        with pytest.raises((RuntimeError, ZeroDivisionError, AssertionError)):
            getattr(dist_util, f'_init_dist_{launcher}').__wrapped__('nccl')
        assert not dist.is_initialized()
    dist_util.init_dist(launcher)  # BasicSR asks for nccl
    assert dist.is_initialized() and dist.get_world_size() == 1
    if NO_CUDA:
        assert dist.get_backend() == 'gloo'
    if launcher == 'slurm':
        assert os.environ['MASTER_ADDR'] == '127.0.0.1' and os.environ['RANK'] == '0'


@pytest.mark.parametrize('launcher, env, message', [
    ('pytorch', dict(RANK='1', LOCAL_RANK='1'), 'local rank 1 but this node has 1 visible GPU'),
    ('slurm', dict(SLURM_PROCID='2', SLURM_LOCALID='2', SLURM_NTASKS='3',
                   SLURM_NODELIST='n0'), 'local rank 2 but this node has 1 visible GPU'),
])
def test_more_local_ranks_than_gpus_is_a_clear_error(monkeypatch, launcher, env, message):
    """Two ranks cannot share one GPU under NCCL: with a faked single GPU, local rank 1 (pytorch) or 2 (slurm)
    stops before any device is chosen or group joined, with an error saying what to change."""
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda device: calls.append(('set_device', device)))
    monkeypatch.setattr(dist, 'init_process_group', lambda *a, **k: calls.append(('init', a, k)))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RuntimeError, match=message + r"\(s\); NCCL cannot share one GPU.*at most 1 process"):
        getattr(dist_util, f'_init_dist_{launcher}')('nccl')
    assert calls == []


def test_each_local_rank_gets_its_own_gpu(monkeypatch):
    """Global rank 2 on a node with 2 GPUs and local rank 1 uses GPU 1 (BasicSR's rank % count would pick 0)."""
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda device: calls.append(device))
    monkeypatch.setattr(dist, 'init_process_group', lambda backend, **k: calls.append(backend))
    monkeypatch.setenv('RANK', '2')
    monkeypatch.setenv('LOCAL_RANK', '1')
    dist_util._init_dist_pytorch('nccl')
    assert calls == [1, 'nccl']


def _tiny_model_opt(dist_on, init_path=None, param_key='params'):
    return {
        'model_type': 'SRModel', 'num_gpu': 0, 'dist': dist_on, 'rank': 0, 'world_size': 1, 'is_train': True,
        'network_g': {'type': 'ConverseDnCNN', 'num_feat': 4, 'num_block': 1},
        'path': {'pretrain_network_g': init_path, 'param_key_g': param_key, 'strict_load_g': True}, 'train': {
            'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10],
                          'gamma': 0.5}, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}
        }
    }


def test_fix_ddp_wrapping_on_cpu(single_process_group):
    dist.init_process_group('gloo')
    model = build_model(_tiny_model_opt(dist_on=True))
    assert isinstance(model.net_g, torch.nn.parallel.DistributedDataParallel)
    model.feed_data({'lq': torch.rand(2, 1, 12, 12), 'gt': torch.rand(2, 1, 12, 12)})
    model.optimize_parameters(1)
    assert np.isfinite(model.log_dict['l_pix'])
    if NO_CUDA:
        net = build_model(_tiny_model_opt(dist_on=False)).net_g
        with pytest.raises((RuntimeError, AssertionError)):
            BaseModel.model_to_device.__wrapped__(SimpleNamespace(opt={'dist': True}, device=torch.device('cpu')), net)


def test_fix_plain_state_dict_loading(tmp_path):
    reference = build_model(_tiny_model_opt(dist_on=False)).net_g.state_dict()
    plain = tmp_path / 'plain.pth'
    torch.save(reference, plain)
    for param_key in ('params', 'params_ema', None):  # the default, the EMA copy's, and `param_key_g: ~`
        model = build_model(_tiny_model_opt(False, str(plain), param_key))
        for key, value in model.net_g.state_dict().items():
            assert torch.equal(value, reference[key]), (param_key, key)
    wrapped = tmp_path / 'wrapped.pth'
    torch.save({'params': reference}, wrapped)
    loaded = build_model(_tiny_model_opt(False, str(wrapped), 'params_ema')).net_g.state_dict()  # basicsr's fallback
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[key], reference[key]) for key in reference)
    other = tmp_path / 'other.pth'
    torch.save({'weights': reference, 'epoch': 3}, other)
    with pytest.raises(ZooError, match=r"other\.pth .*key 'params'.*its keys: \['weights', 'epoch'\]"):
        build_model(_tiny_model_opt(False, str(other)))
    model = build_model(_tiny_model_opt(False))
    with pytest.raises(KeyError):  # the original
        BaseModel.load_network.__wrapped__(model, model.net_g, str(plain), True, 'params')


@pytest.mark.parametrize('name', compat.OPTIMIZERS)
def test_fix_optimizers(name):
    params = [torch.nn.Parameter(torch.ones(2))]
    optimizer = BaseModel.get_optimizer(None, name, params, 0.1)
    assert type(optimizer) is getattr(torch.optim, name) and optimizer.defaults['lr'] == 0.1
    with pytest.raises(NotImplementedError, match='use one of Adam, AdamW'):
        BaseModel.get_optimizer(None, 'LBFGS', params, 0.1)
    if name != 'Adam':
        with pytest.raises(NotImplementedError):  # basicsr 1.4.2's: Adam only
            BaseModel.get_optimizer.__wrapped__(None, name, params, 0.1)


@pytest.mark.parametrize('model_type', ['RealESRNetModel', 'RealESRGANModel'])
def test_fix_realesrgan_device(model_type):
    """The JPEG simulator, USM sharpener and pair queue follow the model's device (here the CPU)."""
    opt = _tiny_model_opt(dist_on=False)
    opt['network_g'] = {'type': 'ConverseDnCNN', 'num_in_ch': 3, 'num_feat': 4, 'num_block': 1}
    if model_type == 'RealESRGANModel':
        opt['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4}
        opt['train'].update(optim_d={'type': 'Adam', 'lr': 1e-3}, gan_opt={'type': 'GANLoss', 'gan_type': 'vanilla'})
    opt.update(model_type=model_type, queue_size=4)
    model = build_model(opt)
    tensors = [*model.jpeger.buffers(), *model.jpeger.parameters(), *model.usm_sharpener.buffers()]
    assert tensors and {t.device for t in tensors} == {model.device} == {torch.device('cpu')}
    for step in range(3):  # fill the queue (2 + 2), then dequeue
        model.lq, model.gt = torch.full((2, 3, 6, 6), float(step)), torch.full((2, 3, 6, 6), float(step))
        model._dequeue_and_enqueue()
    assert model.queue_lr.device.type == 'cpu' and model.queue_ptr == 4
    assert sorted(model.lq[:, 0, 0, 0].tolist()) in ([0, 0], [0, 1], [1, 1])  # two pairs from the pool
    if NO_CUDA:
        cls = type(model)
        with pytest.raises((RuntimeError, AssertionError)):  # the original's .cuda()
            cls.__init__.__wrapped__(cls.__new__(cls), opt)


def test_fix_swinir_window_size():
    """SwinIRModel with a network whose YAML entry has no window_size (a Converse arch): no padding, no KeyError."""
    opt = _tiny_model_opt(dist_on=False)
    opt.update(model_type='SwinIRModel', scale=1)
    model = build_model(opt)
    model.lq = torch.rand(1, 1, 7, 9)
    model.test()
    assert model.output.shape == (1, 1, 7, 9) and 'window_size' not in model.opt['network_g']
    with pytest.raises(KeyError, match='window_size'):
        type(model).test.__wrapped__(model)


@pytest.mark.parametrize('module', ['realesrgan_model', 'realesrnet_model'])
def test_fix_realesrgan_filter_strides(module):
    """The models' blur on a non-contiguous batch (DiffJPEG's output has such strides)."""
    import importlib
    filter2d = importlib.import_module(f'basicsr.models.{module}').filter2D
    img = torch.rand(2, 5, 7, 3).permute(0, 3, 1, 2)  # (2, 3, 5, 7), not contiguous
    kernel = torch.rand(2, 3, 3)
    out = filter2d(img, kernel)
    assert torch.equal(out, filter2d.__wrapped__(img.contiguous(), kernel))
    with pytest.raises(RuntimeError, match='view size is not compatible'):  # BasicSR's, on the CPU
        filter2d.__wrapped__(img, kernel)
