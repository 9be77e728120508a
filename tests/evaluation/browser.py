"""A real headless Chromium for the report tests, driven over the DevTools protocol through a pipe
(``--remote-debugging-pipe``: NUL-separated JSON on file descriptors 3 and 4; the standard library only).

:func:`find_chromium` installs Debian's ``chromium`` package when it is missing and ``CI=true`` (the test set-up);
:class:`Browser` opens a page, evaluates JavaScript, sends real mouse events and takes screenshots.
"""
import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

NAMES = ('chromium', 'chromium-browser', 'google-chrome')


def find_chromium():
    """The path of a Chromium; under ``CI=true`` Debian's package is installed when none is found (about 40 s).
    None when there is none and this is not CI."""
    found = next((shutil.which(n) for n in NAMES if shutil.which(n)), None)
    if found or os.environ.get('CI') != 'true':
        return found
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    subprocess.run(['apt-get', 'update', '-q'], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'chromium'], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return shutil.which('chromium')


class Browser:
    """One headless Chromium with one page; ``with Browser(path) as b: b.open(url); b.evaluate('1 + 1')``."""

    def __init__(self, executable, width=1280, height=900, timeout=30):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix='chromium-profile-')
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def descriptors():  # the browser reads commands on fd 3 and writes answers on fd 4
            os.dup2(to_chrome_r, 103)
            os.dup2(from_chrome_w, 104)
            os.dup2(103, 3)
            os.dup2(104, 4)

        self.process = subprocess.Popen([
            executable, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
            '--remote-debugging-pipe', '--no-first-run', '--no-default-browser-check',
            f'--user-data-dir={self.profile}', f'--window-size={width},{height}', 'about:blank'
        ], preexec_fn=descriptors, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id, self._buffer, self.events = 0, b'', []
        target = self.send('Target.createTarget', {'url': 'about:blank'})['targetId']
        self.session = self.send('Target.attachToTarget', {'targetId': target, 'flatten': True})['sessionId']
        self.send('Page.enable', session=True)
        self.send('Runtime.enable', session=True)
        self.send('Emulation.setDeviceMetricsOverride',
                  {'width': width, 'height': height, 'deviceScaleFactor': 1, 'mobile': False}, session=True)

    def _read(self):
        deadline = time.monotonic() + self.timeout
        while b'\0' not in self._buffer:
            ready, _, _ = select.select([self._from_chrome], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError('no answer from chromium')
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError('chromium closed its pipe')
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b'\0', 1)
        return json.loads(message)

    def send(self, method, params=None, session=False):
        """One DevTools command; returns its result (events that arrive meanwhile are kept in ``events``)."""
        self._next_id += 1
        message = {'id': self._next_id, 'method': method, 'params': params or {}}
        if session:
            message['sessionId'] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b'\0')
        while True:
            answer = self._read()
            if answer.get('id') == self._next_id:
                if 'error' in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer['result']
            self.events.append(answer)

    def open(self, url):
        """Load ``url`` and wait for its load event."""
        self.events.clear()
        self.send('Page.navigate', {'url': url}, session=True)
        deadline = time.monotonic() + self.timeout
        while not any(e.get('method') == 'Page.loadEventFired' for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f'{url} did not load')
            self.events.append(self._read())

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send('Runtime.evaluate', {'expression': expression, 'returnByValue': True, 'awaitPromise': True},
                           session=True)
        if 'exceptionDetails' in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result['result'].get('value')

    def drag(self, x0, y0, x1, y1, steps=8):
        """A real left-button drag from (x0, y0) to (x1, y1), in viewport pixels."""
        self.send('Input.dispatchMouseEvent', {'type': 'mouseMoved', 'x': x0, 'y': y0}, session=True)
        self.send('Input.dispatchMouseEvent',
                  {'type': 'mousePressed', 'x': x0, 'y': y0, 'button': 'left', 'clickCount': 1}, session=True)
        for step in range(1, steps + 1):
            x, y = x0 + (x1 - x0) * step / steps, y0 + (y1 - y0) * step / steps
            self.send('Input.dispatchMouseEvent',
                      {'type': 'mouseMoved', 'x': x, 'y': y, 'button': 'left', 'buttons': 1}, session=True)
        self.send('Input.dispatchMouseEvent',
                  {'type': 'mouseReleased', 'x': x1, 'y': y1, 'button': 'left', 'clickCount': 1}, session=True)

    def click(self, x, y):
        self.drag(x, y, x, y, steps=1)

    def screenshot(self, path, full_page=True):
        """A PNG of the page (the whole page by default) written to ``path``."""
        params = {'format': 'png', 'captureBeyondViewport': full_page}
        if full_page:
            width, height = self.evaluate(
                '[document.documentElement.scrollWidth, document.documentElement.scrollHeight]')
            params['clip'] = {'x': 0, 'y': 0, 'width': width, 'height': height, 'scale': 1}
        with open(path, 'wb') as f:
            f.write(base64.b64decode(self.send('Page.captureScreenshot', params, session=True)['data']))
        return path

    def close(self):
        try:
            self.send('Browser.close')
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
