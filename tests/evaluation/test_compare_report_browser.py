"""converse-compare's report.html in a real headless Chromium (Debian's package; installed by the test set-up under
CI=true, see tests/evaluation/browser.py): one table row per model and dataset with the full labels, every image
loaded, a real mouse drag moves the before/after slider, a click sorts the table; a screenshot is kept in
``test-artifacts/`` (``$CONVERSE_TEST_ARTIFACTS``). The same checks find a broken copy of the report."""
import os
import re

import pytest

from tests.evaluation.browser import Browser, find_chromium
from tests.evaluation.compare_fixture import LONG, NEWLINE
from tests.helpers.shared_files import REPO_ROOT

ARTIFACTS = os.environ.get('CONVERSE_TEST_ARTIFACTS', str(REPO_ROOT / 'test-artifacts'))
BOX = ("(() => { const r = document.querySelector(SEL).getBoundingClientRect(); "
       "return [r.x, r.y, r.width, r.height] })()")


@pytest.fixture
def report(report_run):
    return report_run


@pytest.fixture(scope='module')
def browser():
    executable = find_chromium()
    if executable is None:
        pytest.skip('no Chromium here (under CI=true the test installs Debian\'s chromium package)')
    with Browser(executable) as b:
        yield b


def report_problems(browser, path, rows):
    """What is wrong with the report at ``path`` in the browser: [] when the table has one row per (dataset,
    model) of ``rows`` with the full labels, every image has loaded, and a drag moves the first slider."""
    browser.open(path.resolve().as_uri())
    problems = []
    table = browser.evaluate("Array.from(document.querySelectorAll('#comparison tbody tr'))"
                             ".map(r => [r.cells[0].innerText, r.cells[1].innerText])")
    expected = [[r['dataset'], r['model']] for r in rows]
    if table != expected:
        problems.append(f'table rows {table} != {expected}')
    broken = browser.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                              ".map(i => i.alt)")
    if broken or browser.evaluate('document.images.length') < 2:
        problems.append(f'images not loaded: {broken}')
    browser.evaluate("document.querySelector('.slider').scrollIntoView({block: 'center'})")
    x, y, width, height = browser.evaluate(BOX.replace('SEL', "'.slider input'"))
    before = browser.evaluate("document.querySelector('.slider img.after').style.clipPath")
    browser.drag(x + width / 2, y + height / 2, x + width * 0.85, y + height / 2)
    after = browser.evaluate("document.querySelector('.slider img.after').style.clipPath")
    value = browser.evaluate("+document.querySelector('.slider input').value")
    if before == after or not 75 <= value <= 95 or f'{value}%' not in after:
        problems.append(f'the slider did not move: {before} -> {after}, value {value}')
    return problems


def test_report_in_a_real_browser(report, browser, tmp_path):
    path = report['out'] / 'report.html'
    html = path.read_text(encoding='utf-8')
    assert not re.search(r'(src|href)="(https?:)?//', html), 'the report must not reach the network'
    assert report_problems(browser, path, report['rows']) == []
    labels = browser.evaluate("Array.from(document.querySelectorAll('#comparison tbody tr')).map(r => r.cells[1]"
                              ".innerHTML)")
    assert labels[4] == LONG.replace('&', '&amp;') and labels[6] == 'nearest<br>then &lt;b&gt;box&lt;/b&gt;'
    # the slider can show any two of the panels: pick the long-named model against the ground truth
    browser.evaluate("(() => { const s = document.querySelector('select.right'); s.value = '3';"
                     " s.dispatchEvent(new Event('input')); })()")
    assert browser.evaluate("document.querySelector('.slider img.after').src === "
                            "document.querySelectorAll('.crops img')[3].src")
    assert browser.evaluate("document.querySelectorAll('.crops figcaption')[3].innerText").startswith(LONG)
    assert NEWLINE.split('\n')[0] in browser.evaluate("document.querySelectorAll('.crops figcaption')[4].innerText")
    # a click on the PSNR title sorts the rows by PSNR, ascending
    browser.evaluate("window.scrollTo(0, 0)")
    x, y, width, height = browser.evaluate(BOX.replace('SEL', "'#comparison th:nth-child(4)'"))
    browser.click(x + width / 2, y + height / 2)
    psnr = browser.evaluate("Array.from(document.querySelectorAll('#comparison tbody tr')).map(r => "
                            "+r.cells[3].dataset.sort)")
    assert psnr == pytest.approx(sorted(float(r['psnr']) for r in report['rows']), abs=1e-6)
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = browser.screenshot(os.path.join(ARTIFACTS, 'compare_report.png'))
    assert os.path.getsize(shot) > 20000


@pytest.mark.parametrize('break_it', ['missing image', 'row dropped', 'slider script'])
def test_the_checks_find_a_broken_report(report, browser, tmp_path, break_it):
    html = (report['out'] / 'report.html').read_text(encoding='utf-8')
    if break_it == 'missing image':  # one crop pointing at a file that is not there
        html = html.replace('src="data:image/png;base64,', 'src="outputs/missing.png" data-x="', 3)
    elif break_it == 'row dropped':
        html = re.sub(r'<tr><td class="t" data-sort="B_2">.*?</tr>', '', html, count=1)
    else:
        html = html.replace("after.style.clipPath = 'inset", "after.dataset.clip = 'inset")
    broken = tmp_path / 'report.html'
    broken.write_text(html, encoding='utf-8')
    assert report_problems(browser, broken, report['rows']) != []
