"""What an exported file promises and what the runtime holds a caller to: the minimum size of a reflect-padded
model (p + 1, in the metadata and enforced on either side), the height ``If`` of a dynamic file on heights and
widths of different residues mod 4, a graph whose output shape differs from PyTorch's never written, and a file
with a kernel input refused for super-resolution before anything runs."""
import json

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from converse_basicsr.export import ExportError, OnnxModelError, load_onnx, to_onnx
from converse_basicsr.export.runtime import load_for_task
from converse_basicsr.ops import Converse2D

PADDING = 4  # reflect padding p needs p + 1 input pixels: torch refuses to reflect-pad a side of p or fewer


@pytest.fixture(scope='module')
def reflect_file(tmp_path_factory):
    """A dynamic export of a 1-channel model with one reflect-padded Converse2D (one export for the module)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), Converse2D(2, 2, 3, 1, PADDING, 'reflect')).eval()
    path = tmp_path_factory.mktemp('reflect') / 'reflect.onnx'
    to_onnx(model, path)
    return model, path


def test_reflect_padding_sets_the_minimum_size_and_either_side_below_it_is_refused(reflect_file):
    model, path = reflect_file
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert meta['converse.min_size'] == PADDING + 1
    with torch.no_grad():  # the minimum is the model's own: p + 1 runs, p does not
        model(torch.rand(1, 1, PADDING + 1, PADDING + 1))
        with pytest.raises((RuntimeError, ValueError)):
            model(torch.rand(1, 1, PADDING, 40))
    onnx_model = load_onnx(path)
    assert onnx_model(torch.rand(1, 1, PADDING + 1, PADDING + 1)).shape == (1, 2, PADDING + 1, PADDING + 1)
    for shape in ((PADDING, 40), (40, PADDING)):
        with pytest.raises(ValueError, match=f'at least {PADDING + 1}x{PADDING + 1}'):
            onnx_model(torch.rand(1, 1, *shape))


@pytest.mark.parametrize('height, width', [(21, 20), (20, 21), (22, 24)])
def test_the_height_alone_chooses_the_radix_graph(reflect_file, height, width):
    """One side a multiple of 4 and the other not, both ways (and a height of 4k + 2): the file's ``If`` must
    test the height, for which its radix-4 branch was traced; the output equals PyTorch's."""
    model, path = reflect_file
    x = torch.rand(2, 1, height, width, generator=torch.Generator().manual_seed(height * width))
    with torch.no_grad():
        expected = model(x)
    got = load_onnx(path)(x)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-4


class _CroppedWhenExported(torch.nn.Module):
    """Eager: ``2·x``. Traced for ONNX: one row short, as an exporter bug would make it."""

    def forward(self, x):
        y = x * 2
        if torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
            return y[..., 1:, :]
        return y


def test_a_graph_whose_output_shape_differs_is_not_written(tmp_path):
    path = tmp_path / 'cropped.onnx'
    with pytest.raises(ExportError, match=r'disagrees with PyTorch.*shape \(2, 1, 15, 19\) vs \(2, 1, 16, 19\)'):
        to_onnx(_CroppedWhenExported(), path, in_channels=1)
    assert not path.exists()


def _kernel_model_file(path, scale):
    """A hand-made ONNX file with an image and a 7×7 kernel input (a non-blind deblurring model's inputs) whose
    metadata says it upscales by ``scale``."""
    image = helper.make_tensor_value_info('input', TensorProto.FLOAT, ['N', 3, 'H', 'W'])
    kernel = helper.make_tensor_value_info('kernel', TensorProto.FLOAT, ['N', 1, 7, 7])
    output = helper.make_tensor_value_info('output', TensorProto.FLOAT, ['N', 3, 'H', 'W'])
    graph = helper.make_graph([helper.make_node('Identity', ['input'], ['output'])], 'kernel_model', [image, kernel],
                              [output])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    proto.ir_version = 8
    for key, value in (('scale', scale), ('min_size', 2), ('inputs', ['input', 'kernel'])):
        proto.metadata_props.add(key=f'converse.{key}', value=json.dumps(value))
    onnx.save(proto, str(path))
    return path


def test_a_kernel_input_is_refused_for_super_resolution_up_front(tmp_path):
    path = _kernel_model_file(tmp_path / 'kernel.onnx', 4)
    with pytest.raises(
            OnnxModelError, match=r'kernel.onnx: inputs do not fit the task: expected input .* the file '
            r'has input tensor\(float\) .*, kernel tensor\(float\)'):
        load_for_task(path, 'sr', 4)
    deblur = _kernel_model_file(tmp_path / 'deblur.onnx', 1)
    assert load_for_task(deblur, 'deblur').kernel_size == 7  # the same inputs fit non-blind deblurring
