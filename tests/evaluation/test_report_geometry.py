"""The geometry and numbers of converse-compare's report, on hand-made rows and images (no model runs): the LaTeX
table's columns (its column spec, the dataset rules, the extra columns in their units and decimals) and its marks
for metrics where lower is better, the markdown's compute cell, the HTML report's crops and decimals, the box
drawn on the crop grid's ground truth, and the chosen crop boxes at the edges of a wide image."""
import base64
import re
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from converse_basicsr.evaluation.figures import crop_boxes, crop_grid
from converse_basicsr.evaluation.html_report import html_report
from converse_basicsr.evaluation.latex import latex_table
from converse_basicsr.evaluation.report import markdown

PSNR_SSIM = {
    'psnr': dict(type='calculate_psnr', crop_border=4, test_y_channel=True),
    'ssim': dict(type='calculate_ssim', crop_border=4, test_y_channel=True)
}
NO_REFERENCE = {'lpips': dict(type='calculate_lpips', crop_border=0), 'niqe': dict(type='calculate_niqe')}


def _row(entry, model, dataset, error='', **values):
    row = dict(entry=entry, model=model, dataset=dataset, images=2, params='', gflops_counted='', gflops_fft='',
               gflops_total='', seconds_per_image='', peak_memory_mib='', error=error)
    row.update(values)
    return row


def _body(tex):
    """The table's rows as lists of cells (between \\midrule and \\bottomrule)."""
    body = tex.split('\\midrule')[1].split('\\bottomrule')[0]
    return [[c.strip() for c in line.strip().rstrip('\\').split(' & ')] for line in body.strip().splitlines()]


def test_latex_marks_the_lowest_lpips_and_niqe_as_best_with_their_decimals():
    """LPIPS and NIQE: lower is better, so the smallest printed value is bold and the next underlined; LPIPS is
    printed with 4 decimals and NIQE with 2, as papers print them (latex.py's docstring)."""
    rows = [
        _row(0, 'a', 'S', lpips=0.31, niqe=4.0),
        _row(1, 'b', 'S', lpips=0.1234, niqe=6.5),
        _row(2, 'c', 'S', lpips=0.2, niqe=5.126)
    ]
    tex = latex_table(rows, NO_REFERENCE, [], extras=())
    assert _body(tex) == [
        ['a', '0.3100', '\\textbf{4.00}'],
        ['b', '\\textbf{0.1234}', '6.50'],
        ['c', '\\underline{0.2000}', '\\underline{5.13}'],
    ]
    heads = [line for line in tex.splitlines() if line.startswith('Model & ')][0]
    assert heads.count('$\\downarrow$') == 2 and '$\\uparrow$' not in heads


def test_latex_columns_rules_and_extra_columns_line_up():
    """Two datasets of two metrics and every extra column: the column spec has one letter per cell of every row,
    each dataset's \\cmidrule spans exactly its own metric columns, params are printed in millions, GFLOPs with
    2 decimals and seconds with 3; a failed row shows '--' in its extra columns."""
    fields = dict(params=1234567, gflops_total=12.3456, seconds_per_image=0.012345)
    rows = [
        _row(0, 'good', 'Set5', psnr=30.0, ssim=0.9, **fields),
        _row(0, 'good', 'Set14', psnr=28.0, ssim=0.8, **fields),
        _row(1, 'broken', 'Set5', error='RuntimeError: no', psnr='', ssim='', **fields),
        _row(1, 'broken', 'Set14', error='RuntimeError: no', psnr='', ssim='', **fields),
    ]
    tex = latex_table(rows, PSNR_SSIM, ['a note'], extras=('params', 'flops', 'time'))
    spec = re.search(r'\\begin\{tabular\}\{([^}]*)\}', tex).group(1)
    body = _body(tex)
    assert spec.replace(' ', '') == 'l' + 'cc' * 2 + 'rrr'
    assert all(len(cells) == len(spec.replace(' ', '')) for cells in body)
    # the metric columns of Set5 are 2-3 and of Set14 4-5 (column 1 holds the model)
    assert re.findall(r'\\cmidrule\(lr\)\{(\d+)-(\d+)\}', tex) == [('2', '3'), ('4', '5')]
    assert '\\multicolumn{2}{c}{Set5} & \\multicolumn{2}{c}{Set14}' in tex
    assert body[0] == [
        'good', '\\textbf{30.00}', '\\textbf{0.9000}', '\\textbf{28.00}', '\\textbf{0.8000}', '1.23', '12.35', '0.012'
    ]
    assert body[1] == ['broken', '--', '--', '--', '--', '--', '--', '--']
    assert tex.startswith('% a note\n')
    only_time = latex_table(rows, PSNR_SSIM, [], extras=('time', ))
    assert re.search(r'\\begin\{tabular\}\{([^}]*)\}', only_time).group(1).replace(' ', '') == 'lccccr'
    assert _body(only_time)[0][-1] == '0.012'


