"""A tiny ConverseDnCNN checkpoint (plain state dict, no description) and converse-restore run on it by path with
``--arch``: what the restore CLI tests of tests/inference share."""
import json

import torch

from converse_basicsr.hub import zoo
from converse_basicsr.restore import main as restore_main

KWARGS = '{"num_in_ch": 1, "num_feat": 4, "num_block": 1, "kernel_size": 3, "padding": 2}'


def tiny_checkpoint(folder):
    """``folder/net.pth``: a seeded, untrained ConverseDnCNN of :data:`KWARGS` as a plain state dict."""
    torch.manual_seed(0)
    path = folder / 'net.pth'
    torch.save(zoo.build_arch('ConverseDnCNN', json.loads(KWARGS)).state_dict(), path)
    return path


def restore(checkpoint, source, output, *extra, kwargs=KWARGS):
    """converse-restore's exit status for ``checkpoint`` on ``source`` into ``output`` (``extra``: more flags)."""
    return restore_main([
        '--model',
        str(checkpoint), '--arch', 'ConverseDnCNN', '--arch-kwargs', kwargs, '--input',
        str(source), '--output',
        str(output), *extra
    ])
