"""``converse-export``'s exit statuses (docs/export.md, the module docstring): 0 exported, 2 for bad input with one
line naming it (flags, an unknown model, ``--arch-kwargs`` without ``--arch`` or not JSON, an ONNX file given as the
model, an output that is no ``.onnx`` file); one tiny checkpoint exported ``--static HxW`` (height first)."""
import json

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN
from converse_basicsr.export.cli import main

KWARGS = dict(num_in_ch=1, num_feat=2, num_block=1, kernel_size=3, padding=2)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'dncnn.pth'
    torch.save(ConverseDnCNN(**KWARGS).state_dict(), path)
    return path


def _args(checkpoint, output, *more):
    arch = ['--arch', 'ConverseDnCNN', '--arch-kwargs', json.dumps(KWARGS)]
    return ['--model', f'{checkpoint}', *arch, '--output', f'{output}', *more]


@pytest.mark.parametrize('flag, value', [('--static', '0x5'), ('--static', '5x0'), ('--static', '12'),
                                         ('--static', '4x4x4'), ('--opset', '6'), ('--scale', '0')])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, checkpoint, flag, value):
    with pytest.raises(SystemExit) as info:
        main(_args(checkpoint, tmp_path / 'out.onnx', flag, value))
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count('\n') == 1 and flag in err and 'converse-export: error' in err
    assert not (tmp_path / 'out.onnx').exists()


def _onnx_file(path):
    image = helper.make_tensor_value_info('input', TensorProto.FLOAT, ['N', 1, 'H', 'W'])
    graph = helper.make_graph([helper.make_node('Identity', ['input'], ['output'])], 'identity', [image],
                              [helper.make_tensor_value_info('output', TensorProto.FLOAT, ['N', 1, 'H', 'W'])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    proto.ir_version = 8
    onnx.save(proto, str(path))
    return path


def test_bad_input_exits_2_naming_it(tmp_path, capsys, checkpoint):
    out, given = f'{tmp_path / "out.onnx"}', f'{_onnx_file(tmp_path / "given.onnx")}'
    cases = [
        (['--model', 'no_such_model', '--output', out], "unknown model 'no_such_model'"),
        (['--model', f'{checkpoint}', '--arch-kwargs', '{}', '--output', out], '--arch-kwargs needs --arch'),
        (['--model', f'{checkpoint}', '--arch', 'ConverseDnCNN', '--arch-kwargs', '{num_feat: 2', '--output',
          out], 'converse-export: error: '),
        (['--model', given, '--output', out], 'given.onnx is an ONNX file already; give the checkpoint it came from'),
        (_args(checkpoint, tmp_path / 'out.pth'), 'out.pth must end in .onnx'),
        (_args(checkpoint, tmp_path / 'absent' / 'out.onnx'), 'absent does not exist'),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith('converse-export: error: ') and message in err and err.count('\n') == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['given.onnx']


def test_a_checkpoint_exports_with_a_static_height_and_width(tmp_path, capsys, checkpoint):
    out = tmp_path / 'dncnn.onnx'
    assert main(_args(checkpoint, out, '--static', '20x24')) == 0
    assert f'-> {out}' in capsys.readouterr().out
    proto = onnx.load(str(out))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 1, 20, 24]
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta['converse.in_channels'] == 1 and meta['converse.min_size'] == 2 and meta['converse.scale'] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['dncnn.onnx']  # no temporary file left beside it
