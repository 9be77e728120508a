"""converse-compare's HTML report, ``report.html``: one self-contained file (every image a data URI; no server,
network or CDN) with the sortable table, the plot, and per image the crops side by side with their per-image
metrics and a before/after slider between any two of the ground truth, the degraded input and the models."""
import base64
import html

import cv2

from converse_basicsr.evaluation import compare_metrics

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
td.t,th.t{text-align:left}th{background:#eee;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}
.crops{display:flex;flex-wrap:wrap;gap:8px}.crops figure{margin:0;width:TILEpx}
.crops img,.slider img{image-rendering:pixelated;width:TILEpx;height:TILEpx;display:block}
figcaption{font-size:12px;overflow-wrap:anywhere;white-space:pre-wrap}
.slider{position:relative;width:SLIDEpx;height:SLIDEpx;margin-bottom:30px}.slider img{position:absolute;top:0;
left:0;width:SLIDEpx;height:SLIDEpx}.slider .after{clip-path:inset(0 0 0 50%)}.slider input{position:absolute;
bottom:-26px;left:0;width:SLIDEpx;margin:0}.pick{margin:0 0 6px}.compare{margin-bottom:40px}
.view{display:flex;gap:16px;align-items:flex-start;margin-bottom:10px}.gt{width:SLIDEpx;image-rendering:pixelated}
.notes p{font-size:12px;color:#444;margin:.3em 0}#plot{max-width:100%}select{max-width:280px}
"""
SCRIPT = """
function cellValue(row, i) {
  const v = row.cells[i].dataset.sort; const n = parseFloat(v); return isNaN(n) ? v : n;
}
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const table = th.closest('table'), body = table.tBodies[0];
  const up = th.getAttribute('aria-sort') !== 'ascending';
  table.querySelectorAll('th').forEach(h => h.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = cellValue(a, i), y = cellValue(b, i);
    if (x === '' || y === '') return (x === '') - (y === '');
    return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
  });
  rows.forEach(r => body.appendChild(r));
}));
document.querySelectorAll('.compare').forEach(box => {
  const panels = box.querySelectorAll('.crops img');
  const before = box.querySelector('img.before'), after = box.querySelector('img.after');
  const left = box.querySelector('select.left'), right = box.querySelector('select.right');
  const range = box.querySelector('input[type=range]');
  const show = () => {
    before.src = panels[left.value].src; after.src = panels[right.value].src;
    after.style.clipPath = 'inset(0 0 0 ' + range.value + '%)';
  };
  [left, right, range].forEach(e => e.addEventListener('input', show));
  show();
});
"""


def data_uri(rgb):
    """A PNG data URI of an HWC uint8 RGB image (lossless)."""
    ok, png = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return 'data:image/png;base64,' + base64.b64encode(png.tobytes()).decode('ascii')


def text(value):
    """HTML text: escaped, line breaks kept as line breaks."""
    return html.escape(str(value)).replace('\n', '<br>')


def _number(value, digits):
    return '' if value in ('', None) else f'{float(value):.{digits}f}'


def _table(rows, metrics):
    heads = ['Dataset', 'Model', 'Images'] + [compare_metrics.title(n, o) for n, o in metrics.items()] + \
            ['Params', 'GFLOPs', 's / image', 'Error']
    out = ['<table class="sortable" id="comparison"><thead><tr>']
    out += [f'<th class="{"t" if h in ("Dataset", "Model", "Error") else "n"}">{text(h)}</th>' for h in heads]
    out.append('</tr></thead><tbody>')
    for r in rows:
        cells = [(r['dataset'], r['dataset'], 't'), (r['model'], r['model'], 't'), (r['images'], r['images'], 'n')]
        cells += [(r[n], _number(r[n], compare_metrics.decimals(n, o)), 'n') for n, o in metrics.items()]
        flops = r['gflops_total']
        cells += [(r['params'], '' if r['params'] == '' else f"{r['params']:,}", 'n'), (flops, _number(flops, 2), 'n'),
                  (r['seconds_per_image'], _number(r['seconds_per_image'], 3), 'n'), (r['error'], r['error'], 't')]
        out.append('<tr>' + ''.join(f'<td class="{c}" data-sort="{html.escape(str(v), quote=True)}">{text(shown)}</td>'
                                    for v, shown, c in cells) + '</tr>')
    out.append('</tbody></table>')
    return ''.join(out)


def _image_section(index, sample, gt, box, panels, metrics, tile):
    """One image: the ground truth with its box, the crops side by side with their metrics, the slider."""
    top, left, side = box
    marked = gt.copy()
    cv2.rectangle(marked, (left, top), (left + side - 1, top + side - 1), (255, 0, 0), max(1, gt.shape[0] // 200))
    out = [
        f'<section class="compare" id="image-{index}"><h3>{text(sample.dataset)} / {text(sample.image)}</h3>',
        f'<p>Crop box {side} px at ({left}, {top}) of {gt.shape[1]}×{gt.shape[0]}; the crops below, each with its '
        'per-image metrics; the slider shows any two of them.</p>'
    ]
    crops, options = ['<div class="crops">'], []
    for n, panel in enumerate(panels):
        scores = '\n'.join(
            f'{compare_metrics.title(k, o)} {_number(panel["values"][k], compare_metrics.decimals(k, o))}'
            for k, o in metrics.items() if panel['values'].get(k, '') != '')
        crop = panel['image'][top:top + side, left:left + side]
        label = html.escape(panel['label'], quote=True)
        crops.append(f'<figure><img alt="{label}" src="{data_uri(crop)}"><figcaption>{text(panel["label"])}'
                     f'{"<br>" + text(scores) if scores else ""}</figcaption></figure>')
        options.append(f'<option value="{n}">{html.escape(" ".join(panel["label"].split()))}</option>')
    right = min(len(panels) - 1, 2)
    chosen = [o.replace('">', '" selected>', 1) if n == right else o for n, o in enumerate(options)]
    out.append(f'<div class="view"><img class="gt" alt="ground truth" src="{data_uri(marked)}"><div>'
               f'<div class="pick">before <select class="left">{"".join(options)}</select> after '
               f'<select class="right">{"".join(chosen)}</select></div>'
               f'<div class="slider"><img class="before" alt="before"><img class="after" alt="after">'
               '<input type="range" min="0" max="100" value="50" aria-label="before/after"></div></div></div>')
    out += crops + ['</div></section>']
    return ''.join(out)


def html_report(rows, metrics, notes, images, plot_png=None, tile=128):
    """The text of ``report.html``. ``images``: per image (sample, ground truth HWC uint8 RGB, crop box, panels),
    a panel ``{'label', 'image' (HWC uint8 RGB, ground-truth size), 'values' ({metric: value})}``, the ground
    truth first; ``notes``: the protocol lines; ``plot_png``: the plot's PNG bytes."""
    style = STYLE.replace('SLIDE', str(2 * tile)).replace('TILE', str(tile))
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>converse-compare report</title>',
        f'<style>{style}</style></head><body><h1>converse-compare report</h1>', '<h2>Table</h2>',
        _table(rows, metrics), '<p>Click a column title to sort.</p>'
    ]
    out += ['<div class="notes">'] + [f'<p>{text(line)}</p>' for line in notes] + ['</div>']
    if plot_png is not None:
        uri = 'data:image/png;base64,' + base64.b64encode(plot_png).decode('ascii')
        out.append(f'<h2>Quality against time</h2><img id="plot" alt="quality against time" src="{uri}">')
    out.append('<h2>Images</h2>')
    for index, (sample, gt, box, panels) in enumerate(images):
        out.append(_image_section(index, sample, gt, box, panels, metrics, tile))
    out.append(f'<script>{SCRIPT}</script></body></html>\n')
    return '\n'.join(out)
