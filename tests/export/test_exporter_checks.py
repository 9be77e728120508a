"""What :func:`to_onnx` refuses before it traces anything (an output that is no ``.onnx`` file, a missing folder,
the checkpoint itself, a static size below the model's minimum, a model whose channels or scale cannot be told),
each one :class:`ExportError` naming the thing and no file written; and the ``converse.*`` metadata entries, as
docs/export.md lists them, built by :func:`.exporter.metadata` without an export."""
import json
import re

import pytest
import torch

from converse_basicsr.archs.converse_usrnet_arch import ConverseUSRNet
from converse_basicsr.export import ExportError, to_onnx
from converse_basicsr.export.exporter import metadata
from converse_basicsr.hub.zoo import ZOO
from converse_basicsr.ops import Converse2D

REFLECT = 4  # reflect padding p: the model runs on inputs of p + 1 pixels or more (docs/export.md)


def _reflect_model():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), Converse2D(2, 2, 3, 1, REFLECT, 'reflect'))


class _Returns(torch.nn.Module):
    """``forward`` returns ``make(x)``; no convolution to tell its channels from, unless ``num_in_ch`` is set."""

    def __init__(self, make, num_in_ch=None):
        super().__init__()
        self.make = make
        if num_in_ch is not None:
            self.num_in_ch = num_in_ch

    def forward(self, x):
        return self.make(x)


