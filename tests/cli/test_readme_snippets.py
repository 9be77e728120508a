"""The README's commands and snippets work as written, and the documentation's relative links resolve.

- Python snippets (```python fences of README.md): every one compiles. The cheap ones also run, each in a fresh
  namespace, together in one subprocess with a timeout, from an empty folder. A snippet is **cheap** when it
  reads no file and downloads nothing, so that it finishes in seconds without network or data: it names no
  published model (a string literal equal to a zoo name such as ``'converse_dncnn'``) and no file (a string
  literal ending in an image, array, checkpoint, YAML or Python extension). The others (a restore of
  ``blurry.png``, a comparison on ``../shared``) are compiled only.
- Shell commands (```bash / ```sh / ```shell fences of README.md and docs/*.md; ``\\`` continuations joined,
  ``&&`` split, comments dropped): the executable exists (a console script declared in setup.py, ``python -m
  converse_basicsr.<entry>`` or another importable module, ``python scripts/X.py`` of an existing file, a
  ``make`` target of the Makefile, ``pip`` with setup.py present); ``--config NAME`` resolves to a shipped
  config of the entry's kind; ``-opt options/...`` exists. Cheap run: ``--help`` of every one of the package's
  entry points and scripts that the commands use, in one subprocess; it exits 0 and lists every option that a
  command passes to it.
- Links: every relative link ``[text](target)`` and image in README.md and docs/*.md points to an existing file.
"""
import ast
import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from converse_basicsr.utils.configs import resolve_config
from converse_basicsr.zoo import ZOO

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / 'README.md'] + sorted((ROOT / 'docs').glob('*.md'))
SHELL_FENCES = ('bash', 'sh', 'shell')
FILE_LITERAL = re.compile(r'\.(png|jpe?g|bmp|tiff?|npy|pth|pt|ya?ml|py|json|csv)$', re.I)
CONFIG_KINDS = {'train': 'train', 'test': 'test', 'compare': 'compare', 'demo': 'demo'}
SNIPPET_TIMEOUT_S = 120
# Options an entry point accepts but its --help does not list: converse-train's --help is BasicSR's parser's, and
# the package's own --config and --check-data are split off before it (training pipeline, parse_entry_arguments).
NOT_IN_HELP = {'converse_basicsr.train': {'--config', '--check-data'}}


def fenced_blocks(path, languages):
    """``(line number, language, text)`` of each fenced block of ``path`` whose language is in ``languages``."""
    blocks, language, start, lines = [], None, 0, []
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if language is None and line.startswith('```'):
            language, start, lines = line[3:].strip(), number, []
        elif language is not None and line.startswith('```'):
            if language in languages:
                blocks.append((start, language, '\n'.join(lines) + '\n'))
            language = None
        elif language is not None:
            lines.append(line)
    assert language is None, f'{path.name}: fence opened at line {start} is never closed'
    return blocks


def shell_commands(path):
    """``(where, tokens)`` of every command in the shell fences of ``path``."""
    commands = []
    for start, _, text in fenced_blocks(path, SHELL_FENCES):
        for line in text.replace('\\\n', ' ').splitlines():
            for part in re.split(r'\s&&\s', line):
                tokens = shlex.split(part, comments=True)
                if tokens:
                    commands.append((f'{path.relative_to(ROOT)}:{start}: {" ".join(tokens)}', tokens))
    return commands


def console_scripts():
    """``{script name: module}`` of the console scripts declared in setup.py."""
    found = re.findall(r"'(converse-[\w-]+)=(converse_basicsr[\w.]*):main'", (ROOT / 'setup.py').read_text())
    assert found, 'no console scripts found in setup.py'
    return dict(found)


def make_targets():
    return set(re.findall(r'^([\w-]+):', (ROOT / 'Makefile').read_text(encoding='utf-8'), re.M))


def parse_command(tokens, scripts):
    """``(kind, target, args)``: kind ``module`` / ``script`` (a file) / ``make`` / ``pip``; None if unknown."""
    if tokens[0] == 'srun':  # srun -n 8 python ...: the launched command
        tokens = tokens[next(i for i, t in enumerate(tokens) if t.endswith('python')):]
    if tokens[0] == 'torchrun':
        i = tokens.index('-m')
        return 'module', tokens[i + 1], tokens[i + 2:]
    if tokens[0] in ('python', 'python3') or tokens[0].endswith('/python'):
        if tokens[1] == '-m':
            return 'module', tokens[2], tokens[3:]
        return 'script', tokens[1], tokens[2:]
    if tokens[0] in scripts:
        return 'module', scripts[tokens[0]], tokens[1:]
    if tokens[0] in ('make', 'pip'):
        return tokens[0], None, tokens[1:]
    return None


def all_commands():
    scripts = console_scripts()
    return [(where, parse_command(tokens, scripts)) for path in DOCS for where, tokens in shell_commands(path)]


