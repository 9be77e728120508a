"""``torch.compile(fullgraph=True)`` keeps working on the Converse models (a graph break is an error): the export
route in ``converse2d`` must not change what the compiler sees."""
import pytest
import torch

from converse_basicsr.hub.zoo import ZOO, load_pretrained
from tests.export.test_models import _small
from tests.helpers.shared_files import shared_path


def _check(model, channels, kernel_size):
    x = torch.rand(1, channels, 24, 28, generator=torch.Generator().manual_seed(0))
    args = (x, torch.full((1, 1, kernel_size, kernel_size), 1 / kernel_size**2), 1) if kernel_size else (x, )
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend='eager')  # dynamo's capture; no inductor build
    with torch.no_grad():
        assert float((compiled(*args) - model(*args)).abs().max()) < 1e-5


@pytest.mark.parametrize('arch', ['dncnn', 'usrnet'])
def test_compile_fullgraph_small_archs(arch):
    model = _small(arch)
    _check(model, model.num_in_ch, 7 if arch == 'usrnet' else 0)


@pytest.mark.slow
@pytest.mark.parametrize('name', list(ZOO))
def test_compile_fullgraph_published_models(name):
    model, entry = load_pretrained(name, model_dir=shared_path('reference', 'zoo'), return_entry=True)
    _check(model, entry.in_channels, entry.kernel_size)