@pytest.mark.parametrize('name', ['model.pth', 'model.onnx.tmp', 'model'])
def test_an_output_that_is_not_an_onnx_file_is_refused(tmp_path, name):
    with pytest.raises(ExportError, match=f'output .*{name} must end in .onnx'):
        to_onnx(_reflect_model(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_the_suffix_is_case_insensitive(tmp_path):
    """``MODEL.ONNX`` passes the path checks: the next check (the static size) is the one that refuses it."""
    with pytest.raises(ExportError, match=r'static size \(2, 2\)'):
        to_onnx(_reflect_model(), tmp_path / 'MODEL.ONNX', static=(2, 2))


def test_a_missing_output_folder_is_named_before_the_export(tmp_path):
    with pytest.raises(ExportError, match=r'output folder .*absent does not exist'):
        to_onnx(_reflect_model(), tmp_path / 'absent' / 'model.onnx')
    assert not (tmp_path / 'absent').exists()


def test_the_checkpoint_it_came_from_is_never_overwritten(tmp_path):
    source = tmp_path / 'net.onnx'
    source.write_bytes(b'checkpoint')
    with pytest.raises(ExportError, match=r'output .*net\.onnx would overwrite the input .*net\.onnx'):
        to_onnx(_reflect_model(), source, source=source)
    assert source.read_bytes() == b'checkpoint'
    (tmp_path / 'link').symlink_to(tmp_path)  # the same file by another path
    with pytest.raises(ExportError, match='would overwrite'):
        to_onnx(_reflect_model(), tmp_path / 'link' / 'net.onnx', source=str(source))
    assert source.read_bytes() == b'checkpoint'


@pytest.mark.parametrize('static', [(REFLECT, 40), (40, REFLECT), (40, ), (40, 40, 40)])
def test_a_static_size_must_be_two_sides_each_at_least_the_minimum(tmp_path, static):
    message = re.escape(f'static size {static!r} must be (H, W), each at least {REFLECT + 1}')
    with pytest.raises(ExportError, match=message):
        to_onnx(_reflect_model(), tmp_path / 'model.onnx', static=static)
    assert not (tmp_path / 'model.onnx').exists()


def test_a_model_whose_channels_cannot_be_told_is_refused():
    with pytest.raises(ExportError, match=r'cannot tell how many channels _Returns takes; pass in_channels'):
        to_onnx(_Returns(lambda x: x * 2), 'never.onnx')


@pytest.mark.parametrize(
    'make, shape',
    [
        (lambda x: torch.nn.functional.interpolate(x, scale_factor=(2, 1)), r'\(2, 3, 32, 19\)'),  # height only
        (lambda x: torch.nn.functional.interpolate(x, scale_factor=1.5), r'\(2, 3, 24, 28\)'),
        (lambda x: torch.nn.functional.avg_pool2d(x, 2), r'\(2, 3, 8, 9\)'),
    ])
def test_a_model_without_one_integer_scale_is_refused(tmp_path, make, shape):
    """The example input is (2, C, 16, 19): the message names it and the output shape."""
    with pytest.raises(ExportError, match=r'_Returns turns \(2, 3, 16, 19\) into ' + shape + ': not an integer scale'):
        to_onnx(_Returns(make), tmp_path / 'model.onnx', in_channels=3)
    assert not (tmp_path / 'model.onnx').exists()


def test_a_fractional_scale_equal_on_both_axes_is_refused(tmp_path):
    """A square static example (20×20) scaled by 1.5 on both axes: equal ratios, but not an integer scale."""
    model = _Returns(lambda x: torch.nn.functional.interpolate(x, scale_factor=1.5))
    with pytest.raises(ExportError, match=r'turns \(1, 3, 20, 20\) into \(1, 3, 30, 30\): not an integer scale'):
        to_onnx(model, tmp_path / 'model.onnx', in_channels=3, static=(20, 20))
    assert not (tmp_path / 'model.onnx').exists()


@pytest.mark.parametrize('make, kind', [(lambda x: (x, x), 'tuple'), (lambda x: x[0], 'Tensor')])
def test_a_model_that_does_not_return_one_image_batch_is_refused(tmp_path, make, kind):
    """``num_in_ch`` tells the channels (no ``in_channels`` needed); the output is what is refused."""
    with pytest.raises(ExportError, match=f'_Returns returns {kind}, not one \\(N, C, H, W\\) tensor'):
        to_onnx(_Returns(make, num_in_ch=2), tmp_path / 'model.onnx')


def _meta(model, **kwargs):
    args = dict(channels=1, out_channels=2, scale=1, kernel_size=0, names=['input'])
    args.update(kwargs)
    extra = {'value_range': args['value_range']} if 'value_range' in args else {}
    entries = metadata(model, args['channels'], args['out_channels'], args['scale'], args['kernel_size'], args['names'],
                       entry=args.get('entry'), **extra)
    assert all(key.startswith('converse.') for key in entries)
    return {key[len('converse.'):]: json.loads(value) for key, value in entries.items()}


def test_metadata_of_a_plain_restorer():
    model = torch.nn.Sequential(_reflect_model(), Converse2D(2, 2, 5, 1, 2, 'circular'))
    meta = _meta(model, scale=3, value_range=(-1, 1))
    assert meta == {
        'scale': 3, 'in_channels': 1, 'out_channels': 2, 'min_size': REFLECT + 1, 'value_range': [-1, 1],
        'inputs': ['input'], 'kernel_size': 0, 'converse_layers': 2, 'formulation': 'dense_dft', 'model': 'Sequential',
        'task': 'restore', 'periodic_boundary': False
    }
    assert _meta(torch.nn.Conv2d(1, 2, 1))['value_range'] == [0.0, 1.0]  # the default: images in [0, 1]


def test_metadata_of_a_kernel_model_and_of_a_zoo_entry():
    usrnet = ConverseUSRNet(num_feat=4, num_block=1, num_iter=1)
    meta = _meta(usrnet, channels=3, out_channels=3, scale=2, kernel_size=7, names=['input', 'kernel'])
    assert meta['task'] == 'deblur_nonblind' and meta['kernel_size'] == 7 and meta['inputs'] == ['input', 'kernel']
    assert meta['model'] == 'ConverseUSRNet' and meta['scale'] == 2
    assert meta['periodic_boundary'] is True  # the runtime tiles it as PyTorch does: wrapping around
    assert meta['min_size'] == 2  # circular padding 2 (its blocks' default) needs 2 pixels
    entry = ZOO['converse_srresnet']
    meta = _meta(torch.nn.Conv2d(3, 3, 1), channels=3, out_channels=3, scale=4, entry=entry)
    assert (meta['model'], meta['task'], meta['converse_layers']) == ('converse_srresnet', 'sr', 0)
