"""Edges of the compatibility fixes (``training/compat.py``) that ``test_compat.py`` leaves open: the slurm set-up
exports the ranks BasicSR and torch read (``LOCAL_RANK`` from ``SLURM_LOCALID``, not the global rank) and keeps a
``MASTER_PORT`` the user chose, as BasicSR's own ``_init_dist_slurm`` does."""
import os

import torch
import torch.distributed as dist

from basicsr.utils import dist_util
from converse_basicsr.training import compat

compat.apply_training_fixes()

EXPORTED = ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'LOCAL_RANK', 'RANK')


def _slurm(monkeypatch, **env):
    """A slurm job step without CUDA: what ``init_process_group`` and ``scontrol`` are asked, recorded."""
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group', lambda backend, **kwargs: calls.append(backend))
    monkeypatch.setattr(compat.subprocess, 'getoutput', lambda command: calls.append(command) or 'node7')
    for key in EXPORTED:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return calls


def test_slurm_exports_global_and_node_local_ranks(monkeypatch):
    calls = _slurm(monkeypatch, SLURM_PROCID='5', SLURM_LOCALID='1', SLURM_NTASKS='8', SLURM_NODELIST='node[7-8]')
    dist_util._init_dist_slurm('nccl')
    assert calls == ['scontrol show hostname node[7-8] | head -n1', 'gloo']  # no CUDA: gloo
    expected = {'MASTER_ADDR': 'node7', 'MASTER_PORT': '29500', 'WORLD_SIZE': '8', 'LOCAL_RANK': '1', 'RANK': '5'}
    assert {key: os.environ[key] for key in EXPORTED} == expected


def test_slurm_keeps_the_users_port_unless_the_options_name_one(monkeypatch):
    _slurm(monkeypatch, SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_NODELIST='node7', MASTER_PORT='12345')
    dist_util._init_dist_slurm('gloo')
    assert os.environ['MASTER_PORT'] == '12345' and os.environ['LOCAL_RANK'] == '0'  # no SLURM_LOCALID: the rank
    dist_util._init_dist_slurm('gloo', port=23456)  # dist_params.port in the option file
    assert os.environ['MASTER_PORT'] == '23456'
