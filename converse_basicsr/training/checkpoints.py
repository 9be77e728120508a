"""Training states and checkpoints that survive a kill: atomic writes, and resume states that are checked.

A file is written to a temporary name in its folder and renamed over its final name (``os.replace``), so
a kill leaves either the previous complete file or none, never a truncated one under the final name;
BasicSR's three tries on a failed write are kept. Before a run resumes, :func:`find_resume_state`
checks the state it would use (it loads, has the keys, its ``iter`` is the one in its name, the model
files of that iteration exist and load); with ``--auto_resume`` a bad one is named and the newest good
one is used, and when none is good the run says so and starts clean.

Files are data, never code: a training state loads with ``weights_only=True`` and an allow-list of exactly the
types BasicSR's states hold beyond tensors (``STATE_GLOBALS``); a model file with ``weights_only=True`` alone.
A state that needs anything else is treated as a corrupt one, and named. A save that still fails after the
last try raises :class:`SaveError` naming the file and the cause (``no space left on device``): the run
ends with a non-zero exit status, the files saved before it kept.
"""
import collections
import os
import pickle
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
# What a training state holds besides tensors and plain Python data: the MultiStepRestartLR scheduler's
# ``milestones`` (a Counter) and numpy's random state (a uint32 array), found by loading real states.
STATE_GLOBALS = (collections.Counter, np.ndarray, np.dtype, type(np.dtype(np.uint32)),
                 np.ndarray.__reduce__(np.zeros(1))[0])  # the last: numpy's array _reconstruct


class ResumeError(ValueError):
    """An explicitly given ``path.resume_state`` that cannot be resumed from; the message names the file."""


class SaveError(RuntimeError):
    """A checkpoint or training state that could not be saved; the message names the file and the cause."""


class _RecordingWriter:
    """A binary file whose first failed write is kept: ``torch.save`` reports a failed write in its own words
    (``unexpected pos 64 vs 0``), which would hide the cause (``No space left on device``)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data):
        try:
            return self.f.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def flush(self):
        return self.f.flush()

    def __getattr__(self, name):  # name, fileno, ...: the file's
        return getattr(self.f, name)


def _cause(error):
    """An error in words: an ``OSError``'s own text in lower case (``no space left on device``), else its line."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    if isinstance(error, OSError):
        return str(error)
    return f'{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}'


def save_atomically(obj, path, what='file', logger=None):
    """``torch.save(obj, path)`` through a temporary file and ``os.replace``; up to ``SAVE_TRIES`` tries.

    A failed try is logged as BasicSR does; a half-written temporary file is removed. After the last failed try
    :class:`SaveError` names ``path`` and the cause (the file saved before under ``path``, if any, is kept)."""
    folder, name = osp.split(path)
    temp = osp.join(folder, f'.{name}.{os.getpid()}{TEMP_SUFFIX}')
    cause = None
    for attempt in range(1, SAVE_TRIES + 1):
        writer = None
        try:
            with open(temp, 'wb') as f:
                writer = _RecordingWriter(f)
                torch.save(obj, writer)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
            return True
        except Exception as error:  # noqa: BLE001  (BasicSR retries on any error, e.g. a full or flaky disk)
            cause = _cause(writer.error if writer is not None and writer.error is not None else error)
            if osp.exists(temp):
                os.remove(temp)
            if logger is not None:
                logger.warning(f'Save {what} error: {cause}, remaining retry times: {SAVE_TRIES - attempt}')
            if attempt < SAVE_TRIES:
                time.sleep(1)
    raise SaveError(f'the {what} {path} could not be saved: {cause} ({SAVE_TRIES} tries); the files saved before '
                    'it are kept')


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


def load_model_file(path):
    """A model file (``net_g_<iter>.pth``, a pretrained network) as data: ``torch.load(weights_only=True)``."""
    return torch.load(path, map_location='cpu', weights_only=True)


def load_state_file(path):
    """A training state as data: ``weights_only=True`` with ``STATE_GLOBALS`` allowed, nothing else."""
    with torch.serialization.safe_globals(list(STATE_GLOBALS)):
        return torch.load(path, map_location='cpu', weights_only=True)


def load_failure(path, error):
    """Why ``path`` did not load, in one line: the globals a refused pickle asks for, or the error's first line."""
    if isinstance(error, pickle.UnpicklingError) and 'weights_only' in str(error):
        try:
            wanted = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001  (not a zip checkpoint: fall back to the error's text)
            wanted = []
        wanted = [g for g in wanted if g not in {_global_name(t) for t in STATE_GLOBALS}]
        if wanted:
            return f'it needs {", ".join(wanted)}, not a type that training states or model files hold; read as ' \
                   'data with weights_only=True, nothing was run'
    return _cause(error)


def _global_name(obj):
    return f'{obj.__module__}.{obj.__qualname__}'


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
        state = load_state_file(path)
    except Exception as error:  # noqa: BLE001  (truncated, empty, not a pickle, code in it: all mean "unusable")
        raise ValueError(f'{path} does not load ({load_failure(path, error)})') from None
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
            weights = load_model_file(model_path)
        except Exception as error:  # noqa: BLE001
            raise ValueError(f'{path}: its model file {model_path} does not load '
                             f'({load_failure(model_path, error)})') from None
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
