"""Training states and checkpoints that survive a kill: atomic writes, and resume states that are checked.

A file is written to a temporary name in its folder and renamed over its final name (``os.replace``), so
a kill leaves either the previous complete file or none, never a truncated one under the final name;
BasicSR's three tries on a failed write are kept. Before a run resumes, :func:`find_resume_state`
checks the state it would use (it loads, has the keys, its ``iter`` is the one in its name, the model
files of that iteration exist and load); with ``--auto_resume`` a bad one is named and the newest good
one is used, and when none is good the run says so and starts clean.
"""
import os
import random
import re
import time
from os import path as osp

import numpy as np
import torch
import torch.distributed as dist

from converse_basicsr.hub.description import KEY as DESCRIPTION_KEY
from converse_basicsr.hub.description import attach, describe_network

STATE_KEYS = ('epoch', 'iter', 'optimizers', 'schedulers')
TEMP_SUFFIX = '.tmp'  # temporary files: ``.<name>.<pid>.tmp``; BasicSR's scans for ``*.state`` never see them
SAVE_TRIES = 3  # BasicSR's retry count


class ResumeError(ValueError):
    """An explicitly given ``path.resume_state`` that cannot be resumed from; the message names the file."""


def save_atomically(obj, path, what='file', logger=None):
    """``torch.save(obj, path)`` through a temporary file and ``os.replace``; up to ``SAVE_TRIES`` tries.

    On failure after the last try a warning is logged (BasicSR's behaviour: training goes on) and False
    is returned; a half-written temporary file is removed."""
    folder, name = osp.split(path)
    temp = osp.join(folder, f'.{name}.{os.getpid()}{TEMP_SUFFIX}')
    for attempt in range(1, SAVE_TRIES + 1):
        try:
            with open(temp, 'wb') as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
            return True
        except Exception as error:  # noqa: BLE001  (BasicSR retries on any error, e.g. a full or flaky disk)
            if osp.exists(temp):
                os.remove(temp)
            if logger is not None:
                logger.warning(f'Save {what} error: {error}, remaining retry times: {SAVE_TRIES - attempt}')
            if attempt < SAVE_TRIES:
                time.sleep(1)
    if logger is not None:
        logger.warning(f'Still cannot save {path}. Just ignore it.')
    return False


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process (alive), or not a pid
        return True
    return True


def remove_stale_temps(folders, report=None):
    """Remove the ``.<name>.<pid>.tmp`` files of :func:`save_atomically` in ``folders`` (not below them) whose
    process is gone (a kill during a save leaves one); a live process's file (a concurrent save) is kept.
    Returns the removed paths; each is passed to ``report`` (a function taking a message) if given."""
    removed = []
    for folder in folders:
        if not folder or not osp.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            match = re.fullmatch(r'\..+\.(\d+)' + re.escape(TEMP_SUFFIX), name)
            path = osp.join(folder, name)
            if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))) \
                    and osp.isfile(path) and not osp.islink(path):
                os.remove(path)
                removed.append(path)
                if report is not None:
                    report(f'Removed {path}: a temporary file of an interrupted save (process {match.group(1)} '
                           'is gone).')
    return removed


def rng_state():
    """This process's random states (python, numpy, torch and, when in use, CUDA)."""
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


