"""The model front door's edges (hub/resolver.py): labels, the route a source takes, untrained and callable models,
files that do not fit, and the checkpoint descriptions read back (hub/description.py) from every place they live."""
import shutil

import pytest
import torch
import yaml
from spandrel.architectures.DRUNet import DRUNet

from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.hub.description import KEY, attach, describe_network, make_description, safetensors_metadata
from converse_basicsr.hub.public import read_checkpoint
from converse_basicsr.hub.resolver import default_labels, describe_file, parse_model_arg, resolve, route
from converse_basicsr.hub.zoo import ZOO, ZooError

SETTINGS = dict(num_in_ch=1, num_feat=4, num_block=2, padding=3, padding_mode='reflect', eps=1e-2)


def _dncnn(seed=0):
    torch.manual_seed(seed)
    return ARCH_REGISTRY.get('ConverseDnCNN')(**SETTINGS).eval()


def _described(path, net=None):
    description = make_description('ConverseDnCNN', SETTINGS)
    torch.save({'params': attach((net or _dncnn()).state_dict(), description), KEY: description}, path)
    return path


def test_parse_model_arg_keeps_existing_files_and_empty_sources_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'a=b.pth').write_bytes(b'')
    assert parse_model_arg('a=b.pth') == (None, 'a=b.pth')  # a file of that name: the source, not a label
    assert parse_model_arg('c=d.pth') == ('c', 'd.pth')  # no such file: a label
    assert parse_model_arg('mine=') == (None, 'mine=')  # nothing after '=': no source to label


def test_distinct_labels_are_kept_and_the_label_argument_wins(tmp_path):
    first = resolve(_described(tmp_path / 'first.pth'), label='mine')
    second = resolve(_described(tmp_path / 'second.pth'), label='theirs')
    assert (first.label, second.label) == ('mine', 'theirs')
    assert default_labels([first, second]) == ['mine', 'theirs']  # unique already: no file stems
    untrained = resolve(None, arch='ConverseNet', arch_kwargs=dict(num_feat=4, num_block=1))
    assert default_labels([resolve(tmp_path / 'first.pth'), untrained]) == ['ConverseDnCNN', 'ConverseNet']


def test_route_by_form_and_zoo_names_with_an_arch():
    assert route('exported.ONNX') == 'onnx'
    assert route('converse_dncnn') == 'zoo'
    assert route('converse_dncnn', arch='ConverseDnCNN') == 'zoo_file'  # the user's arch on the zoo file
    assert route('pkg.mod:make') == 'callable'
    with pytest.raises(ZooError, match='no model given'):
        route(None)
    with pytest.raises(ZooError, match="unknown model 'nope'") as err:
        route('nope')
    assert all(name in str(err.value) for name in ZOO)


