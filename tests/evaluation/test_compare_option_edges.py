"""converse-compare's option edges and error paths on tiny generated images (a second or two each): flags that
shape the report (``--grid-tile``, ``--tex-columns none``, the default SR scale), flags refused before anything
is written (a grid tile under 16, ``--dataset =FOLDER``, a dataset named twice, no model, an empty dataset), the
warm-up passes on the first image only, and, in the Python API, two entries with one label keeping their own
saved outputs and two images with one grid name stopping the run."""
import cv2
import numpy as np
import pytest
import torch
import yaml

from converse_basicsr import compare as cli
from converse_basicsr.data.io import read_image
from converse_basicsr.evaluation import figures, runner
from tests.evaluation.compare_fixture import read_rows

DENOISE = ['--task', 'denoise', '--sigma', '25', '--color', 'gray']


def _folder(path, sizes, suffix='.png', seed=0):
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(path / f'{i}{suffix}'), rng.randint(0, 256, (h, w), dtype=np.uint8))
    return path


def _cli(tmp_path, *argv):
    return cli.main([*DENOISE, '--results-root', str(tmp_path / 'results'), '--name', 'run', *argv])


def test_grid_tile_and_no_tex_columns_from_the_flags(tmp_path):
    """``--grid-tile 32``: the grid is the ground truth scaled to 32 rows, then the ground truth's and the degraded
    input's crops at 32×32 (the input row is not shown twice); ``--tex-columns none``: the model and its
    two metrics only."""
    data = _folder(tmp_path / 'S', [(24, 36)])
    assert _cli(tmp_path, '--dataset', f'S={data}', '--model', 'input', '--grid-tile', '32', '--tex-columns',
                'none') == 0
    out = tmp_path / 'results' / 'run'
    grid = read_image(out / 'grids' / 'S' / '0.png')
    full = 36 * 32 // 24
    assert grid.shape[1] == full + 2 * (figures.GRID_GAP + 32)  # ground truth, its crop, the input's crop
    assert grid.shape[0] > 32 and np.all(grid[:32, full:full + figures.GRID_GAP] == 255)
    tex = (out / 'comparison.tex').read_text(encoding='utf-8')
    [row] = [line for line in tex.split('\\midrule')[1].splitlines() if line.startswith('input')]
    [head] = [line for line in tex.splitlines() if line.startswith('Model & ')]
    assert row.count(' & ') == 2 and head.count(' & ') == 2


def test_the_sr_scale_defaults_to_4(tmp_path):
    """``--task sr`` without ``--scale``: ×4 (the flag's help), so the input is a quarter of the ground truth
    and the metrics crop 4 pixels."""
    data = _folder(tmp_path / 'S', [(32, 32)])
    assert cli.main([
        '--task', 'sr', '--dataset', f'S={data}', '--model', 'input', '--results-root',
        str(tmp_path / 'results'), '--name', 'sr'
    ]) == 0
    md = (tmp_path / 'results' / 'sr' / 'comparison.md').read_text(encoding='utf-8')
    assert 'psnr: BasicSR calculate_psnr on the Y channel, crop 4' in md
    assert 'degraded input (nearest ×4)' in md


@pytest.mark.parametrize('argv,says', [
    (['--grid-tile', '8'], '8'),
    (['--dataset', '=elsewhere'], 'NAME=FOLDER'),
])
def test_bad_flag_values_stop_the_parser(tmp_path, capsys, argv, says):
    data = _folder(tmp_path / 'S', [(24, 24)])
    with pytest.raises(SystemExit) as stop:
        _cli(tmp_path, '--dataset', f'S={data}', '--model', 'input', *argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / 'results').exists()


def test_a_grid_tile_under_16_in_the_yaml_is_refused(tmp_path, capsys):
    data = _folder(tmp_path / 'S', [(24, 24)])
    config = tmp_path / 'c.yml'
    config.write_text(f'protocol: {{task: denoise}}\ndatasets: {{S: {data}}}\nmodels: [input]\ngrid_tile: 15\n'
                      f"results_root: {tmp_path / 'results'}\n")
    assert cli.main(['-opt', str(config)]) == 2
    err = capsys.readouterr().err
    assert 'grid_tile' in err and '15' in err
    assert not (tmp_path / 'results').exists()


def test_option_errors_exit_2_naming_the_problem_and_write_nothing(tmp_path, capsys):
    data = _folder(tmp_path / 'S', [(24, 24)])
    empty = tmp_path / 'Empty'
    empty.mkdir()
    cases = [
        (['--dataset', f'S={data}', '--dataset', f'S={empty}', '--model', 'input'], "'S' is given twice"),
        (['--dataset', f'S={data}'], 'no models'),
        (['--dataset', f'Empty={empty}', '--model', 'input'], 'no images'),
    ]
    for argv, says in cases:
        assert _cli(tmp_path, *argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / 'results').exists(), argv
    assert str(empty) in err  # the empty dataset is named by its folder


class _Calls(torch.nn.Module):
    """The identity, recording the height of every input it is called on."""

    def __init__(self):
        super().__init__()
        self.heights = []

    def forward(self, x):
        self.heights.append(x.shape[-2])
        return x.clone()


