"""``converse_basicsr/export`` imports point one way: no module imports one that imports it back."""
import ast
from pathlib import Path

import converse_basicsr.export

FOLDER = Path(converse_basicsr.export.__file__).parent


def _imports(path):
    """The sibling modules ``path`` imports (``from .name import …`` anywhere in it, functions included)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('converse_basicsr.export.'):
            found.add(node.module.split('.')[2])
    return found


def test_no_import_circle_in_export():
    graph = {p.stem: _imports(p) - {p.stem} for p in FOLDER.glob('*.py') if p.stem not in ('__init__', '__main__')}
    assert {'exporter', 'runtime', 'cli'} <= set(graph)

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, seen + (n, ))) for n in graph.get(start, ()))

    circles = sorted(name for name in graph if reaches(name, name))
    assert circles == [], f'modules in an import circle: {circles} ({graph})'
