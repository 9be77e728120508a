"""Which training state ``--auto_resume`` resumes from: one whose model file holds no weights (an empty dict) is
skipped for the older good one, and a network listed in ``ignore_resume_networks`` needs no model file."""
import torch

from converse_basicsr.training.checkpoints import find_resume_state


def _run_folders(tmp_path):
    models, states = tmp_path / 'models', tmp_path / 'training_states'
    models.mkdir(), states.mkdir()
    return models, states


def _state(states, iteration):
    torch.save({'epoch': 0, 'iter': iteration, 'optimizers': [], 'schedulers': []}, states / f'{iteration}.state')


def _weights(models, net, iteration, weights=None):
    torch.save({'params': {'w': torch.ones(2)}} if weights is None else weights, models / f'net_{net}_{iteration}.pth')


def _options(models, states, networks=('network_g', ), ignored=None):
    opt = {'auto_resume': True, 'path': {'models': str(models), 'training_states': str(states)}}
    opt.update({key: {'type': 'ConverseDnCNN'} for key in networks})
    if ignored is not None:
        opt['path']['ignore_resume_networks'] = ignored
    return opt


def test_a_state_whose_model_file_is_an_empty_dict_is_skipped_for_the_older_one(tmp_path):
    models, states = _run_folders(tmp_path)
    for iteration in (10, 20):
        _state(states, iteration)
    _weights(models, 'g', 10)
    _weights(models, 'g', 20, weights={})
    notes = []
    opt = _options(models, states)
    state = find_resume_state(opt, notes.append)
    assert state['iter'] == 10 and opt['path']['resume_state'] == str(states / '10.state')
    assert any('skipping' in note and 'net_g_20.pth holds no weights' in note for note in notes), notes


def test_an_ignored_network_needs_no_model_file(tmp_path):
    models, states = _run_folders(tmp_path)
    _state(states, 10)
    _weights(models, 'g', 10)  # no net_d_10.pth
    state = find_resume_state(_options(models, states, ('network_g', 'network_d'), ['network_d']), [].append)
    assert state is not None and state['iter'] == 10
    notes = []  # the same folder without the ignore list: net_d's file is missing, nothing to resume from
    assert find_resume_state(_options(models, states, ('network_g', 'network_d')), notes.append) is None
    assert any('net_d_10.pth is missing' in note for note in notes), notes
