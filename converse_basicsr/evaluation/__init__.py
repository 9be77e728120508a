"""Evaluation: metrics and the paper's protocols shared by ``converse-test`` and ``converse-compare``
(:mod:`.protocols`), and compare's runner and report (:mod:`.comparison`)."""
