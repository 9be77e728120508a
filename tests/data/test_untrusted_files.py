"""The checks ``data/io.py`` makes of files from others before decoding or mapping them: an LMDB's size against
its own header, an image's pixel count from its header, a JPEG or PNG that ends before its end marker."""
import os

import cv2
import lmdb
import numpy as np
import pytest

from converse_basicsr.data import io


@pytest.fixture
def lmdb_folder(tmp_path):
    folder = tmp_path / 'gt.lmdb'
    env = lmdb.open(str(folder), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(40):
            txn.put(f'{i}'.encode(), np.random.RandomState(i).bytes(10000))
    env.close()
    return folder


def test_check_lmdb_accepts_a_whole_one_and_names_a_truncated_one(lmdb_folder):
    data = lmdb_folder / 'data.mdb'
    size = os.path.getsize(data)
    assert io.check_lmdb(str(lmdb_folder)) == str(lmdb_folder)
    for cut in (size - 1, size // 2, 3 * 4096):
        os.truncate(data, cut)
        with pytest.raises(
                ValueError, match=rf"LMDB '{data}' is truncated: {cut} bytes, but its header declares "
                rf'{size} \(\d+ pages of 4096 bytes\)'):
            io.check_lmdb(str(lmdb_folder))
    os.truncate(data, 0)
    with pytest.raises(ValueError, match=rf"LMDB '{data}' cannot be opened \(0 bytes\)"):
        io.check_lmdb(str(lmdb_folder))


def test_header_pixels_reads_the_size_without_decoding(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((30, 50, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'a.jpg'), np.zeros((30, 50, 3), np.uint8))
    np.save(tmp_path / 'a.npy', np.zeros((30, 50, 3), np.float32))
    (tmp_path / 'junk.png').write_bytes(b'not an image')
    monkeypatch.setattr(cv2, 'imread', None)  # nothing is decoded
    assert [io.header_pixels(tmp_path / n) for n in ('a.png', 'a.jpg', 'a.npy', 'junk.png')] == [1500] * 3 + [None]
    with pytest.raises(io.ImageError, match=r'a\.png: its header declares 1500 pixels, more than the limit of 1499'):
        io.check_pixel_limit(tmp_path / 'a.png', 1499)
    assert io.check_pixel_limit(tmp_path / 'a.png', 1500) == 1500


def test_truncation_note_only_for_files_cut_before_their_end_marker(tmp_path):
    img = (np.random.RandomState(0).rand(40, 40, 3) * 255).astype(np.uint8)
    for ext in ('jpg', 'png'):
        cv2.imwrite(str(tmp_path / f'whole.{ext}'), img)
        data = (tmp_path / f'whole.{ext}').read_bytes()
        (tmp_path / f'cut.{ext}').write_bytes(data[:-3])
        (tmp_path / f'trailing.{ext}').write_bytes(data + b'\xff\xda' + bytes(300))  # data after the end: complete
        assert io.truncation_note(tmp_path / f'whole.{ext}') is None
        assert io.truncation_note(tmp_path / f'trailing.{ext}') is None
        kind = 'JPEG' if ext == 'jpg' else 'PNG'
        assert io.truncation_note(tmp_path / f'cut.{ext}') == (f'{tmp_path / f"cut.{ext}"} ends before its {kind} '
                                                               'end marker: a truncated file, decoded only partly')
    (tmp_path / 'x.bmp').write_bytes(b'BM')
    assert io.truncation_note(tmp_path / 'x.bmp') is None
