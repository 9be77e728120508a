"""What :func:`load_onnx` accepts and what the loaded module holds a caller to, on small hand-made ONNX files (no
export): the inputs of an image restorer (1 or 3 float channels, at most an ``(N, 1, k, k)`` float kernel), a
kernel required or forbidden by the task, the scale the task needs, only ``converse.*`` metadata read, and at run
time the channels, the minimum size on either side, the dtype and the fixed ``sf`` of a kernel model."""
import json

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from converse_basicsr.export import OnnxKernelModel, OnnxModel, OnnxModelError, load_onnx

FLOAT, DOUBLE = TensorProto.FLOAT, TensorProto.DOUBLE


def _file(path, image=('N', 3, 'H', 'W'), kernel=None, meta=None, image_type=FLOAT, kernel_type=FLOAT, extra=()):
    """An ONNX file whose output is its ``input`` (Identity), with an optional ``kernel`` input of shape ``kernel``
    (unused by the graph), further unused inputs ``extra`` and the metadata ``meta`` (keys as written)."""
    inputs = [helper.make_tensor_value_info('input', image_type, list(image))]
    if kernel is not None:
        inputs.append(helper.make_tensor_value_info('kernel', kernel_type, list(kernel)))
    inputs += [helper.make_tensor_value_info(name, FLOAT, ['N', 1]) for name in extra]
    output = helper.make_tensor_value_info('output', image_type, list(image))
    graph = helper.make_graph([helper.make_node('Identity', ['input'], ['output'])], 'identity', inputs, [output])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    proto.ir_version = 8
    for key, value in (meta or {}).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


def _meta(**values):
    return {f'converse.{k}': json.dumps(v) for k, v in values.items()}


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(image=('N', 5, 'H', 'W')),  # neither grayscale nor RGB
        dict(image=('N', 2, 'H', 'W')),
        dict(image=('N', 3, 'H')),  # not a 4-D batch
        dict(image_type=DOUBLE),  # not float32
        dict(kernel=('N', 3, 7, 7)),  # a kernel has one channel
        dict(kernel=('N', 1, 5, 7)),  # and is square
        dict(kernel=('N', 1, 7, 7), kernel_type=DOUBLE),
        dict(kernel=('N', 1, 7, 7), extra=('sigma', )),  # a third input
        dict(extra=('sigma', )),  # a second input that is no kernel
    ])
def test_inputs_that_do_not_fit_image_restoration_are_refused(tmp_path, kwargs):
    path = _file(tmp_path / 'odd.onnx', **kwargs)
    with pytest.raises(
            OnnxModelError, match=r'odd\.onnx: inputs do not fit the task: expected input tensor\(float\) '
            r'\[N, C, H, W\] with C = 1 or 3.*; the file has input '):
        load_onnx(path)


@pytest.mark.parametrize('channels', [1, 3])
def test_grayscale_and_rgb_restorers_load(tmp_path, channels):
    model = load_onnx(_file(tmp_path / 'ok.onnx', image=('N', channels, 'H', 'W')))
    assert type(model) is OnnxModel and model.num_in_ch == channels and model.kernel_size == 0


def test_a_kernel_input_makes_a_kernel_model(tmp_path):
    model = load_onnx(_file(tmp_path / 'k.onnx', kernel=('N', 1, 9, 9)))
    assert isinstance(model, OnnxKernelModel) and model.kernel_size == 9 and model.input_names == ['input', 'kernel']


def test_a_task_that_needs_a_kernel_refuses_a_file_without_one_and_the_reverse(tmp_path):
    plain = _file(tmp_path / 'plain.onnx')
    with pytest.raises(
            OnnxModelError, match=r'plain\.onnx: .*expected input .*, kernel tensor\(float\) \[N, 1, k, k\];'
            r' the file has input tensor\(float\) \[.*\]$'):
        load_onnx(plain, want_kernel=True)
    assert load_onnx(plain, want_kernel=False).kernel_size == 0
    kernel = _file(tmp_path / 'kernel.onnx', kernel=('N', 1, 7, 7))
    with pytest.raises(OnnxModelError, match=r'kernel\.onnx: .*expected input .* with C = 1 or 3; the file has'):
        load_onnx(kernel, want_kernel=False)
    assert load_onnx(kernel, want_kernel=True).kernel_size == 7


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(OnnxModelError, match=r'ONNX model .*absent\.onnx does not exist'):
        load_onnx(tmp_path / 'absent.onnx')
    (tmp_path / 'folder.onnx').mkdir()
    with pytest.raises(OnnxModelError, match=r'folder\.onnx does not exist'):
        load_onnx(tmp_path / 'folder.onnx')


def test_the_scale_the_task_needs(tmp_path):
    x2 = _file(tmp_path / 'x2.onnx', meta=_meta(scale=2))
    with pytest.raises(OnnxModelError, match=r'x2\.onnx: the task needs scale 4, the file upscales by 2'):
        load_onnx(x2, scale=4)
    assert load_onnx(x2, scale=2).upscale == 2
    foreign = _file(tmp_path / 'foreign.onnx')  # no metadata (not written by to_onnx): any scale is taken on trust
    for scale in (1, 4):
        assert load_onnx(foreign, scale=scale).upscale is None


def test_only_converse_metadata_is_read_and_a_value_that_is_not_json_is_skipped(tmp_path):
    meta = {'scale': '4', 'other.min_size': '9', 'converse.note': 'not json {', **_meta(min_size=3)}
    model = load_onnx(_file(tmp_path / 'meta.onnx', meta=meta), scale=1)
    assert model.meta == {'min_size': 3} and model.upscale is None and model.min_size == 3


def test_the_module_checks_channels_and_the_minimum_size_on_either_side(tmp_path):
    model = load_onnx(_file(tmp_path / 'm.onnx', meta=_meta(min_size=5, periodic_boundary=True)))
    assert model.periodic_boundary is True
    with pytest.raises(ValueError, match=r'm\.onnx takes \(N, 3, H, W\) input, got \(1, 1, 8, 8\)'):
        model(torch.rand(1, 1, 8, 8))
    for h, w in ((4, 9), (9, 4)):
        with pytest.raises(ValueError, match=r'm\.onnx needs inputs of at least 5x5, got (4x9|9x4)$'):
            model(torch.rand(1, 3, h, w))
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    out = model(x)  # the smallest size it claims runs; the result comes back in the caller's dtype
    assert out.dtype == torch.float64 and torch.allclose(out, x, atol=1e-7)
    assert load_onnx(_file(tmp_path / 'n.onnx')).periodic_boundary is False


def test_a_kernel_model_runs_only_at_the_sf_it_was_exported_with(tmp_path):
    model = load_onnx(_file(tmp_path / 'k2.onnx', kernel=('N', 1, 7, 7), meta=_meta(scale=2)))
    x, kernel = torch.rand(1, 3, 6, 6), torch.full((1, 1, 7, 7), 1 / 49)
    with pytest.raises(ValueError, match=r'k2\.onnx was exported with sf=2; got sf=1'):
        model(x, kernel)
    with pytest.raises(ValueError, match=r'exported with sf=2; got sf=3'):
        model(x, kernel, 3)
    assert torch.equal(model(x, kernel, 2), x)
    unscaled = load_onnx(_file(tmp_path / 'k1.onnx', kernel=('N', 1, 7, 7)))  # no scale written: sf 1
    assert torch.equal(unscaled(x, kernel), x)
    with pytest.raises(ValueError, match=r'exported with sf=1; got sf=2'):
        unscaled(x, kernel, 2)
