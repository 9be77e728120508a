"""Bad input to the exporter and to the ONNX Runtime wrapper: one error naming the thing, exit status 2."""
import numpy as np
import pytest
import torch

from converse_basicsr.export import ExportError, OnnxModelError, load_onnx
from converse_basicsr.export.cli import main as export_main
from converse_basicsr.restore import main as restore_main
from tests.helpers.export_models import export


class _Unexportable(torch.nn.Module):

    def forward(self, x):
        return x * 2 if x.sum() > 0 else x  # control flow on a value: the exporter cannot trace it


def test_model_without_converse2d_exports_with_a_note(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1)).eval()
    path, notes = export(model, tmp_path)
    assert len(notes) == 1 and 'no Converse2D' in notes[0]
    x = torch.rand(1, 3, 20, 30)
    with torch.no_grad():
        assert float((load_onnx(path)(x) - model(x)).abs().max()) < 1e-5


def test_unexportable_layer_is_one_error_naming_it(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), _Unexportable()).eval()
    with pytest.raises(ExportError, match=r"cannot export Sequential: layer '1': .*data-dependent") as info:
        export(model, tmp_path)
    assert '\n' not in str(info.value)
    assert not (tmp_path / 'model.onnx').exists()


def test_export_never_overwrites_its_checkpoint(tmp_path, capsys):
    checkpoint = tmp_path / 'net.onnx'
    checkpoint.write_bytes(b'checkpoint')
    status = export_main(['--model', str(checkpoint), '--output', str(checkpoint)])
    assert status == 2 and checkpoint.read_bytes() == b'checkpoint'
    assert 'would overwrite' in capsys.readouterr().err


def test_not_onnx_file_is_named(tmp_path):
    bogus = tmp_path / 'bogus.onnx'
    bogus.write_bytes(b'not a model at all')
    with pytest.raises(OnnxModelError, match='bogus.onnx is not an ONNX model'):
        load_onnx(bogus)


def test_restore_with_unfit_inputs_exits_2(tmp_path, capsys):
    """A model whose input is not an image batch (1-D here) is refused with expected vs actual inputs."""
    path, _ = export(_Flat().eval(), tmp_path, in_channels=5)
    image = tmp_path / 'in.png'
    import cv2
    cv2.imwrite(str(image), np.zeros((16, 16, 3), np.uint8))
    status = restore_main(['--onnx', str(path), '--input', str(image), '--output', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert status == 2
    assert 'expected input tensor(float) [N, C, H, W] with C = 1 or 3' in err and 'the file has input' in err
    assert not (tmp_path / 'out' / 'in.png').exists()


def test_restore_with_not_onnx_exits_2(tmp_path, capsys):
    bogus = tmp_path / 'x.onnx'
    bogus.write_text('hello')
    image = tmp_path / 'in.png'
    import cv2
    cv2.imwrite(str(image), np.zeros((16, 16, 3), np.uint8))
    assert restore_main(['--onnx', str(bogus), '--input', str(image), '--output', str(tmp_path / 'out')]) == 2
    assert 'is not an ONNX model' in capsys.readouterr().err


class _Flat(torch.nn.Module):
    """An image model exported with 5 input channels: not an RGB or grayscale restorer."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(5, 3, 1)

    def forward(self, x):
        return self.conv(x)
