"""Fine-tuning the published Converse-DnCNN through converse-train keeps its Set12 sigma = 25 PSNR (slow suite).

The training config ``options/train/denoising/train_ConverseDnCNN_gray_sigma25.yml`` is used as shipped
except for the data location (Train400 from ../shared), ``pretrain_network_g`` (the published
checkpoint), a small learning rate, a few hundred iterations, a CPU-sized batch and no validation during
training. The result is then measured by converse-test with ``options/test/test_converse_dncnn_sigma25.yml``'s
Set12 entry, i.e. the protocol's own code. A training degradation or data path that differs from the test
protocol (noise scale, value range, colour, clipping) pulls the model away from its optimum and drops
the PSNR by more than the 0.05 dB allowed here.
"""
import csv

import pytest
import yaml

from converse_basicsr import test as converse_test
from converse_basicsr import train as converse_train
from tests.helpers.shared_files import REPO_ROOT, shared_path

PUBLISHED_SET12_PSNR = 30.6986  # the published converse_dncnn.pth on Set12, sigma 25 (paper table: 30.70)
TOLERANCE_DB = 0.05
FINETUNE_ITERS = 200
FINETUNE_LR = 1e-5


def _load(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def finetune_options(train_root, checkpoint):
    opt = _load(REPO_ROOT / 'options' / 'train' / 'denoising' / 'train_ConverseDnCNN_gray_sigma25.yml')
    opt['name'] = 'finetune_converse_dncnn'
    opt['num_gpu'] = 0
    train_set = opt['datasets']['train']
    train_set.update(dataroot_gt=str(train_root), num_worker_per_gpu=0, batch_size_per_gpu=1)
    opt['datasets'] = {'train': train_set}  # no validation during training: measured below with converse-test
    opt.pop('val')
    opt['path']['pretrain_network_g'] = str(checkpoint)
    opt['train']['optim_g']['lr'] = FINETUNE_LR
    opt['train']['total_iter'] = FINETUNE_ITERS
    opt['train']['scheduler']['milestones'] = [FINETUNE_ITERS * 10]
    opt['logger'].update(print_freq=50, save_checkpoint_freq=FINETUNE_ITERS * 10, use_tb_logger=False)
    return opt


def set12_test_options(set12_root, weights):
    opt = _load(REPO_ROOT / 'options' / 'test' / 'test_converse_dncnn_sigma25.yml')
    opt['name'] = 'finetuned_converse_dncnn_set12'
    opt['num_gpu'] = 0
    set12 = opt['datasets']['test_1']
    assert set12['name'] == 'Set12'
    set12['dataroot_gt'] = str(set12_root)
    opt['datasets'] = {'test_1': set12}
    opt['path'].update(pretrain_network_g=str(weights), param_key_g='params')
    return opt


@pytest.mark.slow
def test_finetuned_converse_dncnn_keeps_set12_psnr(tmp_path, monkeypatch):
    train_root = shared_path('datasets', 'Train400')
    set12_root = shared_path('testsets', 'Set12')
    checkpoint = shared_path('reference', 'zoo', 'converse_dncnn.pth')
    monkeypatch.chdir(tmp_path)

    train_opt = finetune_options(train_root, checkpoint)
    train_path = tmp_path / 'finetune.yml'
    train_path.write_text(yaml.safe_dump(train_opt))
    converse_train.main(['-opt', str(train_path)], root_path=str(tmp_path))
    weights = tmp_path / 'experiments' / train_opt['name'] / 'models' / 'net_g_latest.pth'
    assert weights.is_file()

    test_path = tmp_path / 'test.yml'
    test_path.write_text(yaml.safe_dump(set12_test_options(set12_root, weights)))
    csv_paths = converse_test.run(['-opt', str(test_path)])
    assert len(csv_paths) == 1
    with open(csv_paths[0], newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    psnr = sum(float(row['psnr']) for row in rows) / len(rows)
    print(f'fine-tuned {FINETUNE_ITERS} iterations at lr {FINETUNE_LR}: Set12 sigma 25 PSNR {psnr:.4f} dB '
          f'(published {PUBLISHED_SET12_PSNR})')
    assert abs(psnr - PUBLISHED_SET12_PSNR) < TOLERANCE_DB
