"""``--tile auto``'s memory estimate: what counts as free on CUDA (the CUDA queries mocked,
so this runs on the CPU), the allocation tracker behind the estimate on hand-counted cases, and the
choice of tile from the estimate."""
import numpy as np
import torch

from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN
from converse_basicsr.inference import memory
from converse_basicsr.inference.restorer import Restorer, available_memory, peak_tensor_bytes
from converse_basicsr.ops import Converse2D

MiB = 1 << 20


def test_cuda_free_memory_counts_what_pytorch_has_cached(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'mem_get_info', lambda device=None: (300 * MiB, 80_000 * MiB))
    monkeypatch.setattr(torch.cuda, 'memory_reserved', lambda device=None: 500 * MiB)
    monkeypatch.setattr(torch.cuda, 'memory_allocated', lambda device=None: 120 * MiB)
    # 300 MiB the driver can give + 380 MiB reserved by PyTorch's allocator but not in use
    assert available_memory('cuda:0') == 680 * MiB


def test_peak_counts_live_tensors_once_and_views_not_at_all():
    x = torch.zeros(1000)  # 4000 bytes

    def fn(t):
        a = t * 2  # 4000
        view = a.view(10, 100)  # a view: no new memory
        b = view + 1  # 4000: peak here, x + a + b = 12000
        del a, view
        c = b * 3  # a freed: x + b + c = 12000 again
        return c.sum()  # + the 4-byte sum while c is alive

    assert peak_tensor_bytes(fn, x) == 12004


def test_peak_counts_an_fft_work_space():
    x = torch.zeros(16, 30)  # 1920 bytes; rfft2 gives 16 x 16 complex64 = 2048 bytes
    assert peak_tensor_bytes(torch.fft.rfft2, x) == 1920 + 2048 + 2048  # input + output + work space of its size


def test_estimate_counts_the_operator_spectra_and_its_response_cache():
    torch.manual_seed(0)
    layer = Converse2D(8, 8, 3, padding=2).eval()
    x = torch.rand(1, 8, 30, 30)
    padded, spectrum = 34 * 34 * 8 * 4, 8 * 34 * 18 * 8  # float32 padded map, complex64 half spectrum
    with torch.no_grad():
        cold = peak_tensor_bytes(layer, x)  # builds the frequency response and keeps it in the cache
    assert layer._cache  # the response cache is live at the end: it is part of the peak
    # input, padded map, its spectrum and the response (one complex value per channel and frequency)
    assert cold >= x.numel() * 4 + padded + 2 * spectrum


def test_restorer_estimate_is_measured_from_the_model_and_repeatable():
    torch.manual_seed(0)
    model = ConverseDnCNN(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1).eval()
    restorer = Restorer(model)
    with torch.no_grad():
        x = torch.rand(1, 1, 96, 96)
        for module in model.modules():
            if isinstance(module, Converse2D):
                module._cache.clear()
        measured = peak_tensor_bytes(model, x)
    params = sum(p.numel() * 4 for p in model.parameters())
    estimate = restorer.estimate_bytes(96, 96)
    # fitted on 32² and 64²: the padding makes the per-pixel slope a little pessimistic, never optimistic
    assert measured + params <= estimate <= 1.5 * (measured + params)
    assert restorer.estimate_bytes(96, 96) == estimate  # measured once, then reused
    # the probe's cached responses and the operator's per-size tables hide nothing: a new measurement gives the
    # same numbers (tests/inference/test_memory_guards.py: whatever earlier calls left cached)
    again = restorer.planner.measure()
    assert again == restorer.planner.measure() == restorer.planner.memory_model


def test_auto_tile_picks_the_largest_tile_that_fits(monkeypatch):
    torch.manual_seed(0)
    restorer = Restorer(ConverseDnCNN(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1), tile='auto', tile_pad=8)
    params = sum(p.numel() * 4 for p in restorer.model.parameters())
    restorer.planner.memory_model = (1000, 100.0)  # 1000 bytes + 100 bytes per input pixel
    monkeypatch.setattr(memory, 'available_memory', lambda device: 2 * (params + 1000 + 100 * 200 * 200))
    assert restorer.auto_tile(200, 200) is None  # exactly fits in half of the free memory
    assert restorer.auto_tile(201, 200) is not None
    # 512 x 512 does not fit; a tile T fits when (T + 16)^2 <= 40000: T = 184 -> largest multiple of 32 is 160
    assert restorer.auto_tile(512, 512) == 160
    monkeypatch.setattr(memory, 'available_memory', lambda device: 1)
    assert restorer.auto_tile(512, 512) == memory.MIN_AUTO_TILE  # nothing fits: the smallest tile
    monkeypatch.setattr(memory, 'available_memory', lambda device: 2 * (params + 1000 + 100 * 80 * 80))
    result = restorer.restore(np.random.RandomState(0).rand(140, 100).astype(np.float32))
    assert result.tile == 64 and result.image.shape == (140, 100)  # (64 + 16)^2 fits, (96 + 16)^2 does not


def test_peak_counts_a_resized_storage_once_at_its_new_size():
    """A storage is one storage whatever its address: an op that moves it (``resize_``) leaves no stale entry
    behind that an address-keyed count would keep as live (here 4,000 bytes that were freed)."""

    def grow(x):
        a = torch.empty(1000)  # 4,000 bytes
        a.resize_(100000)  # 400,000 bytes at a new address; the first 4,000 are freed
        b = torch.empty(500)  # 2,000 bytes
        return a, b

    assert [peak_tensor_bytes(grow, torch.zeros(1)) for _ in range(3)] == [4 + 400000 + 2000] * 3
