"""``converse-train``'s own flags that contradict or lack each other: ``-opt`` with ``--config`` and ``--check-data``
without an option file are one error line and exit status 2, before BasicSR's pipeline starts."""
from os import path as osp

import pytest

from converse_basicsr import train
from converse_basicsr.training import pipeline

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHIPPED = 'denoising/train_ConverseDnCNN_gray_sigma25'


@pytest.fixture
def no_training(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, 'train_pipeline', lambda root: pytest.fail('BasicSR pipeline started'))
    return tmp_path


def test_opt_and_config_together_are_refused(no_training, capsys):
    opt_file = osp.join(REPO, 'options', 'train', f'{SHIPPED}.yml')
    assert osp.isfile(opt_file)
    assert train.main(['-opt', opt_file, '--config', SHIPPED]) == 2
    err = capsys.readouterr().err
    assert err == 'converse-train: error: give -opt PATH or --config NAME, not both\n'
    assert list(no_training.iterdir()) == []


def test_check_data_without_an_option_file_is_refused(no_training, capsys):
    assert train.main(['--check-data']) == 2
    assert capsys.readouterr().err == 'converse-train: error: --check-data needs -opt PATH or --config NAME\n'
    assert list(no_training.iterdir()) == []
