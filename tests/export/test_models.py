"""Whole models exported and run in ONNX Runtime: the Converse archs (small, fast), a ConverseUp-converted EDSR,
and the four published checkpoints through ``converse-export`` (slow)."""
import json

import onnx
import pytest
import torch

from basicsr.archs.edsr_arch import EDSR
from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN
from converse_basicsr.archs.converse_srresnet_arch import ConverseMSRResNet
from converse_basicsr.archs.converse_usrnet_arch import ConverseUSRNet
from converse_basicsr.archs.conversenet_arch import ConverseNet
from converse_basicsr.export.cli import main as export_main
from converse_basicsr.hub.zoo import ZOO, load_pretrained
from converse_basicsr.nn.convert import convert_upsamplers
from tests.helpers.export_models import SIZES, TOLERANCE, domains, export, max_error
from tests.helpers.shared_files import shared_path


def _small(arch):
    torch.manual_seed(0)
    model = {
        'dncnn': lambda: ConverseDnCNN(num_in_ch=1, num_feat=8, num_block=2),
        'srresnet': lambda: ConverseMSRResNet(num_feat=8, num_block=1, upscale=4),
        'conversenet': lambda: ConverseNet(num_feat=8, num_block=1, num_iter=2),
        'usrnet': lambda: ConverseUSRNet(num_feat=8, num_block=1, num_iter=2),
    }[arch]()
    return model.eval()


@pytest.mark.parametrize(  # SRResNet's and ConverseNet's layers are covered by EDSR's and DnCNN's: slow
    'arch', [
        'dncnn', 'usrnet',
        pytest.param('srresnet', marks=pytest.mark.slow),
        pytest.param('conversenet', marks=pytest.mark.slow)
    ])
def test_small_archs_match_pytorch(tmp_path, arch):
    model = _small(arch)
    path, _ = export(model, tmp_path)
    assert domains(path) <= {'', 'ai.onnx'}
    kernel_size = 7 if arch == 'usrnet' else 0
    names = [i.name for i in onnx.load(str(path)).graph.input]
    assert names == (['input', 'kernel'] if kernel_size else ['input'])
    for h, w in SIZES:
        assert max_error(model, path, (2, model.num_in_ch, h, w), kernel_size) < TOLERANCE, (h, w)


def test_converse_up_edsr(tmp_path):
    torch.manual_seed(0)
    model, report = convert_upsamplers(EDSR(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=2))
    model.eval()
    path, notes = export(model.eval(), tmp_path, in_channels=3)
    assert notes == [] and domains(path) <= {'', 'ai.onnx'}
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert meta['converse.scale'] == 2 and meta['converse.converse_layers'] == 1
    for h, w in SIZES:
        assert max_error(model, path, (1, 3, h, w)) < TOLERANCE, (h, w)


@pytest.mark.slow
@pytest.mark.parametrize('name', list(ZOO))
def test_published_models_from_converse_export(tmp_path, name):
    """``converse-export`` on each published checkpoint: one file, 61x83, 96x64 and 256x256 within 1e-4."""
    model_dir = shared_path('reference', 'zoo')
    output = tmp_path / f'{name}.onnx'
    assert export_main(['--model', name, '--model-dir', str(model_dir), '--output', str(output)]) == 0
    assert domains(output) <= {'', 'ai.onnx'}
    model, entry = load_pretrained(name, model_dir=model_dir, return_entry=True)
    names = [i.name for i in onnx.load(str(output)).graph.input]
    assert names == (['input', 'kernel'] if entry.kernel_size else ['input'])
    for h, w in SIZES + [(256, 256)]:
        assert max_error(model, output, (1, entry.in_channels, h, w), entry.kernel_size) < TOLERANCE, (name, h, w)
