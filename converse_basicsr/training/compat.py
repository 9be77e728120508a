"""Compatibility fixes for basicsr 1.4.2 (the PyPI release) on current torch/torchvision/numpy.

Two groups, each fix small, named for the problem it solves, idempotent, and covered by a test in
``tests/training/test_compat.py`` that fails without it. A patched function keeps the one it replaces as
``__wrapped__``.

- :func:`apply_import_fixes` (run by ``import converse_basicsr``): only what ``import basicsr`` itself
  needs; no BasicSR class or function changes.
- :func:`apply_training_fixes` (run by the package's entry points ``converse-train`` / ``converse-test``;
  call it in your own training or test scripts): resume on the CPU from checked states, atomic
  checkpoints, distributed set-up without CUDA, plain state dicts, the optimizers of current BasicSR,
  Real-ESRGAN/Real-ESRNet training on the model's device (the CPU too), SwinIRModel with networks that do not
  name ``window_size`` in the YAML. These replace methods of BasicSR's ``BaseModel``, ``RealESRGANModel``,
  ``RealESRNetModel``, ``SwinIRModel`` and functions of ``basicsr.train`` / ``basicsr.utils.dist_util`` for the
  whole process.
  The exact resume is not a patch: it is part of ``converse_basicsr.training.pipeline.train_pipeline``.
"""
import importlib
import os
import subprocess
import sys
import types

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
    module.__doc__ = 'Alias installed by converse_basicsr.training.compat for basicsr 1.4.2.'
    sys.modules[name] = module


def fix_resume_without_cuda():
    """``basicsr.train.load_resume_state`` maps the saved state onto ``torch.cuda.current_device()``
    (an error without a GPU), loads it with torch's ``weights_only=True`` default (torch ≥ 2.6
    rejects the scheduler's ``Counter``), looks for ``--auto_resume`` states under ``./experiments``
    rather than the experiment root, and takes the newest state even when a kill truncated it. Load
    onto the CPU (optimizers move their state to their parameters' device) from
    ``path.training_states``, the newest state that checks out (``checkpoints.find_resume_state``)."""
    import basicsr.train
    from converse_basicsr.training.checkpoints import load_resume_state

    def report(message):
        print(message, file=sys.stderr, flush=True)  # BasicSR's logger is not set up yet

    _patch(basicsr.train, 'load_resume_state', lambda opt: load_resume_state(opt, report))


def fix_atomic_checkpoints():
    """``BaseModel.save_network`` and ``save_training_state`` write straight to the final name, so a kill
    during the write leaves a truncated file that ``--auto_resume`` then picks. Write through a temporary
    file and ``os.replace`` (keeping BasicSR's three tries); training states also hold every rank's random
    states, which ``converse_basicsr.training.pipeline`` uses for an exact resume."""
    from basicsr.models.base_model import BaseModel
    from converse_basicsr.training import checkpoints

    def save_network(self, net, net_label, current_iter, param_key='params'):
        checkpoints.save_network(self, net, net_label, current_iter, param_key)

    def save_training_state(self, epoch, current_iter):
        checkpoints.save_training_state(self, epoch, current_iter)

    _patch(BaseModel, 'save_network', save_network)
    _patch(BaseModel, 'save_training_state', save_training_state)


