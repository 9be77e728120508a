"""converse-restore with hostile images (issue 35): a truncated JPEG among the inputs is restored with a note
saying it decoded only partly, and a 48 KB PNG whose header declares 20000 x 20000 pixels is refused from its
header, before decoding (the process's peak memory does not grow), under a limit that ``--max-pixels`` sets."""
import resource
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from spandrel.architectures.Compact import Compact

from converse_basicsr import restore
from converse_basicsr.data.io import MAX_INPUT_PIXELS, PNG_SIGNATURE


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('model') / 'compact.pth'
    torch.save({'params': Compact(num_in_ch=3, num_out_ch=3, num_feat=4, num_conv=1, upscale=1).state_dict()}, path)
    return path


def _run(argv, capsys):
    try:
        status = restore.main([str(a) for a in argv])
    except SystemExit as stop:
        status = stop.code
    out, err = capsys.readouterr()
    assert 'Traceback' not in out + err
    return status, out, err


def _image(rng, height=20, width=24):
    return (rng.random((height, width, 3)) * 255).astype(np.uint8)


def _png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def _one_bit_png(path, side=20000):
    """A valid ``side`` x ``side`` 1-bit gray PNG, all black: about 48 KB on disk, 400 MB once decoded."""
    row = b'\0' * (1 + side // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    rows = [packer.compress(row * 1000) for _ in range(side // 1000)] + [packer.flush()]
    path.write_bytes(PNG_SIGNATURE + _png_chunk(b'IHDR', struct.pack('>IIBBBBB', side, side, 1, 0, 0, 0, 0)) +
                     _png_chunk(b'IDAT', b''.join(rows)) + _png_chunk(b'IEND', b''))
    return path


def test_a_truncated_jpeg_is_restored_with_a_note(tmp_path, capsys, model):
    """Row 7: the cut JPEG still decodes (OpenCV fills the rest) and is restored, with a note; the others not."""
    rng = np.random.default_rng(0)
    inputs = tmp_path / 'in'
    inputs.mkdir()
    cv2.imwrite(str(inputs / 'whole.jpg'), _image(rng))
    cv2.imwrite(str(inputs / 'good.png'), _image(rng))
    data = (inputs / 'whole.jpg').read_bytes()
    (inputs / 'cut.jpg').write_bytes(data[:len(data) * 2 // 3])
    assert cv2.imread(str(inputs / 'cut.jpg')) is not None  # what made it silent: it decodes
    status, out, _ = _run(['--model', model, '-i', inputs, '-o', tmp_path / 'out'], capsys)
    assert status == 0
    lines = {line.split(' -> ')[0]: line for line in out.splitlines() if ' -> ' in line}
    assert f'note: {inputs / "cut.jpg"} ends before its JPEG end marker: a truncated file, decoded only partly' \
        in lines[str(inputs / 'cut.jpg')]
    assert 'note:' not in lines[str(inputs / 'whole.jpg')] + lines[str(inputs / 'good.png')]
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['cut.png', 'good.png', 'whole.png']


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, capsys, model):
    """Row 8: a 20000 x 20000 1-bit PNG (48 KB) fails from its header (exit 1, one line naming the count, the
    limit and the option) without the peak memory growing; the other input is restored. ``--max-pixels`` sets
    the limit either way."""
    inputs = tmp_path / 'in'
    inputs.mkdir()
    bomb = _one_bit_png(inputs / 'bomb.png')
    assert bomb.stat().st_size < 60_000
    cv2.imwrite(str(inputs / 'good.png'), _image(np.random.default_rng(1)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    status, out, err = _run(['--model', model, '-i', inputs, '-o', tmp_path / 'out'], capsys)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert status == 1 and grown < 150_000, (status, grown)  # decoding alone would take 400 MB, the model 3.5 GB
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert errors == [
        f'error: {bomb}: {bomb}: its header declares 400000000 pixels, more than the limit of '
        f'{MAX_INPUT_PIXELS} (--max-pixels raises it); not decoded'
    ]
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['good.png']

    status, _, err = _run(['--model', model, '-i', inputs / 'good.png', '-o', tmp_path / 'low', '--max-pixels', 479],
                          capsys)
    assert status == 1 and 'declares 480 pixels, more than the limit of 479' in err
    status, _, _ = _run(['--model', model, '-i', inputs / 'good.png', '-o', tmp_path / 'low', '--max-pixels', 480],
                        capsys)
    assert status == 0
    status, _, err = _run(['--model', model, '-i', inputs, '-o', tmp_path / 'x', '--max-pixels', '0'], capsys)
    assert status == 2 and '--max-pixels' in err
