"""converse-compare's outputs for a paper: full labels in every format (markdown rows a newline cannot break, the
LaTeX table compiled by pdflatex, wrapped grid labels, a plot legend whose labels do not overlap), chosen crops
(YAML and flag), the grid tile option, saved full-size outputs, metric choice and readable footnotes, and the
YAML's results_root. The HTML report in a browser: test_compare_report_browser.py."""
import os
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from basicsr.metrics import calculate_psnr, calculate_ssim
from converse_basicsr import compare as cli
from converse_basicsr.data.io import read_image
from converse_basicsr.evaluation import figures, runner
from tests.evaluation.compare_fixture import CROP, LONG, NEWLINE, read_rows


@pytest.fixture
def run(report_run):
    return report_run


def test_results_root_of_the_yaml_is_used(run):
    assert run['status'] == 0
    assert (run['out'] / 'comparison.csv').is_file() and not (run['root'] / 'results').exists()


def test_every_csv_row_carries_the_full_label(run):
    models = [r['model'] for r in run['rows']]
    assert models == ['input'] * 2 + ['bicubic'] * 2 + [LONG] * 2 + [NEWLINE] * 2
    assert {r['model'] for r in run['per_image']} == {'input', 'bicubic', LONG, NEWLINE}


def test_markdown_rows_survive_newlines_and_pipes(run):
    md = (run['out'] / 'comparison.md').read_text(encoding='utf-8')
    table = [line for line in md.splitlines() if line.startswith('|')]
    assert len(table) == 2 + len(run['rows'])  # head, rule, one line per row: a newline would add one
    unescaped = [len(re.findall(r'(?<!\\)\|', line)) for line in table]
    assert len(set(unescaped)) == 1, unescaped  # every row has the head's number of cells
    assert r'my_converse_srresnet_finetuned_run (lr 1e-4, 300k it.) \| v2 & 100% {best} ~#_$\\' in md
    assert '| nearest<br>then <b>box</b> |' in md
    assert 'OrderedDict' not in md and "{'type'" not in md


def _tex_rows(tex):
    body = tex.split('\\midrule')[1].split('\\bottomrule')[0]
    return [[c.strip() for c in line.rstrip('\\ ').split(' & ')] for line in body.strip().splitlines()]


def test_latex_table_rounds_marks_and_escapes(run):
    tex = (run['out'] / 'comparison.tex').read_text(encoding='utf-8')
    assert all(tex.count(rule) == 1 for rule in ('\\toprule', '\\midrule', '\\bottomrule'))
    assert '\\multicolumn{2}{c}{Mini} & \\multicolumn{2}{c}{B\\_2}' in tex
    assert 'PSNR 2 decimals, SSIM 4 decimals' in tex and '% Protocol: task sr, scale 4.' in tex
    rows = _tex_rows(tex)
    long_tex = ('my\\_converse\\_srresnet\\_finetuned\\_run (lr 1e-4, 300k it.) \\textbar{} v2 \\& 100\\% \\{best\\} '
                '\\textasciitilde{}\\#\\_\\$\\textbackslash{}')
    assert [r[0] for r in rows] == [
        'input', 'bicubic', long_tex, 'nearest then \\textless{}b\\textgreater{}box'
        '\\textless{}/b\\textgreater{}'
    ]
    csv_rows = {(r['dataset'], r['model']): r for r in run['rows']}
    for column, (dataset, metric, digits) in enumerate([('Mini', 'psnr', 2), ('Mini', 'ssim', 4), ('B_2', 'psnr', 2),
                                                        ('B_2', 'ssim', 4)], start=1):
        printed = [
            f"{float(csv_rows[dataset, model][metric]):.{digits}f}" for model in ('input', 'bicubic', LONG, NEWLINE)
        ]
        ranked = sorted(set(printed), key=float, reverse=True)
        for row, value in zip(rows, printed):
            expected = f'\\textbf{{{value}}}' if value == ranked[0] else f'\\underline{{{value}}}' \
                if value == ranked[1] else value
            assert row[column] == expected, (dataset, metric, row[0])
    assert len(rows[0]) == 1 + 4 + 2  # params and time, as asked


