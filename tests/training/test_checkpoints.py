"""Training states and checkpoints: atomic writes with BasicSR's retries, checked resume, and the pieces of the
exact resume (random states saved; the sampler continues the interrupted epoch). End to end: test_train_resume.py
(resume equals an uninterrupted run) and test_train_faults.py (kills at random points)."""
import logging
import os
import random
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from converse_basicsr.training import checkpoints
from converse_basicsr.training.compat import apply_training_fixes
from converse_basicsr.training.pipeline import ResumableSampler, TrainingRun

apply_training_fixes()


def test_save_atomically_keeps_the_old_file_on_a_failed_write(tmp_path, monkeypatch, caplog):
    target = tmp_path / '8.state'
    checkpoints.save_atomically({'iter': 4}, str(target))
    assert torch.load(target) == {'iter': 4} and os.listdir(tmp_path) == ['8.state']

    tries = []
    real_save = torch.save

    def fail_half_way(obj, f):  # writes part of the file, then the disk "fills up"
        tries.append(f.name)
        real_save(obj, f)
        f.truncate(5)
        raise OSError('No space left on device')

    monkeypatch.setattr(checkpoints.torch, 'save', fail_half_way)
    monkeypatch.setattr(checkpoints.time, 'sleep', lambda s: None)
    logger = logging.getLogger('test_save_atomically')
    caplog.set_level(logging.WARNING, logger='test_save_atomically')
    with pytest.raises(checkpoints.SaveError) as failed:  # the run ends, naming the file and the cause
        checkpoints.save_atomically({'iter': 8}, str(target), 'training state', logger)
    assert str(failed.value).startswith(f'the training state {target} could not be saved: No space left on device')
    assert len(tries) == checkpoints.SAVE_TRIES == 3  # BasicSR's retry loop
    assert all(os.path.dirname(name) == str(tmp_path) and name.endswith('.tmp') for name in tries)
    assert torch.load(target) == {'iter': 4}  # the previous complete file is still there
    assert os.listdir(tmp_path) == ['8.state']  # no partial temporary file left
    assert caplog.messages[0] == 'Save training state error: No space left on device, remaining retry times: 2'

    tries.clear()
    outcomes = iter([OSError('flaky'), None])

    def fail_once(obj, f):
        tries.append(f.name)
        error = next(outcomes)
        if error:
            raise error
        real_save(obj, f)

    monkeypatch.setattr(checkpoints.torch, 'save', fail_once)
    assert checkpoints.save_atomically({'iter': 8}, str(target), 'training state', logger) is True
    assert len(tries) == 2 and torch.load(target) == {'iter': 8}


def test_model_saves_go_through_the_atomic_writer(tmp_path, monkeypatch):
    """BaseModel.save_network / save_training_state (after apply_training_fixes) write via save_atomically."""
    from basicsr.models.base_model import BaseModel
    written = []
    monkeypatch.setattr(checkpoints, 'save_atomically', lambda obj, path, *a: written.append((path, obj)))
    net = torch.nn.Conv2d(1, 1, 3)
    model = SimpleNamespace(opt={'path': {'models': str(tmp_path), 'training_states': str(tmp_path)}}, optimizers=[],
                            schedulers=[], get_bare_model=lambda n: n)
    BaseModel.save_network(model, net, 'net_g', 6)
    BaseModel.save_network(model, [net, net], 'net_g', -1, param_key=['params', 'params_ema'])
    BaseModel.save_training_state(model, 1, 6)
    BaseModel.save_training_state(model, 1, -1)  # "latest": no state, as BasicSR
    assert [os.path.basename(p) for p, _ in written] == ['net_g_6.pth', 'net_g_latest.pth', '6.state']
    assert written[0][1]['params'].keys() == net.state_dict().keys()
    assert set(written[1][1]) == {'params', 'params_ema'}
    assert written[2][1]['iter'] == 6 and len(written[2][1]['rng']) == 1


def _experiment(tmp_path, iters, bad=None):
    """States and model files of iterations ``iters``; ``bad`` maps an iteration to how it is broken."""
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir(exist_ok=True)
    models.mkdir(exist_ok=True)
    for it in iters:
        state = {'epoch': 0, 'iter': it, 'optimizers': [], 'schedulers': [{'milestones': Counter([3])}]}
        torch.save(state, states / f'{it}.state')
        torch.save({'params': {'w': torch.full((2, ), float(it))}}, models / f'net_g_{it}.pth')
    for it, how in (bad or {}).items():
        state_file, model_file = states / f'{it}.state', models / f'net_g_{it}.pth'
        if how == 'empty':
            state_file.write_bytes(b'')
        elif how == 'truncated':
            state_file.write_bytes(state_file.read_bytes()[:40])
        elif how == 'wrong_iter':
            torch.save({'epoch': 0, 'iter': it - 1, 'optimizers': [], 'schedulers': []}, state_file)
        elif how == 'not_a_state':
            torch.save({'params': {}}, state_file)
        elif how == 'no_model':
            model_file.unlink()
        elif how == 'bad_model':
            model_file.write_bytes(b'PK\x03\x04 garbage')
    return {
        'auto_resume': True, 'network_g': {'type': 'ConverseDnCNN'},
        'path': {'training_states': str(states), 'models': str(models), 'resume_state': None}
    }


