"""Saving a checkpoint over an existing one leaves exactly that file in the folder (no temporary or backup file
beside it), holding the new contents."""
import torch

from converse_basicsr.training.checkpoints import save_atomically


def test_saving_twice_leaves_one_file_with_the_new_contents(tmp_path):
    path = tmp_path / 'net_g_10.pth'
    assert save_atomically({'w': torch.zeros(3)}, str(path))
    assert save_atomically({'w': torch.ones(3)}, str(path))
    assert [p.name for p in tmp_path.iterdir()] == ['net_g_10.pth']
    assert torch.equal(torch.load(path)['w'], torch.ones(3))