def check_command(where, parsed, targets):
    """Assert that the command's executable, make target, script, config and option file exist."""
    assert parsed is not None, f'{where}: unknown executable'
    kind, target, args = parsed
    if kind == 'make':
        missing = [a for a in args if not a.startswith('-') and a not in targets]
        assert args and not missing, f'{where}: no such make target {missing}'
    elif kind == 'pip':
        assert (ROOT / 'setup.py').is_file(), where
    elif kind == 'script':
        assert (ROOT / target).is_file(), f'{where}: no such script {target}'
    else:
        import importlib.util
        assert importlib.util.find_spec(target) is not None, f'{where}: no module {target}'
    for flag, value in zip(args, args[1:]):
        if flag == '--config':
            entry = target.rsplit('.', 1)[-1] if kind == 'module' else ''
            assert entry in CONFIG_KINDS, f'{where}: --config given to {target}'
            resolve_config(value, CONFIG_KINDS[entry])  # raises FileNotFoundError naming it
        if flag == '-opt' and value.startswith('options/'):
            assert (ROOT / value).is_file(), f'{where}: no such option file {value}'


def test_shell_commands_name_existing_things():
    targets = make_targets()
    commands = all_commands()
    assert len(commands) >= 10, commands  # the README alone has more; an empty parse must not pass
    for where, parsed in commands:
        check_command(where, parsed, targets)


HELP_RUNNER = textwrap.dedent("""\
    import contextlib, io, json, runpy, sys
    results = {}
    for kind, target in json.loads(sys.argv[1]):
        buffer, saved = io.StringIO(), sys.argv
        sys.argv = [target, '--help']
        try:
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                if kind == 'module':
                    runpy.run_module(target, run_name='__main__', alter_sys=True)
                else:
                    runpy.run_path(target, run_name='__main__')
            code = 'returned without exiting'
        except SystemExit as exit:
            code = exit.code or 0
        except BaseException as error:
            code = repr(error)
        finally:
            sys.argv = saved
        results[f'{kind} {target}'] = [code, buffer.getvalue()]
    with open(sys.argv[2], 'w') as f:
        json.dump(results, f)
    """)


def ours(parsed):
    kind, target, _ = parsed
    return (kind == 'module' and target.startswith('converse_basicsr')) or kind == 'script'


def test_entry_points_help_lists_every_option_used(tmp_path):
    """The cheap run of every command: ``--help`` of each of the package's entry points and scripts in use."""
    commands = [(where, parsed) for where, parsed in all_commands() if parsed and ours(parsed)]
    executables = sorted({(parsed[0], parsed[1]) for _, parsed in commands})
    out = tmp_path / 'help.json'
    subprocess.run([sys.executable, '-c', HELP_RUNNER,
                    json.dumps(executables), str(out)], cwd=ROOT, check=True, timeout=SNIPPET_TIMEOUT_S,
                   stdout=subprocess.DEVNULL)
    helps = json.loads(out.read_text())
    for key, (code, text) in helps.items():
        assert code == 0 and 'usage:' in text, f'{key} --help: exit {code}\n{text[-2000:]}'
    for where, (kind, target, args) in commands:
        text = helps[f'{kind} {target}'][1]
        flags = {a.split('=')[0] for a in args if a.startswith('-')} - NOT_IN_HELP.get(target, set())
        for flag in sorted(flags):
            assert re.search(rf'(?<![\w-]){re.escape(flag)}(?![\w-])', text), f'{where}: {flag} not in --help'


def python_snippets():
    return [(f'README.md:{start}', text) for start, _, text in fenced_blocks(ROOT / 'README.md', ('python', ))]


def is_cheap(text):
    """The docstring's rule: no string literal naming a published model or a file."""
    literals = [n.value for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return not any(s in ZOO or FILE_LITERAL.search(s) for s in literals)


def test_python_snippets_compile():
    snippets = python_snippets()
    assert len(snippets) >= 4, snippets
    for where, text in snippets:
        compile(text, where, 'exec')


SNIPPET_RUNNER = textwrap.dedent("""\
    import json, sys, traceback
    failures = []
    for where, text in json.loads(sys.stdin.read()):
        try:
            exec(compile(text, where, 'exec'), {'__name__': '__main__'})
        except BaseException:
            failures.append(where + ':\\n' + traceback.format_exc())
    print(json.dumps(failures))
    """)


def test_cheap_python_snippets_run(tmp_path):
    cheap = [(where, text) for where, text in python_snippets() if is_cheap(text)]
    assert len(cheap) >= 3, [where for where, _ in cheap]  # the operator, the converter, the mmengine registry
    done = subprocess.run([sys.executable, '-c', SNIPPET_RUNNER], input=json.dumps(cheap), cwd=tmp_path, text=True,
                          capture_output=True, timeout=SNIPPET_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert not failures, '\n'.join(failures)


LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')


@pytest.mark.parametrize('path', DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_resolve(path):
    text = re.sub(r'```.*?```', '', path.read_text(encoding='utf-8'), flags=re.S)  # links in code are not links
    for target in LINK.findall(text):
        if re.match(r'[a-z]+:', target) or target.startswith('#'):
            continue
        file = (path.parent / target.split('#')[0]).resolve()
        assert file.exists(), f'{path.relative_to(ROOT)}: link to {target} points to nothing'
