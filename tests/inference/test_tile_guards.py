"""``--tile N`` on a panorama whose short side is at most N (still tiled: memory grows with the long side), and
input folders whose files have upper-case suffixes (``IMG_0001.JPG``, camera style)."""
import json

import cv2
import numpy as np
import pytest
import torch

from converse_basicsr.hub import zoo
from converse_basicsr.inference.restorer import Restorer
from converse_basicsr.restore import main as restore_main


class _Recording(torch.nn.Module):
    """A 1-channel 3×3 convolution that records the size of every input it is given."""
    num_in_ch = 1

    def __init__(self):
        super().__init__()
        self.conv, self.sizes = torch.nn.Conv2d(1, 1, 3, padding=1), []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.conv(x)


def test_a_tile_is_honoured_on_a_panorama_whose_short_side_fits_it():
    model = _Recording().eval()
    restorer = Restorer(model, tile=64, tile_pad=8)
    model.sizes.clear()
    image = np.random.RandomState(0).rand(48, 1000).astype(np.float32)  # short side 48 <= 64 < 1000
    result = restorer.restore(image)
    assert result.tile == 64 and result.image.shape == (48, 1000)
    assert len(model.sizes) == 16 and max(w for _, w in model.sizes) <= 64 + 2 * 8  # ceil(1000 / 64) tiles
    with torch.no_grad():
        whole = model.conv(torch.from_numpy(image)[None, None])[0, 0].numpy()
    # with 8 pixels of context per tile, the tiled 3×3 convolution is the whole-image one
    assert np.abs(result.float_image - np.clip(whole, 0, 1)).max() < 1e-5


def test_a_folder_of_upper_case_suffixes_is_restored(tmp_path, capsys):
    torch.manual_seed(0)
    kwargs = '{"num_in_ch": 1, "num_feat": 4, "num_block": 1, "kernel_size": 3, "padding": 2}'
    checkpoint = tmp_path / 'net.pth'
    torch.save(zoo.build_arch('ConverseDnCNN', json.loads(kwargs)).state_dict(), checkpoint)
    folder = tmp_path / 'camera'
    folder.mkdir()
    rng = np.random.RandomState(0)
    for name in ('IMG_0001.JPG', 'IMG_0002.PNG', 'notes.TXT'):
        if name.endswith('TXT'):
            (folder / name).write_text('not an image')
        else:
            assert cv2.imwrite(str(folder / name), rng.randint(0, 256, (12, 10, 3), dtype=np.uint8))
    out = tmp_path / 'out'
    status = restore_main([
        '--model',
        str(checkpoint), '--arch', 'ConverseDnCNN', '--arch-kwargs', kwargs, '--input',
        str(folder), '--output',
        str(out)
    ])
    assert status == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ['IMG_0001.png', 'IMG_0002.png']


def test_a_tile_below_the_smallest_is_refused():
    for tile in (4, 0, 7.5):
        with pytest.raises(ValueError, match=f"tile must be None, 'auto' or an integer >= 8, got {tile!r}"):
            Restorer(_Recording().eval(), tile=tile)
    assert Restorer(_Recording().eval(), tile=8).tile == 8