def test_untrained_arch_follows_its_seed_not_the_global_generator():
    kwargs = dict(num_in_ch=1, num_feat=4, num_block=1)
    torch.manual_seed(100)
    a = resolve(None, arch='ConverseDnCNN', arch_kwargs=kwargs, seed=3)
    torch.manual_seed(200)
    b = resolve(None, arch='ConverseDnCNN', arch_kwargs=kwargs, seed=3)
    c = resolve(None, arch='ConverseDnCNN', arch_kwargs=kwargs, seed=4)
    weights = [m.module.state_dict()['m_head.0.weight'] for m in (a, b, c)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    assert a.kind == 'arch' and 'seed 3' in a.info['source']


def test_callable_sources_are_labelled_by_their_target_and_must_return_a_module():
    resolved = resolve('torch.nn:Identity')
    assert resolved.kind == 'callable' and resolved.label == 'torch.nn:Identity'
    with pytest.raises(ZooError, match='collections:OrderedDict returned OrderedDict, not a torch.nn.Module'):
        resolve('collections:OrderedDict')


def test_a_checkpoint_lacking_a_layer_does_not_fit_the_given_arch(tmp_path):
    state = _dncnn().state_dict()
    state.pop('m_tail.0.weight')
    torch.save(state, tmp_path / 'partial.pth')
    with pytest.raises(ZooError, match='partial.pth does not fit arch ConverseDnCNN'):
        resolve(tmp_path / 'partial.pth', arch='ConverseDnCNN', arch_kwargs=SETTINGS)


def test_an_argument_the_file_does_not_describe_is_not_called_a_contradiction(tmp_path):
    path = _described(tmp_path / 'a.pth')
    with pytest.raises(ZooError, match='bogus') as err:
        resolve(path, arch_kwargs={'bogus': 1})
    assert 'contradicts' not in str(err.value)


def test_a_copy_of_a_published_file_is_its_zoo_entry(zoo_dir, tmp_path):
    copy = tmp_path / 'renamed.pth'
    shutil.copy(zoo_dir / 'converse_dncnn.pth', copy)
    resolved = resolve(copy)
    assert resolved.kind == 'zoo' and resolved.info['entry'] is ZOO['converse_dncnn']


def test_describe_file_returns_none_for_another_project_arch(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(DRUNet(in_nc=2, out_nc=1, nc=[4, 8, 8, 8], nb=1).state_dict(), tmp_path / 'drunet.pth')
    assert describe_file(tmp_path / 'drunet.pth', read_checkpoint(tmp_path / 'drunet.pth')[0]) is None
    assert capsys.readouterr().err == ''
    torch.save(_dncnn().state_dict(), tmp_path / 'plain.pth')  # ours, no description: the shapes say num_feat
    description = describe_file(tmp_path / 'plain.pth', read_checkpoint(tmp_path / 'plain.pth')[0])
    assert description['type'] == 'ConverseDnCNN' and description['kwargs']['num_feat'] == 4
    assert 'plain.pth' in capsys.readouterr().err


# ---------------------------------------------------------------- descriptions


def test_descriptions_refuse_non_finite_numbers_and_skip_object_defaults():
    for bad in (float('nan'), float('inf'), -float('inf')):
        with pytest.raises(ZooError, match='eps'):
            make_description('ConverseDnCNN', {'eps': bad})
    swinir = make_description('SwinIR', dict(embed_dim=12, depths=[1], num_heads=[2], window_size=4))
    assert 'norm_layer' not in swinir['kwargs'] and swinir['kwargs']['embed_dim'] == 12


def test_descriptions_read_channels_and_scale_from_the_network_entry():
    dncnn = make_description('ConverseDnCNN', {'num_in_ch': 1})  # num_out_ch None: as many as it takes
    assert (dncnn['in_channels'], dncnn['out_channels'], dncnn['scale']) == (1, 1, 1)
    up = make_description('ConverseUp', {'base': dict(type='EDSR', num_in_ch=1, num_out_ch=1, upscale=2)})
    assert (up['in_channels'], up['out_channels'], up['scale']) == (1, 1, 2)
    assert make_description('RRDBNet', dict(num_in_ch=3, num_out_ch=3, scale=2))['scale'] == 2
    assert describe_network({'num_feat': 4}) is None  # no type: nothing to describe


def test_attach_keeps_the_state_dict_metadata():
    state = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1)).state_dict()
    original = dict(state._metadata)
    out = attach(state, {'type': 'X', 'kwargs': {}})
    assert {k: out._metadata[k] for k in original} == original and out._metadata[KEY]['type'] == 'X'


def test_a_description_without_a_type_is_an_error_naming_the_file(tmp_path):
    torch.save({'params': _dncnn().state_dict(), KEY: {'kwargs': {}}}, tmp_path / 'typeless.pth')
    with pytest.raises(ZooError, match='typeless.pth'):
        resolve(tmp_path / 'typeless.pth')


def test_safetensors_metadata_that_is_not_json_is_an_error_naming_the_file(tmp_path):
    from safetensors.torch import save_file
    save_file(_dncnn().state_dict(), tmp_path / 'n.safetensors', metadata={'format': 'pt', KEY: '{not json'})
    with pytest.raises(ZooError, match='n.safetensors.*not JSON'):
        resolve(tmp_path / 'n.safetensors')
    save_file(_dncnn().state_dict(), tmp_path / 'ok.safetensors',
              metadata=safetensors_metadata(make_description('ConverseDnCNN', SETTINGS)))
    assert resolve(tmp_path / 'ok.safetensors').info['kwargs']['padding_mode'] == 'reflect'


@torch.no_grad()
def test_a_description_only_in_the_params_metadata_is_read(tmp_path):
    net = _dncnn()
    torch.save({'params': attach(net.state_dict(), make_description('ConverseDnCNN', SETTINGS))}, tmp_path / 'p.pth')
    resolved = resolve(tmp_path / 'p.pth')
    assert resolved.kind == 'described' and resolved.info['kwargs']['padding_mode'] == 'reflect'
    x = torch.rand(1, 1, 9, 11)
    assert torch.equal(resolved.module(x), net(x))


def _run_folder(root, models='models', **ymls):
    (root / models).mkdir(parents=True)
    for name, network in ymls.items():
        (root / f'{name}.yml').write_text(yaml.safe_dump({'network_g': network}))
    torch.save({'params': _dncnn().state_dict()}, root / models / 'net_g_1.pth')
    return root / models / 'net_g_1.pth'


def test_a_run_yaml_describes_only_checkpoints_under_models(tmp_path):
    path = _run_folder(tmp_path / 'run', models='weights', train=dict(SETTINGS, type='ConverseDnCNN'))
    resolved = resolve(path)
    assert resolved.kind == 'spandrel' and resolved.info['kwargs']['padding_mode'] != 'reflect'


def test_two_run_yamls_that_disagree_are_an_error_naming_both(tmp_path):
    path = _run_folder(tmp_path / 'run', a=dict(SETTINGS, type='ConverseDnCNN'),
                       b=dict(SETTINGS, type='ConverseDnCNN', eps=0.1))
    with pytest.raises(ZooError, match=r'two option files .*a\.yml and .*b\.yml'):
        resolve(path)
