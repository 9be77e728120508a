"""converse-compare's entries through the front door: unique default labels, ``LABEL=SOURCE``, ``.onnx`` by path,
each checkpoint file read once."""
import torch

from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.evaluation.model_entries import check_paths, load_model
from converse_basicsr.hub import public


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    net = ARCH_REGISTRY.get('ConverseDnCNN')(num_in_ch=1, num_feat=4, num_block=2).eval()
    torch.save({'params': net.state_dict()}, path)
    return net


def test_two_files_of_one_arch_get_their_stems_and_labels_parse(tmp_path, monkeypatch):
    nets = [_checkpoint(tmp_path / f'{name}.pth', seed) for seed, name in enumerate(('old', 'new', 'third'))]
    reads = []
    original = public.read_checkpoint
    monkeypatch.setattr('converse_basicsr.hub.resolver.read_checkpoint', lambda p: reads.append(p) or original(p))
    models = [str(tmp_path / 'old.pth'), {'path': str(tmp_path / 'new.pth')}, f'mine={tmp_path / "third.pth"}']
    check_paths(models, 1, 1)
    specs = [load_model(entry, 'denoise', 1) for entry in models]
    assert [s.name for s in specs] == ['old', 'new', 'mine']
    assert len(reads) == 3  # each file once
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert all(torch.equal(s.module(x), n(x)) for s, n in zip(specs, nets))


def test_onnx_file_by_path_is_an_onnx_row(tmp_path):
    net = torch.nn.Conv2d(1, 1, 3, padding=1).eval()
    path = tmp_path / 'dncnn.onnx'
    torch.onnx.export(net, torch.rand(1, 1, 8, 8), str(path), input_names=['input'], output_names=['output'],
                      dynamic_axes={'input': {2: 'h', 3: 'w'}, 'output': {2: 'h', 3: 'w'}}, dynamo=False)
    check_paths([str(path)], 1, 1)  # not read as a checkpoint
    spec = load_model(str(path), 'denoise', 1)
    x = torch.rand(1, 1, 9, 11)
    with torch.no_grad():
        assert spec.name == 'dncnn.onnx' and torch.allclose(spec.module(x), net(x), atol=1e-5)