def test_warm_up_passes_run_on_the_first_image_only(tmp_path):
    """warmup: 2 over three images of heights 24, 28, 32: the first is run 3 times, the others once (and the
    FLOPs count is one more pass at its own size)."""
    data = _folder(tmp_path / 'S', [(24, 24), (28, 24), (32, 24)])
    model = _Calls()
    runner.compare([{'module': model, 'name': 'calls'}], {'S': str(data)}, {'task': 'denoise'}, warmup=2, flops_size=20,
                   results_root=str(tmp_path), progress=False)
    assert sorted(model.heights) == [20, 24, 24, 24, 28, 32]


class _Scaled(torch.nn.Module):

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_two_entries_with_one_label_save_their_outputs_in_two_folders(tmp_path):
    data = _folder(tmp_path / 'S', [(24, 24)])
    models = [{'module': _Scaled(1.0), 'name': 'twin'}, {'module': _Scaled(0.5), 'name': 'twin'}]
    result = runner.compare(models, {'S': str(data)}, {'task': 'denoise'}, warmup=0, flops_size=16,
                            results_root=str(tmp_path), save_outputs=True, progress=False)
    outputs = tmp_path / 'compare' / 'outputs'
    assert sorted(p.name for p in outputs.iterdir()) == ['twin', 'twin_1']
    first, second = (read_image(outputs / name / 'S' / '0.png') for name in ('twin', 'twin_1'))
    assert first.mean() > second.mean() + 20  # the second is half as bright: it did not overwrite the first
    assert not result.failed


def test_two_images_with_one_grid_name_stop_the_api_before_anything_is_written(tmp_path):
    data = _folder(tmp_path / 'S', [(24, 24)], '.png')
    _folder(data, [(24, 24)], '.bmp', seed=1)  # 0.png and 0.bmp: both grids/S/0.png
    with pytest.raises(ValueError, match='0.bmp') as error:
        runner.compare(['input'], {'S': str(data)}, {'task': 'denoise'}, warmup=0, results_root=str(tmp_path / 'r'),
                       progress=False)
    assert '0.png' in str(error.value)
    assert not (tmp_path / 'r').exists()


def test_the_denoise_protocol_defaults_to_sigma_25_on_gray(tmp_path):
    """``{task: denoise}`` alone: σ = 25 on the gray image (the flags' help), so the input row of a flat colour
    image is one channel with a PSNR of about 20·log10(255 / 25) = 20.17 dB."""
    (tmp_path / 'S').mkdir()
    cv2.imwrite(str(tmp_path / 'S' / 'flat.png'), np.full((64, 64, 3), (90, 128, 160), np.uint8))
    result = runner.compare(['input'], {'S': str(tmp_path / 'S')}, {'task': 'denoise'}, warmup=0, flops_size=16,
                            results_root=str(tmp_path), save_outputs=True, progress=False)
    [row] = result.per_image
    assert abs(row['psnr'] - 20 * np.log10(255 / 25)) < 0.2, row
    assert read_image(tmp_path / 'compare' / 'outputs' / 'input' / 'S' / 'flat.png').ndim == 2


def test_metrics_given_twice_are_refused_by_the_api_before_anything_is_written(tmp_path):
    data = _folder(tmp_path / 'S', [(24, 24)])
    protocol = {'task': 'denoise', 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}
    with pytest.raises(ValueError, match='give the metrics once'):
        runner.compare(['input'], {'S': str(data)}, protocol, metrics=['psnr_y'], results_root=str(tmp_path / 'r'),
                       progress=False)
    assert not (tmp_path / 'r').exists()


def _yaml(tmp_path, data, **keys):
    config = tmp_path / 'c.yml'
    config.write_text(yaml.safe_dump(dict(protocol={'task': 'denoise'}, datasets={'S': str(data)}, **keys)))
    return str(config)


def test_a_yaml_results_root_that_is_a_file_is_refused_before_the_models_run(tmp_path, capsys):
    data = _folder(tmp_path / 'S', [(24, 24)])
    taken = tmp_path / 'taken'
    taken.write_text('keep me')
    assert cli.main(['-opt', _yaml(tmp_path, data, models=['input'], results_root=str(taken))]) == 2
    err = capsys.readouterr().err
    assert f'results_root {taken}: is a file' in err and len(err.strip().splitlines()) == 1, err
    assert taken.read_text() == 'keep me'


def test_an_unknown_arch_type_is_an_option_error_not_a_failed_row(tmp_path, capsys):
    data = _folder(tmp_path / 'S', [(24, 24)])
    config = _yaml(tmp_path, data, models=['input', {'type': 'NoSuchArchAnywhere'}],
                   results_root=str(tmp_path / 'results'))
    assert cli.main(['-opt', config]) == 2
    assert "'NoSuchArchAnywhere' is not a known arch" in capsys.readouterr().err
    assert not (tmp_path / 'results').exists()


def test_a_failing_model_keeps_its_label_and_the_exit_status_is_1(tmp_path, capsys):
    """``--model mine=SOURCE`` whose source is no model: its rows are labelled ``mine`` with the error, the other
    rows are measured, stderr names it and the status is 1."""
    data = _folder(tmp_path / 'S', [(24, 24)])
    assert _cli(tmp_path, '--dataset', f'S={data}', '--model', 'input', '--model', 'mine=no_such_zoo_model') == 1
    assert 'converse-compare: 1 model(s) failed: mine' in capsys.readouterr().err
    rows = {r['model']: r for r in read_rows(tmp_path / 'results' / 'run' / 'comparison.csv')}
    assert sorted(rows) == ['input', 'mine']
    assert 'no_such_zoo_model' in rows['mine']['error'] and rows['mine']['psnr'] == ''
    assert rows['input']['error'] == '' and float(rows['input']['psnr']) > 15
