"""converse-compare with checkpoint files by path (arch detected by spandrel): same PSNR as the hand-built net."""
import warnings

import torch
from spandrel.architectures.Compact import Compact
from spandrel.architectures.DnCNN import DnCNN

from converse_basicsr import compare as cli
from converse_basicsr.evaluation import runner
from tests.helpers.shared_files import shared_path


def _set(tmp_path, name, image):
    meta = tmp_path / f'{name}_meta.txt'
    meta.write_text(image + '\n')
    return {name: {'dataroot_gt': str(shared_path('testsets', name)), 'meta_info': str(meta)}}


def _compact(tmp_path, scale=4):
    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale).eval()
    path = tmp_path / f'realesr_compact_x{scale}.pth'
    torch.save({'params': net.state_dict()}, path)
    return net, path


def test_public_checkpoints_by_path_give_the_hand_built_psnr(tmp_path):
    compact, compact_path = _compact(tmp_path)
    torch.manual_seed(1)
    dncnn = DnCNN(in_nc=1, out_nc=1, nc=8, nb=8, act_mode='R').eval()  # KAIR's layout, a plain state dict
    torch.save(dncnn.state_dict(), tmp_path / 'dncnn_tiny.pth')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sr = runner.compare([str(compact_path), {'name': 'by hand', 'module': compact}],
                            _set(tmp_path, 'Set5', 'baby.png'), {'task': 'sr', 'scale': 4}, name='sr',
                            results_root=str(tmp_path), flops_size=32, warmup=0, progress=False)
        dn = runner.compare([{'path': str(tmp_path / 'dncnn_tiny.pth'), 'name': 'kair'}, {'module': dncnn}],
                            _set(tmp_path, 'Set12', '07.png'), {'task': 'denoise', 'sigma': 25, 'color': 'gray'},
                            name='dn', results_root=str(tmp_path), flops_size=32, warmup=0, progress=False)
    assert not sr.failed and not dn.failed
    rows = {r['model']: r for r in sr.per_image}
    assert rows['RealESRGAN Compact']['psnr'] == rows['by hand']['psnr']  # label: the detected arch
    rows = {r['model']: r for r in dn.per_image}
    assert rows['kair']['psnr'] == rows['DnCNN']['psnr']


def test_wrong_protocol_and_unknown_files_exit_2(tmp_path, capsys):
    _, x4 = _compact(tmp_path)
    set5 = str(shared_path('testsets', 'Set5'))
    assert cli.main([
        '--task', 'sr', '--scale', '2', '--dataset', f'Set5={set5}', '--model',
        str(x4), '--results-root',
        str(tmp_path)
    ]) == 2
    err = capsys.readouterr().err
    assert str(x4) in err and 'scale x4, the protocol x2' in err
    set12 = str(shared_path('testsets', 'Set12'))
    assert cli.main([
        '--task', 'denoise', '--dataset', f'Set12={set12}', '--model',
        str(x4), '--scale', '4', '--results-root',
        str(tmp_path)
    ]) == 2
    assert '3->3 channels, the protocol 1' in capsys.readouterr().err
    junk = tmp_path / 'junk.pth'
    torch.save({'weight': torch.zeros(3, 3)}, junk)
    assert cli.main(
        ['--task', 'sr', '--dataset', f'Set5={set5}', '--model',
         str(junk), '--results-root',
         str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(junk) in err and 'no loader recognises' in err and 'spandrel' in err and 'zoo' in err


def test_output_disagreeing_with_its_descriptor_is_a_row_error(tmp_path, monkeypatch):
    _, x4 = _compact(tmp_path)
    from converse_basicsr.hub import public
    original = public.SpandrelModule.forward
    monkeypatch.setattr(public.SpandrelModule, 'forward', lambda self, x: original(self, x)[..., :-1, :])
    result = runner.compare([str(x4), 'bicubic'], _set(tmp_path, 'Set5', 'baby.png'), {'task': 'sr', 'scale': 4},
                            name='bad', results_root=str(tmp_path), flops_size=32, warmup=0, progress=False)
    assert result.failed == ['RealESRGAN Compact']
    assert [r['psnr'] != '' for r in result.per_image if r['model'] == 'bicubic'] == [True]
