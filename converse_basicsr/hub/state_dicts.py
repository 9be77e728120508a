"""Checkpoint files and state dicts, with no arch imported: the package's one reader of checkpoint layouts
(:func:`unwrap_state_dict`: plain, BasicSR's ``params``/``params_ema``, DataParallel's ``module.`` prefix),
the file reader (:func:`load_checkpoint_file`: tensors only, ``.safetensors`` too) and :class:`ZooError`,
the error every checkpoint problem raises (re-exported by :mod:`.zoo`), and
:func:`load_original_state_dict` (an original arch's checkpoint into its converted network)."""
import os
from typing import NamedTuple

import torch

from converse_basicsr.utils.checks import ConverseError

BASICSR_PARAM_KEYS = ('params_ema', 'params')  # the keys BasicSR saves networks under, preferred first


class ZooError(ConverseError):
    """A model name, checkpoint file or checkpoint content that cannot be used."""


def unwrap_state_dict(checkpoint, source='checkpoint', key=None):
    """The one reader of checkpoint layouts: a plain state dict of tensors from a plain one or BasicSR's
    ``{'params_ema': ...}`` / ``{'params': ...}``, without DataParallel's ``module.`` prefixes.

    ``key``: the BasicSR key to take (BasicSR's ``param_key``); when the file lacks it, the other
    BasicSR key is taken (``params_ema`` first), as BasicSR's ``load_network`` falls back to
    ``params``; a plain state dict is taken whole whatever ``key``. Errors (:class:`ZooError`)
    name ``source``.
    """
    if not isinstance(checkpoint, dict):
        raise ZooError(f'{source} does not hold a state dict (got {type(checkpoint).__name__})')
    for candidate in ((key, ) if key else ()) + BASICSR_PARAM_KEYS:
        if isinstance(checkpoint.get(candidate), dict):
            checkpoint = checkpoint[candidate]
            break
    if not checkpoint or not all(torch.is_tensor(v) for v in checkpoint.values()):
        wanted = f'key {key!r} or ' if key else ''
        raise ZooError(f'{source} is neither a state dict of tensors nor holds one under {wanted}'
                       f'{" / ".join(BASICSR_PARAM_KEYS)} (its keys: {list(checkpoint)[:5]})')
    if all(k.startswith('module.') for k in checkpoint):  # saved from (Distributed)DataParallel
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return checkpoint


def wrapped_keys(checkpoint):
    """The BasicSR keys (``params_ema``, ``params``) under which ``checkpoint`` holds a state dict."""
    return [k for k in BASICSR_PARAM_KEYS if isinstance(checkpoint, dict) and isinstance(checkpoint.get(k), dict)]


def read_checkpoint_file(path, expected='a PyTorch checkpoint of tensors'):
    """``(checkpoint, safetensors metadata or None)`` of the file ``path``, read without running code:
    ``torch.load(weights_only=True)``, or safetensors for ``.safetensors``; any failure a :class:`ZooError`
    naming the file and saying it is not ``expected``."""
    try:
        if str(path).lower().endswith('.safetensors'):  # cannot run code on load; written by save_checkpoint_file
            from safetensors import safe_open
            with safe_open(str(path), framework='pt', device='cpu') as f:
                return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
        return torch.load(path, map_location='cpu', weights_only=True), None
    except Exception as err:  # unpickling, zip and OS errors alike: the file is not a checkpoint we can read
        first = str(err).splitlines()[0] if str(err) else ''
        raise ZooError(f'cannot read checkpoint {path}: not {expected} ({type(err).__name__}: {first[:200]})') from err


def load_checkpoint_file(path):
    """The checkpoint in the file ``path`` (:func:`read_checkpoint_file` without the metadata)."""
    return read_checkpoint_file(path)[0]


def read_state_dict(path):
    """The plain state dict in the checkpoint file ``path`` (:func:`load_checkpoint_file` then
    :func:`unwrap_state_dict`)."""
    return unwrap_state_dict(load_checkpoint_file(path), f'checkpoint {path}')


class LoadResult(NamedTuple):
    new_keys: list  # converted layers: left at their fresh initialisation
    dropped_keys: list  # the original upsamplers' weights, not used


def load_original_state_dict(model, checkpoint):
    """Load a checkpoint of the original arch into its converted ``model``, reusing every unchanged layer.

    ``checkpoint``: a state dict, BasicSR's ``{'params': ...}`` / ``{'params_ema': ...}``, or a file path.
    Equivalent to ``model.load_state_dict(state, strict=False)`` plus two checks made before anything is
    loaded: shapes of shared keys agree, and (for a model made by ``nn.convert.convert_upsamplers``, which sets
    its ``conversion_report``) the only keys the checkpoint lacks are the converted layers' new ones. Returns
    ``LoadResult(new_keys, dropped_keys)``.
    """
    source = 'checkpoint'
    if isinstance(checkpoint, (str, os.PathLike)):
        source = f'checkpoint {checkpoint}'
        checkpoint = load_checkpoint_file(checkpoint)
    state = unwrap_state_dict(checkpoint, source)
    own = model.state_dict()
    for key in own:  # in the model's order, so the message names its first mismatch
        if key in state and own[key].shape != state[key].shape:
            raise ValueError(f'{source}: {key} has shape {tuple(state[key].shape)}, the model {tuple(own[key].shape)}')
    report = getattr(model, 'conversion_report', None)
    if report is not None:
        lacking = [k for k in own if k not in state and k not in report.new_keys]
        if lacking:
            raise ValueError(f'{source} lacks {len(lacking)} key(s) of layers the conversion kept, e.g. {lacking[:3]}: '
                             f'is it a checkpoint of this {report.model}?')
    result = model.load_state_dict(state, strict=False)
    return LoadResult(list(result.missing_keys), list(result.unexpected_keys))