def test_markdown_compute_cell_is_total_then_counted_plus_fft():
    rows = [_row(0, 'm', 'S', psnr=30.0, gflops_counted=1.25, gflops_fft=2.5, gflops_total=3.75, params=1000)]
    line = [line for line in markdown(rows, {'psnr': PSNR_SSIM['psnr']}, []).splitlines() if '| m |' in line][0]
    assert '| 3.75 (1.25 + 2.50) |' in line and '| 1,000 |' in line and '| 30.0000 |' in line


def _images(gt, box, panels):
    return [(SimpleNamespace(dataset='S', image='a.png'), gt, box, panels)]


def _decode(uri):
    data = base64.b64decode(uri.split(',', 1)[1])
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_html_report_crops_are_the_box_of_each_image_and_metrics_keep_their_decimals():
    """A 30x40 ground truth and one model's image, box of side 12 at left 10, top 2: each figure's image is that
    box of its own panel (rows top..top+side, columns left..left+side); the table prints PSNR with 2 decimals
    and SSIM with 4, the per-image captions likewise."""
    rng = np.random.RandomState(0)
    gt = rng.randint(0, 256, (30, 40, 3), dtype=np.uint8)
    out = rng.randint(0, 256, (30, 40, 3), dtype=np.uint8)
    box = (2, 10, 12)  # top, left, side
    panels = [
        dict(label='ground truth', image=gt, values={}),
        dict(label='model', image=out, values=dict(psnr=27.123456, ssim=0.8765432)),
    ]
    rows = [_row(0, 'model', 'S', psnr=27.123456, ssim=0.8765432, params=10, gflops_total=1.0, seconds_per_image=0.5)]
    page = html_report(rows, PSNR_SSIM, ['note'], _images(gt, box, panels), None, 64)
    crops = re.findall(r'<figure><img alt="[^"]*" src="(data:image/png;base64,[^"]+)">', page)
    assert len(crops) == 2
    np.testing.assert_array_equal(_decode(crops[0]), gt[2:14, 10:22])
    np.testing.assert_array_equal(_decode(crops[1]), out[2:14, 10:22])
    table = page.split('<table')[1].split('</table>')[0]
    assert '>27.12</td>' in table and '>0.8765</td>' in table
    assert 'PSNR 27.12<br>SSIM 0.8765' in page
    assert 'Crop box 12 px at (10, 2) of 40×30' in page
    marked = _decode(re.search(r'<img class="gt" alt="ground truth" src="([^"]+)">', page).group(1))
    red = np.all(marked == (255, 0, 0), axis=2) & np.any(gt != (255, 0, 0), axis=2)
    outline = np.zeros((30, 40), bool)
    outline[2:14, 10:22] = True
    outline[3:13, 11:21] = False
    np.testing.assert_array_equal(red, outline)  # the box drawn on the ground truth: 12 px at left 10, top 2


def test_the_box_on_the_grids_ground_truth_frames_exactly_the_crop():
    """At a zoom of 1 (tile = the ground truth's height) the red box's outline is the crop's outermost pixels:
    rows top..top+side-1 and columns left..left+side-1, nothing outside them."""
    gt = np.zeros((40, 50, 3), np.uint8)
    top, left, side = 5, 10, 20
    grid = crop_grid(gt, [(['x'], gt)], (top, left, side), tile=40)
    full = grid[:40, :50]
    red = np.all(full == (255, 0, 0), axis=2)
    expected = np.zeros((40, 50), bool)
    expected[top:top + side, left:left + side] = True
    expected[top + 1:top + side - 1, left + 1:left + side - 1] = False
    np.testing.assert_array_equal(red, expected)


@pytest.fixture
def wide():
    """One 64 wide, 48 tall ground truth of dataset M."""
    return [SimpleNamespace(dataset='M', image='a.png')], [np.zeros((48, 64, 3), np.uint8)]


@pytest.mark.parametrize(
    'crop,box',
    [
        ('M/a:40,0,24', (0, 40, 24)),  # DATASET/STEM; reaches the last column of the wide image (40 + 24 = 64)
        ('a:0,24,24', (24, 0, 24)),  # reaches the last row (24 + 24 = 48)
        ('a.png:16,0,48', (0, 16, 48)),  # a box as tall as the image, inside its width
        ({'image': 'M/a.png', 'x': 1, 'y': 2, 'size': 3}, (2, 1, 3)),
    ])
def test_a_chosen_crop_up_to_the_images_edges_is_used(wide, crop, box):
    samples, gts = wide
    assert crop_boxes(samples, gts, [crop], 8) == [box]


@pytest.mark.parametrize('crop', ['a:41,0,24', 'a:0,25,24', 'a:0,0,49', 'a:0,0,0', 'a:-1,0,4'])
def test_a_chosen_crop_off_its_image_or_empty_is_refused_naming_it(wide, crop):
    samples, gts = wide
    with pytest.raises(ValueError, match=re.escape(crop)):
        crop_boxes(samples, gts, [crop], 8)