def gather_rng_states():
    """Every rank's :func:`rng_state` (a list indexed by rank; all ranks must call it)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        states = [None] * dist.get_world_size()
        dist.all_gather_object(states, rng_state())
        return states
    return [rng_state()]


def is_main_process():
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def save_training_state(model, epoch, current_iter):
    """``BaseModel.save_training_state`` written atomically, with every rank's random states (``rng``) for
    an exact resume. Called on every rank (the random states are gathered); rank 0 writes."""
    from basicsr.utils import get_root_logger
    if current_iter == -1:
        return
    rng = gather_rng_states()
    if not is_main_process():
        return
    state = {
        'epoch': epoch, 'iter': current_iter, 'rng': rng, 'optimizers': [o.state_dict() for o in model.optimizers],
        'schedulers': [s.state_dict() for s in model.schedulers]
    }
    path = osp.join(model.opt['path']['training_states'], f'{current_iter}.state')
    save_atomically(state, path, 'training state', get_root_logger())


def save_network(model, net, net_label, current_iter, param_key='params'):
    """``BaseModel.save_network`` written atomically (rank 0 only, as BasicSR's)."""
    from basicsr.utils import get_root_logger
    if not is_main_process():
        return
    label = 'latest' if current_iter == -1 else current_iter
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(keys):
        raise ValueError(f'save_network: {len(nets)} network(s) but {len(keys)} param key(s)')
    save_dict = {}
    for one_net, key in zip(nets, keys):
        bare = model.get_bare_model(one_net)
        state_dict = {(k[7:] if k.startswith('module.') else k): v.cpu() for k, v in bare.state_dict().items()}
        # how to rebuild the net, beside the weights (hub.description; BasicSR's load_network reads only `key`)
        description = describe_network(model.opt.get(f'network_{net_label[4:]}'), bare, model.opt.get('name'))
        save_dict[key] = state_dict if description is None else attach(state_dict, description)
        if description is not None:
            save_dict[DESCRIPTION_KEY] = description
    path = osp.join(model.opt['path']['models'], f'{net_label}_{label}.pth')
    save_atomically(save_dict, path, 'model', get_root_logger())


def _load(path):
    # Our own training-state or model file (optimizer/scheduler/RNG states hold non-tensor objects).
    return torch.load(path, map_location='cpu', weights_only=False)


def model_files(opt, iteration):
    """The model files BasicSR's ``check_resume`` will load when resuming at ``iteration``."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [
        osp.join(opt['path']['models'], f'net_{key[len("network_"):]}_{iteration}.pth') for key in opt
        if key.startswith('network_') and key not in ignored
    ]


def check_state(opt, path):
    """The training state at ``path`` if it and its model files are usable, else a ``ValueError`` saying why."""
    name = osp.basename(path)
    try:
        state = _load(path)
    except Exception as error:  # noqa: BLE001  (truncated, empty, not a pickle: all mean "unusable")
        raise ValueError(f'{path} does not load ({type(error).__name__}: {error})') from None
    if not isinstance(state, dict) or any(key not in state for key in STATE_KEYS):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f'{path} is not a training state (needs keys {list(STATE_KEYS)}, has {found})')
    match = re.fullmatch(r'(\d+)\.state', name)
    if match and int(match.group(1)) != state['iter']:
        raise ValueError(f'{path} holds iter {state["iter"]}, not the {match.group(1)} its name says')
    for model_path in model_files(opt, state['iter']):
        if not osp.isfile(model_path):
            raise ValueError(f'{path}: its model file {model_path} is missing')
        try:
            weights = _load(model_path)
        except Exception as error:  # noqa: BLE001
            raise ValueError(f'{path}: its model file {model_path} does not load '
                             f'({type(error).__name__}: {error})') from None
        if not isinstance(weights, dict) or not weights:
            raise ValueError(f'{path}: its model file {model_path} holds no weights')
    return state


def state_files(folder):
    """``(iter, path)`` of the ``<iter>.state`` files in ``folder``, newest first."""
    if not osp.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        match = re.fullmatch(r'(\d+)\.state', name)
        if match:
            found.append((int(match.group(1)), osp.join(folder, name)))
    return sorted(found, reverse=True)


def find_resume_state(opt, report):
    """The state to resume from, or None to start clean; sets ``opt['path']['resume_state']``.

    ``--auto_resume``: the newest state in ``path.training_states`` that passes :func:`check_state`;
    each bad one is passed to ``report`` (a function taking a message) and skipped. An explicit
    ``path.resume_state`` must pass the check: otherwise :class:`ResumeError` naming the file."""
    if opt.get('auto_resume'):
        folder = opt['path']['training_states']
        for _, path in state_files(folder):
            try:
                state = check_state(opt, path)
            except ValueError as error:
                report(f'Auto resume: skipping a bad training state: {error}')
                continue
            opt['path']['resume_state'] = path
            report(f'Auto resume: resuming from {path} (iter {state["iter"]}).')
            return state
        report(f'Auto resume: no valid training state in {folder}; starting clean.')
        opt['path']['resume_state'] = None
        return None
    path = opt['path'].get('resume_state')
    if not path:
        return None
    if not osp.isfile(path):
        raise ResumeError(f'path.resume_state: no training state at {path!r}')
    try:
        return check_state(opt, path)
    except ValueError as error:
        raise ResumeError(f'path.resume_state: {error}') from None


def load_resume_state(opt, report):
    """BasicSR's ``load_resume_state`` done here: the checked state of :func:`find_resume_state` (``report``
    receives its notes), its iteration checked against the options by BasicSR's ``check_resume``; or None."""
    from basicsr.utils import check_resume
    state = find_resume_state(opt, report)
    if state is not None:
        check_resume(opt, state['iter'])
    return state
