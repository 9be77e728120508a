"""Rows of issue 24's table on the training/test side: each is one line naming the file and the key, exit status
2, and nothing created (no experiments/, tb_logger/ or results/)."""
import os
import re
import subprocess
import sys
from os import path as osp

import pytest
import torch

from converse_basicsr import test, train
from converse_basicsr.training import pipeline
from converse_basicsr.training.checkpoints import TEMP_SUFFIX, remove_stale_temps

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
EDSR = osp.join(REPO, 'options', 'train', 'sr', 'train_ConverseUp_EDSR_x4.yml')
BASE_BLOCK = re.compile(r'  base: .*\n(    .*\n)+')


def _edsr_with(tmp_path, old=None, new=None, base=None):
    text = open(EDSR, encoding='utf-8').read()
    if base is not None:
        text, count = BASE_BLOCK.subn(f'  base: {base}\n', text)
    else:
        count = text.count(old)
        text = text.replace(old, new, 1)
    assert count >= 1
    config = tmp_path / 'case.yml'
    config.write_text(text)
    return config


@pytest.mark.parametrize('edit, message', [
    (dict(old='type: EDSR\n', new='type: EDSRR\n'),
     "network_g.base.type 'EDSRR' is not a known arch (ConverseUp converts a registered SR arch) "
     "(did you mean 'EDSR'?)"),
    (dict(old='    num_feat: 64',
          new='    num_feats: 64'), "network_g.base.num_feats is not an option of EDSR (did you mean 'num_feat'?)"),
    (dict(old='    num_feat: 64',
          new="    num_feat: '16'"), "network_g.base.num_feat must be an integer, got '16' (str)"),
    (dict(base='EDSR'), "network_g.base must be a mapping such as {type: EDSR, num_feat: 64, upscale: 4}, got 'EDSR'"),
    (dict(base='{type: ConverseDnCNN}'), 'network_g.base (ConverseDnCNN) cannot be converted: ConverseDnCNN: found no '
     'upsampler'),
    (dict(old='total_iter:', new='total_iters:'), "train.total_iters is not an option of BasicSR's train: (did you "
     "mean 'total_iter'?)"),
    (dict(old='manual_seed:', new='manaul_seed:'), "manaul_seed is not a BasicSR option (did you mean 'manual_seed'?)"),
])
def test_bad_training_option_is_one_line_before_anything_is_created(tmp_path, monkeypatch, capsys, edit, message):
    config = _edsr_with(tmp_path, **edit)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, 'train_pipeline', lambda root: pytest.fail('trained'))
    assert train.main(['-opt', str(config)]) == 2
    err = capsys.readouterr().err
    assert err == f'converse-train: error: {config}: {message}' + err.split(message, 1)[1]
    assert err.count('\n') == 1 and 'Traceback' not in err, err
    assert sorted(os.listdir(tmp_path)) == ['case.yml']


def test_missing_dataroot_stops_before_experiments(tmp_path, monkeypatch, capsys):
    """A shipped config run from a folder without its data: one line naming the key, no experiments/ folder."""
    monkeypatch.chdir(tmp_path)
    assert train.main(['-opt', EDSR]) == 2
    err = capsys.readouterr().err
    assert "datasets.train.dataroot_gt: 'datasets/DIV2K/DIV2K_train_HR_sub.lmdb' does not exist" in err
    assert err.count('\n') == 1 and os.listdir(tmp_path) == []


