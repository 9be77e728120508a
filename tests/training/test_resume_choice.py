"""Which training state a run resumes from, and what it refuses: a state that lacks one of the keys BasicSR's
``resume_training`` reads is skipped, the newest iteration is taken by number, a clean start forgets a stale
``path.resume_state``, an explicit state that does not exist is named, only this package's save temporaries of
gone processes are cleaned, random states of another number of processes are not reused, and a model saved with a
param key per network refuses a list that does not match."""
import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from converse_basicsr.training import checkpoints
from converse_basicsr.training.checkpoints import TEMP_SUFFIX, ResumeError, find_resume_state, remove_stale_temps
from converse_basicsr.training.pipeline import TrainingRun

# What BasicSR's BaseModel.resume_training and train_pipeline read from a training state.
READ_BY_BASICSR = ('epoch', 'iter', 'optimizers', 'schedulers')


def _folders(tmp_path):
    models, states = tmp_path / 'models', tmp_path / 'training_states'
    models.mkdir(), states.mkdir()
    return models, states


def _save(models, states, iteration, drop=None):
    state = {'epoch': 0, 'iter': iteration, 'optimizers': [], 'schedulers': []}
    state.pop(drop, None)
    torch.save(state, states / f'{iteration}.state')
    torch.save({'params': {'w': torch.ones(2)}}, models / f'net_g_{iteration}.pth')


def _options(models, states, auto=True, resume_state=None):
    return {
        'auto_resume': auto, 'network_g': {'type': 'ConverseDnCNN'},
        'path': {'models': str(models), 'training_states': str(states), 'resume_state': resume_state}
    }


@pytest.mark.parametrize('missing', READ_BY_BASICSR[1:] + READ_BY_BASICSR[:1])
def test_a_state_without_one_key_basicsr_reads_is_skipped(tmp_path, missing):
    models, states = _folders(tmp_path)
    _save(models, states, 10)
    _save(models, states, 20, drop=missing)
    notes = []
    state = find_resume_state(_options(models, states), notes.append)
    assert state is not None and state['iter'] == 10, notes
    assert any('20.state is not a training state' in note for note in notes), notes


def test_the_newest_state_is_the_highest_iteration_not_the_last_name(tmp_path):
    models, states = _folders(tmp_path)
    for iteration in (900, 5000, 10000):  # as text, '900' > '5000' > '10000'
        _save(models, states, iteration)
    opt = _options(models, states)
    notes = []
    assert find_resume_state(opt, notes.append)['iter'] == 10000
    assert opt['path']['resume_state'] == str(states / '10000.state') and len(notes) == 1, notes


def test_a_model_file_that_is_not_a_mapping_of_weights_is_skipped(tmp_path):
    models, states = _folders(tmp_path)
    _save(models, states, 10)
    _save(models, states, 20)
    torch.save([torch.ones(2)], models / 'net_g_20.pth')  # loads, is not empty, holds no named weights
    notes = []
    assert find_resume_state(_options(models, states), notes.append)['iter'] == 10
    assert any('net_g_20.pth holds no weights' in note for note in notes), notes


def test_a_clean_start_forgets_a_resume_state_given_in_the_file(tmp_path):
    models, states = _folders(tmp_path)
    (states / '10.state').write_bytes(b'')  # the only state: killed while written
    opt = _options(models, states, resume_state=str(states / '10.state'))
    assert find_resume_state(opt, [].append) is None
    assert opt['path']['resume_state'] is None


def test_an_explicit_state_that_does_not_exist_is_named(tmp_path):
    models, states = _folders(tmp_path)
    _save(models, states, 10)
    missing = str(states / '20.state')
    with pytest.raises(ResumeError) as refused:
        find_resume_state(_options(models, states, auto=False, resume_state=missing), print)
    assert str(refused.value) == f'path.resume_state: no training state at {missing!r}'


def test_an_empty_resume_state_means_none_as_in_basicsr(tmp_path):
    models, states = _folders(tmp_path)
    _save(models, states, 10)
    for empty in ('', None):  # BasicSR's load_resume_state: ``if opt['path'].get('resume_state')``
        assert find_resume_state(_options(models, states, auto=False, resume_state=empty), print) is None


def test_only_save_temps_of_gone_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    ours = tmp_path / f'.net_g_5.pth.{dead.pid}{TEMP_SUFFIX}'  # save_atomically's name: .<name>.<pid>.tmp
    users = [tmp_path / f'notes.{dead.pid}{TEMP_SUFFIX}', tmp_path / f'.net_g_5.pth.{dead.pid}{TEMP_SUFFIX}.bak']
    for path in [ours] + users:
        path.write_bytes(b'x')
    assert remove_stale_temps([str(tmp_path)]) == [str(ours)]
    assert all(path.exists() for path in users)


def test_random_states_of_another_number_of_processes_are_not_used(tmp_path, caplog):
    calls = []
    run = TrainingRun()
    run.sampler = SimpleNamespace(resume_at=lambda *args: calls.append(args))
    opt = {'datasets': {'train': {'batch_size_per_gpu': 2}}, 'dist': False, 'num_gpu': 0, 'rank': 0, 'world_size': 1}
    two_ranks = [{'rank': 0}, {'rank': 1}]  # a state saved by a run of two processes
    logger = logging.getLogger('basicsr')  # BasicSR's root logger does not propagate
    logger.addHandler(caplog.handler)
    try:
        run.continue_sampler(opt, {'epoch': 1, 'iter': 8, 'rng': two_ranks})
    finally:
        logger.removeHandler(caplog.handler)
    assert calls == [(1, 8, 2, None)]
    assert 'random states of 2 process(es), this run has 1' in caplog.text
    run.continue_sampler(opt, {'epoch': 1, 'iter': 8, 'rng': two_ranks[:1]})
    assert calls[-1] == (1, 8, 2, {'rank': 0})


def test_networks_and_param_keys_must_pair_up(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(checkpoints, 'save_atomically', lambda obj, path, *a: written.append(path))
    net = torch.nn.Conv2d(1, 1, 3)
    model = SimpleNamespace(opt={'path': {'models': str(tmp_path)}}, get_bare_model=lambda n: n)
    for nets, keys in (([net, net], 'params'), ([net, net], ['params']), (net, ['params', 'params_ema'])):
        with pytest.raises(ValueError, match='save_network: '):
            checkpoints.save_network(model, nets, 'net_g', 5, param_key=keys)
    assert written == []  # nothing half-saved


def test_a_save_writes_through_a_hidden_temporary_that_a_later_run_can_clean(tmp_path, monkeypatch):
    """The documented ``.<name>.<pid>.tmp`` beside the file: hidden from BasicSR's ``*.state`` scan, and the name
    :func:`remove_stale_temps` removes once its process is gone (a kill during the save leaves it)."""
    written = []
    real_replace = checkpoints.os.replace

    def replace(src, dst):
        written.append(src)
        real_replace(src, dst)

    monkeypatch.setattr(checkpoints.os, 'replace', replace)
    target = tmp_path / '8.state'
    checkpoints.save_atomically({'iter': 8}, str(target))
    assert written == [str(tmp_path / f'.8.state.{os.getpid()}{TEMP_SUFFIX}')]
    assert torch.load(target) == {'iter': 8}
