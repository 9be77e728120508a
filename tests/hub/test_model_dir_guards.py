"""Where zoo checkpoints are looked for (an explicit ``model_dir`` / ``--model-dir`` before ``CONVERSE_MODEL_DIR``)
and the minimum input a reflect-padded model declares to spandrel (p + 1, measured)."""
import pytest
import spandrel
import torch

from converse_basicsr.hub import zoo
from converse_basicsr.hub.description import attach, make_description
from converse_basicsr.hub.spandrel_arches import install, min_input_size
from converse_basicsr.restore import main as restore_main

NAME = 'converse_dncnn'


@pytest.fixture
def two_dirs(tmp_path, monkeypatch):
    """An explicit folder and the environment's folder, each with a file of the zoo name that is not the
    published checkpoint: the checksum error names the folder that was used (nothing is downloaded)."""
    explicit, environment = tmp_path / 'explicit', tmp_path / 'environment'
    for folder in (explicit, environment):
        folder.mkdir()
        (folder / zoo.ZOO[NAME].filename).write_bytes(b'not the published checkpoint')
    monkeypatch.setenv('CONVERSE_MODEL_DIR', str(environment))
    return explicit, environment


def test_an_explicit_model_dir_comes_before_the_environment(two_dirs):
    explicit, environment = two_dirs
    with pytest.raises(zoo.ChecksumError, match=str(explicit / zoo.ZOO[NAME].filename)):
        zoo.checkpoint_path(NAME, model_dir=explicit)
    with pytest.raises(zoo.ChecksumError, match=str(environment / zoo.ZOO[NAME].filename)):
        zoo.checkpoint_path(NAME)  # without one, the environment's


def test_restore_model_dir_comes_before_the_environment(two_dirs, tmp_path, capsys):
    explicit, environment = two_dirs
    image = tmp_path / 'in.pgm'
    image.write_bytes(b'P5\n8 8\n255\n' + bytes(range(64)))
    status = restore_main(
        ['--model', NAME, '--model-dir',
         str(explicit), '--input',
         str(image), '--output',
         str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert status == 2
    assert str(explicit / zoo.ZOO[NAME].filename) in err and str(environment) not in err


@pytest.mark.parametrize('padding', [2, 5])
def test_a_reflect_padded_model_declares_padding_plus_one(padding):
    """Reflect padding p reads p pixels beyond each border: an input side of p + 1 runs, p does not."""
    kwargs = dict(num_in_ch=1, num_feat=4, num_block=1, kernel_size=3, padding=padding, padding_mode='reflect')
    model = zoo.build_arch('ConverseDnCNN', kwargs).eval()
    assert min_input_size(model) == padding + 1
    install()  # the spandrel descriptor of the same (self-described) weights declares it
    state = attach(model.state_dict(), make_description('ConverseDnCNN', kwargs))
    assert spandrel.ModelLoader().load_from_state_dict(state).size_requirements.minimum == padding + 1
    with torch.no_grad():
        model(torch.rand(1, 1, padding + 1, padding + 1))
        with pytest.raises((RuntimeError, ValueError)):
            model(torch.rand(1, 1, padding, padding + 5))
