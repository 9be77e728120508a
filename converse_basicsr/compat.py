"""Compatibility fixes for basicsr 1.4.2 (the PyPI release) on current torch/torchvision/numpy.

Every fix is small, named for the problem it solves, idempotent, and covered by a test in
``tests/test_compat.py`` that fails without it. ``apply_all()`` runs when ``converse_basicsr``
is imported, before anything imports ``basicsr``. A patched function keeps the one it replaces
as ``__wrapped__``.
"""
import importlib
import os
import random
import subprocess
import sys
import types
import weakref
from os import path as osp

import numpy as np
import torch

_APPLIED = set()


def _patch(owner, name, replacement):
    replacement.__wrapped__ = getattr(owner, name)
    setattr(owner, name, replacement)


def fix_torchvision_functional_tensor():
    """basicsr.data.degradations imports ``torchvision.transforms.functional_tensor``, removed in
    torchvision 0.17. Provide it as an alias module exposing the same ``rgb_to_grayscale``."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    from torchvision.transforms import functional
    module = types.ModuleType(name)
    module.rgb_to_grayscale = functional.rgb_to_grayscale
    module.__doc__ = 'Alias installed by converse_basicsr.compat for basicsr 1.4.2.'
    sys.modules[name] = module


def fix_resume_without_cuda():
    """``basicsr.train.load_resume_state`` maps the saved state onto ``torch.cuda.current_device()``
    (an error without a GPU), loads it with torch's ``weights_only=True`` default (torch ≥ 2.6
    rejects the scheduler's ``Counter``) and looks for ``--auto_resume`` states under
    ``./experiments`` rather than the experiment root. Load onto the CPU instead (optimizers move
    their state to their parameters' device) from ``path.training_states``."""
    import basicsr.train
    from basicsr.utils import check_resume, scandir

    def load_resume_state(opt):
        state_path = None
        if opt['auto_resume']:
            state_dir = opt['path']['training_states']
            if osp.isdir(state_dir):
                iters = [int(name.split('.state')[0]) for name in scandir(state_dir, suffix='state', recursive=False)]
                if iters:
                    state_path = osp.join(state_dir, f'{max(iters)}.state')
                    opt['path']['resume_state'] = state_path
        else:
            state_path = opt['path'].get('resume_state')
        if not state_path:
            return None
        if not osp.isfile(state_path):
            raise FileNotFoundError(f'path.resume_state: no training state at {state_path!r}')
        # Our own training-state file (optimizer/scheduler/RNG states), not a downloaded model.
        state = torch.load(state_path, map_location='cpu', weights_only=False)
        check_resume(opt, state['iter'])
        return state

    _patch(basicsr.train, 'load_resume_state', load_resume_state)


def _rng_state():
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state):
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


def fix_exact_resume():
    """basicsr 1.4.2 resumes with fresh random seeds and replays the interrupted epoch from its
    start, so a resumed run trains on other batches, crops and noise than an uninterrupted one.
    Save every rank's RNG states with the training state; on resume skip the batches of the epoch
    already trained on and restore the RNG states where the uninterrupted run would have them
    (before the first new sample, or before the next epoch's loader if the epoch was finished).
    Exact with ``num_worker_per_gpu: 0``; with workers their RNG streams restart."""
    import torch.distributed as dist
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import get_root_logger

    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        rng = [_rng_state()]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            rng = [None] * dist.get_world_size()
            dist.all_gather_object(rng, _rng_state())
            if dist.get_rank() != 0:
                return
        state = {'epoch': epoch, 'iter': current_iter, 'rng': rng,
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers]}
        torch.save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    original_resume_training = BaseModel.resume_training

    def resume_training(self, resume_state):
        original_resume_training(self, resume_state)
        train_opt = self.opt['datasets']['train']
        batch = train_opt['batch_size_per_gpu'] * (1 if self.opt['dist'] else max(self.opt['num_gpu'], 1))
        rng = resume_state.get('rng')
        if rng is not None and len(rng) != self.opt['world_size']:
            get_root_logger().warning(f'Resume: the state holds RNG states of {len(rng)} process(es), this run has '
                                      f'{self.opt["world_size"]}; random streams restart from the seed.')
            rng = None
        sampler = EnlargedSampler.latest()
        if sampler is not None:
            sampler.pending_resume = {'epoch': resume_state['epoch'], 'iter': resume_state['iter'], 'batch': batch,
                                      'rng': None if rng is None else rng[self.opt['rank']]}

    original_init = EnlargedSampler.__init__
    original_iter = EnlargedSampler.__iter__
    original_set_epoch = EnlargedSampler.set_epoch

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.pending_resume, self.pending_rng = None, None
        EnlargedSampler.latest = weakref.ref(self)  # the train loader's sampler, built before the model

    def set_epoch(self, epoch):
        original_set_epoch(self, epoch)
        if self.pending_rng is not None:  # the interrupted epoch was complete: continue as at its end
            _set_rng_state(self.pending_rng)
            self.pending_rng = None

    def __iter__(self):
        indices = list(original_iter(self))
        resume, self.pending_resume = self.pending_resume, None
        if resume is None:
            yield from indices
            return
        per_epoch = len(self) // resume['batch']
        done = resume['iter'] - self.epoch * per_epoch  # batches of this epoch trained before the interruption
        if self.epoch != resume['epoch'] or not 0 <= done <= per_epoch:
            get_root_logger().warning(f'Resume: iter {resume["iter"]} is not in epoch {self.epoch} of '
                                      f'{per_epoch} iterations; replaying the epoch from its start.')
            done = 0
        if done == per_epoch:
            self.pending_rng = resume['rng']
            return
        if resume['rng'] is not None:
            _set_rng_state(resume['rng'])
        yield from indices[done * resume['batch']:]

    EnlargedSampler.latest = lambda: None
    _patch(BaseModel, 'save_training_state', save_training_state)
    _patch(BaseModel, 'resume_training', resume_training)
    _patch(EnlargedSampler, '__init__', __init__)
    _patch(EnlargedSampler, 'set_epoch', set_epoch)
    _patch(EnlargedSampler, '__iter__', __iter__)


