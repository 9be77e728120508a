"""``.onnx`` entries in ``converse-compare``: loaded through ONNX Runtime, checked against the protocol."""
import pytest
import torch

from converse_basicsr.evaluation.model_entries import load_model
from converse_basicsr.export import OnnxModel, OnnxModelError
from tests.helpers.export_models import export


@pytest.fixture(scope='module')
def denoiser(tmp_path_factory):
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1).eval()
    path, _ = export(model, tmp_path_factory.mktemp('onnx'), 'den.onnx', in_channels=1)
    return model, path


def test_onnx_entry_runs_like_the_module(denoiser):
    model, path = denoiser
    spec = load_model(str(path), 'denoise', 1)
    assert isinstance(spec.module, OnnxModel) and spec.name == 'den.onnx' and spec.source == f'onnx {path}'
    x = torch.rand(1, 1, 17, 23)
    with torch.no_grad():
        assert float((spec.module(x) - model(x)).abs().max()) < 1e-6


def test_onnx_entry_with_the_wrong_scale_is_refused(denoiser):
    with pytest.raises(OnnxModelError, match='needs scale 4, the file upscales by 1'):
        load_model({'onnx': str(denoiser[1]), 'name': 'x'}, 'sr', 4)
