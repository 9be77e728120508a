"""Checkpoints and models: the one model front door (:mod:`.resolver`), self-describing checkpoints
(:mod:`.description`), the zoo table with checksums and downloads (:mod:`.zoo`), the readers of checkpoint files and
state dicts, importing no arch (:mod:`.state_dicts`), and spandrel detection (:mod:`.public`, :mod:`.spandrel_arches`).
"""
