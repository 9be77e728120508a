"""Checkpoints: the zoo table with checksums and downloads, and the readers of state-dict files (:mod:`.zoo`)."""
