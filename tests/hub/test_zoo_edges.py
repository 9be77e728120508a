"""The zoo's edges (hub/zoo.py, hub/public.py, hub/state_dicts.py): mirror URLs, the ``url`` argument, checksum
errors that stay checksum errors, arch names and arguments, file suffixes, padding, the protocol check."""
import shutil
import socket

import numpy as np
import pytest
import torch

from converse_basicsr.hub import zoo
from converse_basicsr.hub.public import check_protocol, pad_to_size
from converse_basicsr.hub.resolver import ResolvedModel, resolve
from converse_basicsr.hub.shape_inference import infer_arch
from converse_basicsr.hub.state_dicts import unwrap_state_dict

NAME = 'converse_dncnn'


def _closed_port_url(path):
    with socket.socket() as s:  # a port nothing listens on: refused at once, nothing leaves the machine
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}/{path}'


def test_a_mirror_with_a_trailing_slash_gives_one_slash(monkeypatch):
    monkeypatch.setenv(zoo.BASE_URL_ENV, 'http://mirror.example/models/')
    assert zoo.ZOO[NAME].url == 'http://mirror.example/models/converse_dncnn.pth'


def test_the_url_argument_comes_before_the_entry_url(zoo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.BASE_URL_ENV, _closed_port_url('mirror'))
    given = (zoo_dir / 'converse_dncnn.pth').resolve().as_uri()
    path = zoo.checkpoint_path(NAME, model_dir=tmp_path, url=given, progress=False, attempts=1)
    assert path == tmp_path / 'converse_dncnn.pth' and zoo.sha256sum(path) == zoo.ZOO[NAME].sha256
    # a zoo name with the user's arch reads the given model_dir too (not the environment's)
    monkeypatch.setenv(zoo.MODEL_DIR_ENV, str(tmp_path / 'environment'))
    resolved = resolve(NAME, arch='ConverseDnCNN', arch_kwargs={'num_in_ch': 1}, model_dir=tmp_path, progress=False)
    assert resolved.kind == 'arch' and resolved.info['source'] == str(tmp_path / 'converse_dncnn.pth')
    with pytest.raises(zoo.ZooError, match='given.pth'):
        zoo.checkpoint_path(NAME, model_dir=tmp_path / 'empty', url=_closed_port_url('given.pth'), progress=False,
                            attempts=1, timeout=5)


def test_a_wrong_download_stays_a_checksum_error_naming_the_cache_file(zoo_dir, tmp_path, capsys):
    wrong = tmp_path / 'wrong.pth'
    shutil.copy(zoo_dir / 'conversenet.pth', wrong)  # a real checkpoint, not this entry's
    with pytest.raises(zoo.ChecksumError) as err:
        zoo.checkpoint_path(NAME, model_dir=tmp_path / 'cache', url=wrong.as_uri(), progress=False, attempts=1)
    assert err.value.expected == zoo.ZOO[NAME].sha256
    assert err.value.path == tmp_path / 'cache' / 'converse_dncnn.pth'  # not the .partial file, removed
    assert capsys.readouterr().err == ''  # progress=False: no progress lines
    assert not any((tmp_path / 'cache').iterdir())


def test_build_arch_names_refused_arguments_and_finds_suffixed_archs():
    with pytest.raises(zoo.ZooError, match="arch 'ConverseDnCNN' cannot be built .*bogus"):
        zoo.build_arch('ConverseDnCNN', {'bogus': 1})
    net = zoo.build_arch('SRVGGNetCompact', dict(num_feat=4, num_conv=1, upscale=2))  # registered as *_basicsr
    assert net(torch.rand(1, 3, 5, 6)).shape == (1, 3, 10, 12)


def test_a_state_dict_with_an_extra_key_is_not_claimed():
    state = zoo.build_arch('ConverseDnCNN', dict(num_feat=4, num_block=2)).state_dict()
    assert infer_arch(state) is not None
    state['extra.weight'] = torch.zeros(1)
    assert infer_arch(state) is None
    assert not zoo.state_dict_matches('ConverseDnCNN', dict(num_feat=4, num_block=2), state)


def test_upper_case_suffixes_and_non_dict_checkpoints(tmp_path):
    net = zoo.build_arch('ConverseDnCNN', dict(num_feat=4, num_block=2))
    torch.save(net.state_dict(), tmp_path / 'NET.PTH')
    assert resolve(tmp_path / 'NET.PTH').info['kwargs']['num_feat'] == 4
    torch.save([torch.zeros(1)], tmp_path / 'list.pth')
    with pytest.raises(zoo.ZooError, match='list.pth does not hold a state dict'):
        resolve(tmp_path / 'list.pth')


def test_unwrap_strips_module_only_when_every_key_has_it():
    t = torch.zeros(1)
    assert set(unwrap_state_dict({'module.a': t, 'module.b': t})) == {'a', 'b'}
    assert set(unwrap_state_dict({'module.a': t, 'b': t})) == {'module.a', 'b'}


def test_pad_to_size_reflects_as_far_as_the_image_allows_then_replicates():
    x = torch.arange(12, dtype=torch.float64).reshape(1, 1, 3, 4)
    got = pad_to_size(x, 6, 1)[0, 0].numpy()
    # numpy: reflect up to size - 1 pixels, then repeat the edge
    expected = np.pad(x[0, 0].numpy(), ((0, 1), (0, 3)), mode='reflect')
    expected = np.pad(expected, ((0, 0), (0, 3)), mode='edge')
    assert got.shape == (4, 10) and np.array_equal(got, expected)


def _model(scale, cin, cout, source='m.pth'):
    info = dict(scale=scale, in_channels=cin, out_channels=cout, source=source)
    return ResolvedModel(torch.nn.Identity(), info, label='mine', kind='spandrel')


def test_check_protocol_names_what_does_not_fit():
    check_protocol(_model(4, 3, 3), 4, 3)
    check_protocol(_model(None, None, None), 2, 1)  # nothing told: nothing checked
    with pytest.raises(zoo.ZooError, match=r'm.pth: mine does not fit the protocol \(1->3 channels, the protocol 3'):
        check_protocol(_model(4, 1, 3), 4, 3)
    with pytest.raises(zoo.ZooError, match='scale x1, the protocol x4'):
        check_protocol(_model(1, 3, 3), 4, 3)
