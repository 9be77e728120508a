"""Checkpoints: the zoo table with checksums and downloads (:mod:`.zoo`), the readers of checkpoint files and
state dicts, importing no arch (:mod:`.state_dicts`), and public checkpoints by path (:mod:`.public`)."""
