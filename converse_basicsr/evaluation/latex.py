"""converse-compare's LaTeX table, ``comparison.tex``: a booktabs ``tabular`` ready for ``\\input{}``.

One row per model (its label in full, escaped), one column group per dataset with its metrics rounded as papers
print them (PSNR and NIQE 2 decimals, SSIM and LPIPS 4), the best value of each column in bold and the second
underlined (ranked on the printed values, ties share the mark, direction per metric), then the optional
params / FLOPs / time columns. The protocol, the rounding and the marks are stated in comment lines above the
table, to be turned into its caption. Needs ``\\usepackage{booktabs}``.
"""
from converse_basicsr.evaluation import compare_metrics

EXTRA_COLUMNS = ('params', 'flops', 'time')
SPECIAL = {
    '\\': r'\textbackslash{}', '&': r'\&', '%': r'\%', '$': r'\$', '#': r'\#', '_': r'\_', '{': r'\{', '}': r'\}',
    '~': r'\textasciitilde{}', '^': r'\textasciicircum{}', '<': r'\textless{}', '>': r'\textgreater{}',
    '|': r'\textbar{}', '\n': ' ', '\r': ' ', '\t': ' '
}


def escape(text):
    """``text`` as LaTeX text: every special character escaped, line breaks as spaces (nothing dropped)."""
    return ''.join(SPECIAL.get(char, char) for char in str(text))


def _ranks(values, lower):
    """Per printed value: 1 for the best, 2 for the second best (ties share), None otherwise."""
    distinct = sorted({v for v in values if v is not None}, key=float, reverse=not lower)
    return [None if v is None else (distinct.index(v) + 1 if distinct.index(v) < 2 else None) for v in values]


def _cell(text, rank):
    return r'\textbf{%s}' % text if rank == 1 else r'\underline{%s}' % text if rank == 2 else text


def _number(value, digits):
    return None if value in ('', None) else f'{float(value):.{digits}f}'


def latex_table(rows, metrics, notes, extras=('params', 'flops')):
    """The text of ``comparison.tex``. ``rows``: the comparison rows (``entry``, ``dataset``, ``model``, metric
    means, ``params``, ``gflops_total``, ``seconds_per_image``, ``error``); ``notes``: comment lines (the
    protocol, the measurement); ``extras``: any of ``params``, ``flops``, ``time``."""
    datasets = list(dict.fromkeys(r['dataset'] for r in rows))
    entries = {}
    for r in rows:
        entries.setdefault(r.get('entry', r['model']), {})[r['dataset']] = r
    models = list(entries.values())
    columns = []  # (dataset, metric name)
    for dataset in datasets:
        columns += [(dataset, name) for name in metrics]
    printed = {}
    for dataset, name in columns:
        digits = compare_metrics.decimals(name, metrics[name])
        values = [_number(m.get(dataset, {}).get(name), digits) for m in models]
        printed[dataset, name] = list(zip(values, _ranks(values, compare_metrics.lower_is_better(name, metrics[name]))))
    extras = [e for e in EXTRA_COLUMNS if e in extras]
    spec = 'l' + ''.join(' ' + 'c' * len(metrics) for _ in datasets) + (' ' + 'r' * len(extras) if extras else '')
    group = ' & '.join(rf'\multicolumn{{{len(metrics)}}}{{c}}{{{escape(d)}}}' for d in datasets)
    rules = ' '.join(rf'\cmidrule(lr){{{2 + i * len(metrics)}-{1 + (i + 1) * len(metrics)}}}'
                     for i in range(len(datasets)))
    heads = [
        escape(compare_metrics.title(n, o)) +
        (r'$\downarrow$' if compare_metrics.lower_is_better(n, o) else r'$\uparrow$') for n, o in metrics.items()
    ]
    extra_heads = {'params': 'Params (M)', 'flops': 'GFLOPs', 'time': 's / image'}
    lines = [f'% {escape_comment(line)}' for line in notes]
    lines += [
        rf'\begin{{tabular}}{{{spec}}}', r'\toprule', ' & '.join([''] + [group] + [''] * len(extras)) + r' \\', rules,
        ' & '.join(['Model'] + heads * len(datasets) + [extra_heads[e] for e in extras]) + r' \\', r'\midrule'
    ]
    for index, model in enumerate(models):
        first = next(iter(model.values()))
        cells = [escape(first['model'])]
        for dataset, name in columns:
            value, rank = printed[dataset, name][index]
            cells.append('--' if value is None else _cell(value, rank))
        cells += [_extra(first, e) for e in extras]
        lines.append(' & '.join(cells) + r' \\')
    lines += [r'\bottomrule', r'\end{tabular}', '']
    return '\n'.join(lines)


def _extra(row, column):
    if row['error']:
        return '--'
    key, digits, scale = {
        'params': ('params', 2, 1e-6), 'flops': ('gflops_total', 2, 1), 'time': ('seconds_per_image', 3, 1)
    }[column]
    value = row.get(key)
    return '--' if value in ('', None) else f'{float(value) * scale:.{digits}f}'


def escape_comment(text):
    """One comment line: line breaks become spaces (a newline would end the comment and leak text)."""
    return ' '.join(str(text).split('\n'))


def describe_rounding(metrics):
    """The caption's sentence on rounding and marks."""
    parts = [f'{compare_metrics.title(n, o)} {compare_metrics.decimals(n, o)} decimals' for n, o in metrics.items()]
    return (f"Rounded as printed: {', '.join(parts)}. Best value per column in bold, second underlined "
            '(ranked on the printed values; arrows give the better direction).')