def test_converse_test_config_without_shared_is_one_line(tmp_path):
    """From a folder without ../shared: exit 2, one line, no results/ (run as the console script would be)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    run = subprocess.run([sys.executable, '-m', 'converse_basicsr.test', '--config', 'test_converse_dncnn_sigma25'],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith('converse-test: error: ') and run.stderr.count('\n') == 1, run.stderr
    assert "datasets.test_1.dataroot_gt: '../shared/testsets/Set12' does not exist" in run.stderr
    assert 'pass your own copy with -opt FILE' in run.stderr
    assert os.listdir(tmp_path) == []


def test_converse_test_checks_keys_with_did_you_mean(tmp_path, monkeypatch, capsys):
    config = tmp_path / 't.yml'
    text = open(osp.join(REPO, 'options', 'test', 'test_converse_dncnn_sigma25.yml'), encoding='utf-8').read()
    config.write_text(text.replace('manual_seed:', 'manaul_seed:'))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(test, 'run_test_config', lambda *_: pytest.fail('ran'))
    assert test.main(['-opt', str(config)]) == 2
    assert "manaul_seed is not a BasicSR option (did you mean 'manual_seed'?)" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ['t.yml']


def test_stale_save_temps_are_removed_only_when_their_process_is_gone(tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    alive = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        models, states, other = tmp_path / 'models', tmp_path / 'training_states', tmp_path / 'elsewhere'
        for folder in (models, states, other, models / 'sub'):
            folder.mkdir()
        stale = [models / f'.net_g_5.pth.{dead.pid}{TEMP_SUFFIX}', states / f'.5.state.{dead.pid}{TEMP_SUFFIX}']
        kept = [
            models / f'.net_g_6.pth.{alive.pid}{TEMP_SUFFIX}', other / f'.x.{dead.pid}{TEMP_SUFFIX}',
            models / 'sub' / f'.y.{dead.pid}{TEMP_SUFFIX}', models / 'net_g_5.pth', models / f'.z.{TEMP_SUFFIX}'
        ]
        for path in stale + kept:
            path.write_bytes(b'partial')
        notes = []
        removed = remove_stale_temps([str(models), str(states), None, str(tmp_path / 'absent')], notes.append)
        assert sorted(removed) == sorted(map(str, stale)) and len(notes) == 2
        assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    finally:
        alive.kill()
        alive.wait()


def test_training_start_removes_stale_temps_of_its_own_folders(tmp_path):
    """The hook: :class:`TrainingRun.load_resume_state` (called by BasicSR's loop before anything is built)."""
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    models, states = tmp_path / 'models', tmp_path / 'states'
    models.mkdir()
    states.mkdir()
    temp = states / f'.10.state.{dead.pid}{TEMP_SUFFIX}'
    temp.write_bytes(b'x')
    run = pipeline.TrainingRun()
    opt = {'path': {'models': str(models), 'training_states': str(states), 'resume_state': None}}
    assert run.load_resume_state(opt) is None
    assert not temp.exists() and any('interrupted save' in n for n in run.notes)


def test_load_original_state_dict_names_a_file_that_is_not_a_checkpoint(tmp_path):
    from basicsr.archs.srresnet_arch import MSRResNet
    from converse_basicsr.nn.convert import convert_upsamplers, load_original_state_dict
    model, _ = convert_upsamplers(MSRResNet(num_feat=8, num_block=1))
    notes = tmp_path / 'notes.txt'
    notes.write_text('some notes\n')
    with pytest.raises(ValueError, match=f'cannot read checkpoint {re.escape(str(notes))}: not a PyTorch checkpoint'):
        load_original_state_dict(model, str(notes))
    torch.save(MSRResNet(num_feat=8, num_block=1).state_dict(), tmp_path / 'good.pth')
    assert load_original_state_dict(model, str(tmp_path / 'good.pth')).new_keys  # a real one still loads


@pytest.mark.parametrize('arch', ['SRVGGNetCompact', 'ECBSR'])
def test_converter_does_not_suggest_an_exclude_that_leaves_nothing(arch):
    from basicsr.utils.registry import ARCH_REGISTRY
    from converse_basicsr.nn.convert import ConversionError, convert_upsamplers
    kwargs = dict(num_feat=8, num_conv=2) if arch == 'SRVGGNetCompact' else dict(
        num_in_ch=1, num_out_ch=1, num_block=1, num_channel=8, with_idt=False, act_type='prelu', scale=2)
    with pytest.raises(ConversionError) as error:
        convert_upsamplers(ARCH_REGISTRY.get(arch)(**kwargs))
    assert 'exclude=' not in str(error.value)
    assert f'it is the only upsampler of {arch}, so excluding it leaves nothing to convert' in str(error.value)