def fix_distributed_init_without_cuda():
    """``basicsr.utils.dist_util.init_dist`` calls ``torch.cuda.set_device`` and uses nccl for both
    launchers. Without CUDA use gloo and no device; with CUDA use the launcher's local rank."""
    import torch.distributed as dist
    from basicsr.utils import dist_util

    def num_gpus():
        return torch.cuda.device_count() if torch.cuda.is_available() else 0

    def _init_dist_pytorch(backend, **kwargs):
        gpus = num_gpus()
        if gpus:
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', int(os.environ['RANK']) % gpus)))
        elif backend == 'nccl':
            backend = 'gloo'
        dist.init_process_group(backend=backend, **kwargs)

    def _init_dist_slurm(backend, port=None):
        proc_id, ntasks = int(os.environ['SLURM_PROCID']), int(os.environ['SLURM_NTASKS'])
        gpus = num_gpus()
        if gpus:
            local_rank = proc_id % gpus
            torch.cuda.set_device(local_rank)
        else:
            local_rank = int(os.environ.get('SLURM_LOCALID', 0))
            backend = 'gloo' if backend == 'nccl' else backend
        node_list = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
        if port is not None:
            os.environ['MASTER_PORT'] = str(port)
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ.update(WORLD_SIZE=str(ntasks), LOCAL_RANK=str(local_rank), RANK=str(proc_id))
        dist.init_process_group(backend=backend)

    _patch(dist_util, '_init_dist_pytorch', _init_dist_pytorch)
    _patch(dist_util, '_init_dist_slurm', _init_dist_slurm)


def fix_ddp_wrapping_on_cpu():
    """``BaseModel.model_to_device`` wraps the net in DistributedDataParallel with
    ``device_ids=[torch.cuda.current_device()]``, an error on CPU. Leave ``device_ids`` out there."""
    from torch.nn.parallel import DistributedDataParallel
    from basicsr.models.base_model import BaseModel

    original = BaseModel.model_to_device

    def model_to_device(self, net):
        if self.opt['dist'] and self.device.type == 'cpu':
            return DistributedDataParallel(
                net.to(self.device), find_unused_parameters=self.opt.get('find_unused_parameters', False))
        return original(self, net)

    _patch(BaseModel, 'model_to_device', model_to_device)


def fix_plain_state_dict_loading():
    """``BaseModel.load_network`` expects ``{'params': state_dict}`` unless ``param_key_g: ~``, and the
    EMA copy always asks for ``params_ema``: a plain state dict (every published Converse
    checkpoint) fails with ``KeyError``. Load a plain state dict whole whatever the param key;
    a wrapped file missing the key is an error naming the key and the keys it has."""
    from copy import deepcopy

    from basicsr.models.base_model import BaseModel
    from basicsr.utils import get_root_logger

    def load_network(self, net, load_path, strict=True, param_key='params'):
        logger = get_root_logger()
        net = self.get_bare_model(net)
        load_net = torch.load(load_path, map_location='cpu')
        if param_key is not None:
            if param_key in load_net:
                load_net = load_net[param_key]
            elif 'params' in load_net:
                logger.info(f'Loading: {param_key} does not exist in {load_path}, use params.')
                load_net = load_net['params']
            elif all(torch.is_tensor(v) for v in load_net.values()):
                logger.info(f'Loading: {load_path} is a plain state dict, param key {param_key!r} not needed.')
            else:
                raise KeyError(f'param key {param_key!r} (path.param_key_*) not in {load_path}; '
                               f'its keys: {sorted(load_net)[:10]}')
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        for k, v in deepcopy(load_net).items():
            if k.startswith('module.'):
                load_net[k[7:]] = v
                load_net.pop(k)
        self._print_different_keys_loading(net, load_net, strict)
        net.load_state_dict(load_net, strict=strict)

    _patch(BaseModel, 'load_network', load_network)


IMPORT_FIXES = [fix_torchvision_functional_tensor]  # what ``import basicsr`` itself needs
TRAINING_FIXES = [
    fix_resume_without_cuda,
    fix_exact_resume,
    fix_distributed_init_without_cuda,
    fix_ddp_wrapping_on_cpu,
    fix_plain_state_dict_loading,
]
FIXES = IMPORT_FIXES + TRAINING_FIXES


def _apply(fixes):
    for fix in fixes:
        if fix.__name__ not in _APPLIED:
            fix()
            _APPLIED.add(fix.__name__)


def apply_import_fixes():
    """Make ``import basicsr`` work on current torchvision; changes no BasicSR class."""
    _apply(IMPORT_FIXES)


def apply_training_fixes():
    """The fixes BasicSR's training and test pipelines need here (CPU resume, exact resume, CPU
    distributed set-up, plain state dicts). Applied by the package's entry points; call it in your
    own training scripts."""
    _apply(FIXES)


def apply_all():
    apply_training_fixes()