REASONS = {
    'empty': 'does not load', 'truncated': 'does not load', 'wrong_iter': 'holds iter 11, not the 12',
    'not_a_state': 'is not a training state', 'no_model': 'net_g_12.pth is missing',
    'bad_model': 'net_g_12.pth does not load'
}


@pytest.mark.parametrize('how', sorted(REASONS))
def test_auto_resume_names_a_bad_state_and_falls_back(tmp_path, how):
    opt = _experiment(tmp_path, [4, 8, 12], bad={12: how})
    notes = []
    state = checkpoints.find_resume_state(opt, notes.append)
    assert state['iter'] == 8 and opt['path']['resume_state'].endswith('8.state')
    assert 'skipping a bad training state' in notes[0] and '12.state' in notes[0] and REASONS[how] in notes[0]
    assert notes[1].startswith('Auto resume: resuming from') and '8.state' in notes[1]


def test_auto_resume_without_a_valid_state_starts_clean(tmp_path):
    opt = _experiment(tmp_path, [4, 8], bad={4: 'empty', 8: 'no_model'})
    (tmp_path / 'training_states' / '.12.state.999.tmp').write_bytes(b'partial')  # a killed write
    notes = []
    assert checkpoints.find_resume_state(opt, notes.append) is None
    assert opt['path']['resume_state'] is None
    assert len(notes) == 3 and 'no valid training state' in notes[-1] and 'starting clean' in notes[-1]


def test_explicit_resume_state_must_be_valid(tmp_path):
    opt = _experiment(tmp_path, [4, 8], bad={8: 'truncated'})
    opt['auto_resume'] = False
    opt['path']['resume_state'] = str(tmp_path / 'training_states' / '8.state')
    with pytest.raises(checkpoints.ResumeError, match='path.resume_state: .*8.state does not load'):
        checkpoints.find_resume_state(opt, print)
    opt['path']['resume_state'] = str(tmp_path / 'training_states' / '4.state')
    assert checkpoints.find_resume_state(opt, print)['iter'] == 4


def test_exact_resume_pieces(tmp_path):
    # Saving: every training state carries the random states.
    fake = SimpleNamespace(optimizers=[], schedulers=[], opt={'path': {'training_states': str(tmp_path)}})
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    checkpoints.save_training_state(fake, 0, 3)
    saved = torch.load(tmp_path / '3.state', weights_only=False)
    expected = (random.random(), np.random.rand(), torch.rand(1))

    # Resuming at iteration 8 = the 3rd of epoch 1 (10 samples, batch 2: 5 iterations per epoch) continues
    # with the 4th batch of epoch 1 (samples 6..9 of that epoch's order) and the saved random streams.
    run = TrainingRun()
    sampler = run.make_sampler(list(range(10)), num_replicas=1, rank=0)
    sampler.set_epoch(1)
    order = list(sampler)
    opt = {'datasets': {'train': {'batch_size_per_gpu': 2}}, 'dist': False, 'num_gpu': 0, 'rank': 0, 'world_size': 1}
    run.continue_sampler(opt, {'epoch': 1, 'iter': 8, 'rng': saved['rng']})
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    sampler.set_epoch(1)
    resumed = iter(sampler)
    assert next(resumed) == order[6]
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    assert [order[6]] + list(resumed) == order[6:]
    assert list(sampler) == order  # only the first pass after resuming is shortened

    # Interrupted at the end of epoch 0: that epoch yields nothing more, and the random streams are
    # restored when the next epoch starts (before its loader is created, as in the uninterrupted run).
    run.continue_sampler(opt, {'epoch': 0, 'iter': 5, 'rng': saved['rng']})
    sampler.set_epoch(0)
    assert list(sampler) == []
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    sampler.set_epoch(1)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    assert list(sampler) == order

    # A state from another number of processes: same batches, random streams left as seeded.
    run.continue_sampler(dict(opt, world_size=2), {'epoch': 1, 'iter': 8, 'rng': saved['rng']})
    random.seed(99)
    sampler.set_epoch(1)
    assert list(sampler) == order[6:]
    after = random.random()
    random.seed(99)
    assert after == random.random()
    assert isinstance(sampler, ResumableSampler)


def test_training_run_restores_basicsr_train():
    import basicsr.train
    import basicsr.utils.misc
    owners = [
        (basicsr.train, name) for name in ('EnlargedSampler', 'load_resume_state', 'build_model', 'mkdir_and_rename')
    ] + [(basicsr.utils.misc, 'mkdir_and_rename')]
    before = [getattr(owner, name) for owner, name in owners]
    with TrainingRun().installed():
        assert all(getattr(owner, name) is not old for (owner, name), old in zip(owners, before))
    assert [getattr(owner, name) for owner, name in owners] == before


def test_clean_starts_within_one_second_archive_to_distinct_folders(tmp_path, monkeypatch):
    from converse_basicsr.training import pipeline as training
    monkeypatch.setattr(training, 'get_time_str', lambda: '20260101_000000')  # both in the same second
    experiment = tmp_path / 'exp'
    for run in range(3):
        training.mkdir_and_rename(str(experiment))
        (experiment / 'marker').write_text(str(run))
    archives = sorted(p.name for p in tmp_path.iterdir() if p.name != 'exp')
    assert archives == ['exp_archived_20260101_000000', 'exp_archived_20260101_000000_1']
    assert [(tmp_path / a / 'marker').read_text() for a in archives] == ['0', '1']
    assert (experiment / 'marker').read_text() == '2'