def _pdflatex():
    found = shutil.which('pdflatex')
    if found or os.environ.get('CI') != 'true':
        return found
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')  # the test set-up: about 40 s with chromium
    subprocess.run(['apt-get', 'update', '-q'], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([
        'apt-get', 'install', '-y', '-q', '--no-install-recommends', 'texlive-latex-base', 'texlive-latex-recommended'
    ], check=True, env=env, stdout=subprocess.DEVNULL)
    return shutil.which('pdflatex')


def test_latex_table_compiles(run, tmp_path):
    pdflatex = _pdflatex()
    if pdflatex is None:
        pytest.skip('no pdflatex here (CI=true installs texlive-latex-base)')
    (tmp_path / 'doc.tex').write_text(
        '\\documentclass{article}\\usepackage[T1]{fontenc}\\usepackage{booktabs}\\begin{document}'
        f"\\input{{{run['out'] / 'comparison.tex'}}}\\end{{document}}\n", encoding='utf-8')
    done = subprocess.run([pdflatex, '-interaction=nonstopmode', '-halt-on-error', 'doc.tex'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / 'doc.pdf').stat().st_size > 1000
    assert 'Overfull' not in done.stdout or 'Missing' not in done.stdout


def test_chosen_crop_small_image_and_grid_tile(run):
    boxes = {(r['dataset'], r['image']): r['crop_box'] for r in run['per_image'] if r['model'] == 'input'}
    assert boxes['Mini', 'a.png'] == '{},{},{}'.format(*CROP)  # chosen in the YAML
    left, top, side = map(int, boxes['Mini', 'tiny.png'].split(','))
    assert (left, side) == (0, 12) and 0 <= top <= 20 - 12  # 12 px wide, below the 32 px crop: the whole width
    x, y, size = CROP
    grid = read_image(run['out'] / 'grids' / 'Mini' / 'a.png')
    gt = read_image(os.path.join(run['datasets']['Mini'], 'a.png'))
    full = round(gt.shape[1] * 96 / gt.shape[0])
    panel = grid[:96, full + figures.GRID_GAP:full + figures.GRID_GAP + 96]  # the ground truth's crop, 96 px
    np.testing.assert_array_equal(panel, np.kron(gt[y:y + size, x:x + size], np.ones((4, 4, 1), np.uint8)))
    assert (run['out'] / 'grids' / 'Mini' / 'tiny.png').is_file()


def test_grid_labels_wrap_in_full():
    width = 96 - 2 * figures.MARGIN
    lines = figures.wrap(LONG + ' ' + 'x' * 40, width)
    assert len(lines) > 3 and all(figures._text_width(line) <= width for line in lines)
    assert ''.join(lines).replace(' ', '') == (LONG + 'x' * 40).replace(' ', '')  # nothing cut
    gt = np.zeros((40, 40, 3), np.uint8)
    short = figures.crop_grid(gt, [(['a'], gt)], (0, 0, 20), 96)
    long = figures.crop_grid(gt, [([LONG], gt)], (0, 0, 20), 96)
    assert long.shape[0] >= short.shape[0] + 3 * figures.LINE_HEIGHT  # the band grows with the lines


def test_saved_outputs_are_the_measured_images(run):
    folder = run['out'] / 'outputs'
    safe = [re.sub('[^A-Za-z0-9_.-]', '_', label) for label in ('input', 'bicubic', LONG, NEWLINE)]
    assert sorted(p.name for p in folder.iterdir()) == sorted(safe)  # the labels, made file-name safe
    measured = {(r['model'], r['image']): r for r in run['per_image']}
    gt = read_image(os.path.join(run['datasets']['Mini'], 'a.png'))
    saved = read_image(folder / 'bicubic' / 'Mini' / 'a.png')
    assert saved.shape == gt.shape and saved.dtype == np.uint8
    bgr = [cv2.cvtColor(i, cv2.COLOR_RGB2BGR) for i in (saved, gt)]
    assert abs(calculate_psnr(*bgr, 4, test_y_channel=True) - float(measured['bicubic', 'a.png']['psnr'])) < 1e-5
    assert abs(calculate_ssim(*bgr, 4, test_y_channel=True) - float(measured['bicubic', 'a.png']['ssim'])) < 1e-5
    assert not list(folder.rglob('*.tmp*'))


def test_plot_legend_has_every_full_label_without_overlap():
    # four models within 0.01 dB and 3 % in time, and one far away that sets the axes' range
    rows = [
        dict(dataset='S', model=label, entry=i, psnr=30 + 0.003 * i, seconds_per_image=1 + 0.01 * i, error='')
        for i, label in enumerate([LONG, NEWLINE, 'ConverseMSRResNet', 'ConverseMSRResNet (2)'])
    ]
    rows.append(dict(dataset='S', model='input', entry=4, psnr=20.0, seconds_per_image=1e-5, error=''))
    fig = figures.psnr_time_figure(rows, dict(device='cpu', threads=2))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    from matplotlib.text import Text
    texts = fig.findobj(lambda a: isinstance(a, Text) and a.get_text() in {r['model'] for r in rows})
    assert sorted(t.get_text() for t in texts) == sorted(r['model'] for r in rows)
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), 'two labels overlap'
    assert all(0 <= b.x0 and b.x1 <= fig.bbox.width for b in boxes)  # inside the figure: not cut
    figures._close(fig)


def test_metric_flag_chooses_channel_and_footnote_is_text(run, tmp_path):
    mini = run['datasets']['Mini']
    status = cli.main([
        '--task', 'sr', '--scale', '4', '--dataset', f'M={mini}', '--model', 'bicubic', '--metric', 'psnr_rgb',
        '--metric', 'ssim_y', '--name', 'rgb', '--results-root',
        str(tmp_path), '--crop', 'a:0,0,16', '--save-outputs'
    ])
    assert status == 0
    [row] = read_rows(tmp_path / 'rgb' / 'comparison.csv')
    assert 'psnr_rgb' in row and 'ssim_y' in row and 'psnr' not in row
    per_image = {r['image']: r for r in read_rows(tmp_path / 'rgb' / 'per_image.csv')}
    assert per_image['a.png']['crop_box'] == '0,0,16'
    saved, gt = (
        cv2.imread(str(p))
        for p in (tmp_path / 'rgb' / 'outputs' / 'bicubic' / 'M' / 'a.png', os.path.join(mini, 'a.png')))
    assert abs(calculate_psnr(saved, gt, 4, test_y_channel=False) - float(per_image['a.png']['psnr_rgb'])) < 1e-5
    assert abs(calculate_ssim(saved, gt, 4, test_y_channel=True) - float(per_image['a.png']['ssim_y'])) < 1e-5
    y = calculate_psnr(saved, gt, 4, test_y_channel=True)
    assert abs(y - float(per_image['a.png']['psnr_rgb'])) > 0.01  # the channel made a difference
    md = (tmp_path / 'rgb' / 'comparison.md').read_text(encoding='utf-8')
    assert 'psnr_rgb: BasicSR calculate_psnr on all channels, crop 4' in md
    assert 'ssim_y: BasicSR calculate_ssim on the Y channel, crop 4' in md
    assert 'PSNR (RGB)' in md and 'OrderedDict' not in md


def test_protocol_metrics_footnote_reads_as_text(run, tmp_path):
    import yaml
    config = tmp_path / 'c.yml'
    config.write_text(
        yaml.safe_dump(
            dict(name='m', protocol=dict(task='sr', scale=4,
                                         metrics=dict(psnr=dict(type='calculate_psnr', crop_border=4))),
                 datasets={'M': run['datasets']['Mini']}, models=['bicubic'], results_root=str(tmp_path), warmup=0),
            sort_keys=False))
    assert cli.main(['-opt', str(config)]) == 0
    md = (tmp_path / 'm' / 'comparison.md').read_text(encoding='utf-8')
    assert 'Protocol: task sr, scale 4. Metrics on uint8 images: psnr: BasicSR calculate_psnr on all channels, ' \
           'crop 4, higher is better.' in md
    assert 'OrderedDict' not in md and '{' not in md.split('Protocol:')[1].split('\n')[0]


@pytest.mark.parametrize('argv,says', [
    (['--metric', 'lpips'], 'pip install lpips'),
    (['--crop', 'a:60,0,16'], 'leaves M/a.png (64x48 pixels)'),
    (['--crop', 'nosuch:0,0,8'], 'no such image'),
])
def test_refused_runs_leave_nothing(run, tmp_path, capsys, argv, says):
    root = tmp_path / 'root'
    status = cli.main([
        '--task', 'sr', '--dataset', f"M={run['datasets']['Mini']}", '--model', 'bicubic', '--results-root',
        str(root)
    ] + argv)
    err = capsys.readouterr().err
    assert status == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not root.exists()


def test_unknown_metric_type_in_yaml_is_one_line_and_leaves_nothing(run, tmp_path, capsys):
    import yaml
    config = tmp_path / 'c.yml'
    config.write_text(
        yaml.safe_dump(
            dict(name='m', protocol=dict(task='sr', scale=4, metrics=dict(lpips=dict(type='calculate_lpips'))),
                 datasets={'M': run['datasets']['Mini']}, models=['bicubic'], results_root=str(tmp_path / 'r'))))
    assert cli.main(['-opt', str(config)]) == 2
    err = capsys.readouterr().err
    assert 'lpips' in err and 'KeyError' not in err and len(err.strip().splitlines()) == 1, err
    config.write_text(config.read_text().replace('calculate_lpips', 'calculate_fid_score'))
    assert cli.main(['-opt', str(config)]) == 2
    err = capsys.readouterr().err
    assert "'calculate_fid_score' is not one" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / 'r').exists()
    with pytest.raises(ValueError, match='pip install lpips'):  # the Python API checks them too
        runner.compare(['bicubic'], {'M': run['datasets']['Mini']},
                       dict(task='sr', scale=4, metrics=dict(lpips=dict(type='calculate_lpips'))), name='api',
                       results_root=str(tmp_path / 'r'), progress=False)
    assert not (tmp_path / 'r').exists()