def local_gpu(local_rank, launcher):
    """The GPU of the process with node-local rank ``local_rank``, or None without CUDA.

    NCCL cannot run two ranks on one GPU, and BasicSR's ``rank % device_count()`` silently puts them there
    when a node starts more processes than it has GPUs: that is an error here, naming the counts."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not gpus:
        return None
    if not 0 <= local_rank < gpus:
        raise RuntimeError(
            f'distributed ({launcher} launcher): local rank {local_rank} but this node has {gpus} visible GPU(s); '
            f'NCCL cannot share one GPU between ranks. Start at most {gpus} process(es) per node '
            '(torchrun --nproc_per_node, or srun --ntasks-per-node), or set CUDA_VISIBLE_DEVICES= to train on '
            'the CPU with the gloo backend.')
    return local_rank


def fix_distributed_init_without_cuda():
    """``basicsr.utils.dist_util.init_dist`` calls ``torch.cuda.set_device`` and uses nccl for both
    launchers. Without CUDA use gloo and no device; with CUDA use the launcher's local rank, and refuse
    more local ranks than GPUs (:func:`local_gpu`) instead of stacking two ranks on one GPU."""
    import torch.distributed as dist

    from basicsr.utils import dist_util

    def _init_dist_pytorch(backend, **kwargs):
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ.get('RANK', 0)))
        gpu = local_gpu(local_rank, 'pytorch')
        if gpu is not None:
            torch.cuda.set_device(gpu)
        elif backend == 'nccl':
            backend = 'gloo'
        dist.init_process_group(backend=backend, **kwargs)

    def _init_dist_slurm(backend, port=None):
        proc_id, ntasks = int(os.environ['SLURM_PROCID']), int(os.environ['SLURM_NTASKS'])
        local_rank = int(os.environ.get('SLURM_LOCALID', proc_id))
        gpu = local_gpu(local_rank, 'slurm')
        if gpu is not None:
            torch.cuda.set_device(gpu)
        elif backend == 'nccl':
            backend = 'gloo'
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
    a wrapped file missing the key is an error naming the file, the key and the keys it has
    (one reader of checkpoint layouts: :func:`converse_basicsr.hub.state_dicts.unwrap_state_dict`)."""
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import get_root_logger
    from converse_basicsr.hub.state_dicts import load_checkpoint_file, unwrap_state_dict

    def load_network(self, net, load_path, strict=True, param_key='params'):
        net = self.get_bare_model(net)
        load_net = unwrap_state_dict(load_checkpoint_file(load_path), f'checkpoint {load_path}', key=param_key)
        get_root_logger().info(
            f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        self._print_different_keys_loading(net, load_net, strict)
        net.load_state_dict(load_net, strict=strict)

    _patch(BaseModel, 'load_network', load_network)


# The optimizers current BasicSR's ``BaseModel.get_optimizer`` builds (1.4.2 builds Adam only).
OPTIMIZERS = ('Adam', 'AdamW', 'Adamax', 'SGD', 'ASGD', 'RMSprop', 'Rprop')


def fix_optimizers():
    """``BaseModel.get_optimizer`` of basicsr 1.4.2 raises NotImplementedError for any optimizer but Adam (after
    the experiment folder was made); current BasicSR builds every one of :data:`OPTIMIZERS` from ``torch.optim``."""
    from basicsr.models.base_model import BaseModel

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if optim_type not in OPTIMIZERS:
            raise NotImplementedError(f'optimizer {optim_type} is not supported; use one of {", ".join(OPTIMIZERS)}')
        return getattr(torch.optim, optim_type)(params, lr, **kwargs)

    _patch(BaseModel, 'get_optimizer', get_optimizer)


def fix_realesrgan_device():
    """``RealESRGANModel`` and ``RealESRNetModel`` put their JPEG simulator, USM sharpener and training-pair queue
    on the GPU with ``.cuda()`` whatever ``num_gpu`` says, so they cannot train on a CPU. Put them on the model's
    device (``self.device``); everything else is BasicSR's code."""
    from basicsr.models.realesrgan_model import RealESRGANModel
    from basicsr.models.realesrnet_model import RealESRNetModel
    from basicsr.utils import DiffJPEG, USMSharp

    for cls in (RealESRGANModel, RealESRNetModel):
        parent, dequeue = cls.__mro__[1], cls._dequeue_and_enqueue

        def __init__(self, opt, parent=parent):
            parent.__init__(self, opt)
            self.jpeger = DiffJPEG(differentiable=False).to(self.device)
            self.usm_sharpener = USMSharp().to(self.device)
            self.queue_size = opt.get('queue_size', 180)

        def _dequeue_and_enqueue(self, dequeue=dequeue):
            if not hasattr(self, 'queue_lr'):  # BasicSR's first call, with the queue made on self.device
                b, c, h, w = self.lq.size()
                assert self.queue_size % b == 0, f'queue size {self.queue_size} should be divisible by batch size {b}'
                self.queue_lr = self.lq.new_zeros(self.queue_size, c, h, w)
                self.queue_gt = self.gt.new_zeros(self.queue_size, *self.gt.shape[1:])
                self.queue_ptr = 0
            dequeue(self)

        _patch(cls, '__init__', __init__)
        _patch(cls, '_dequeue_and_enqueue', _dequeue_and_enqueue)


def fix_realesrgan_filter_strides():
    """RealESRGANModel / RealESRNetModel blur with BasicSR's ``filter2D``, which calls ``.view`` on ``F.pad``'s result.
    On the CPU ``F.pad`` keeps the strides of a non-contiguous input (DiffJPEG's output, before the second blur),
    and the view fails. Those two models' ``filter2D`` makes its input contiguous first (same values)."""
    from basicsr.models import realesrgan_model, realesrnet_model

    for module in (realesrgan_model, realesrnet_model):
        original = module.filter2D

        def filter2D(img, kernel, original=original):  # noqa: N802  (BasicSR's name)
            return original(img.contiguous(), kernel)

        _patch(module, 'filter2D', filter2D)


def fix_swinir_window_size():
    """``SwinIRModel.test`` pads the input to a multiple of ``opt['network_g']['window_size']``: a ``KeyError``
    when the YAML does not name it, as for ``ConverseUp`` on a SwinIR base or any arch without windows. Take the
    window from the YAML, else from the network (its ``window_size`` attribute), else 1 (no padding)."""
    from basicsr.models.swinir_model import SwinIRModel
    original = SwinIRModel.test

    def test(self):
        net_opt = self.opt['network_g']
        if 'window_size' in net_opt:
            return original(self)
        window = getattr(self.get_bare_model(self.net_g), 'window_size', 1)
        self.opt['network_g'] = dict(net_opt, window_size=window if isinstance(window, int) else 1)
        try:
            return original(self)
        finally:
            self.opt['network_g'] = net_opt

    _patch(SwinIRModel, 'test', test)


IMPORT_FIXES = [fix_torchvision_functional_tensor]  # what ``import basicsr`` itself needs
TRAINING_FIXES = [
    fix_resume_without_cuda,
    fix_atomic_checkpoints,
    fix_distributed_init_without_cuda,
    fix_ddp_wrapping_on_cpu,
    fix_plain_state_dict_loading,
    fix_optimizers,
    fix_realesrgan_device,
    fix_realesrgan_filter_strides,
    fix_swinir_window_size,
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
    """The fixes BasicSR's training and test pipelines need here (CPU resume from checked states, atomic
    checkpoints, CPU distributed set-up, plain state dicts, optimizers, Real-ESRGAN on any device, SwinIRModel's
    window). Applied by the package's entry points; call it
    in your own training scripts (and use ``converse_basicsr.training.pipeline.train_pipeline`` for an exact resume)."""
    _apply(FIXES)
