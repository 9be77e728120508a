"""Evaluation: metrics and the paper's protocols shared by ``converse-test`` and ``converse-compare``
(:mod:`.protocols`); converse-compare's inputs (:mod:`.compare_inputs`), model entries (:mod:`.model_entries`),
measurements (:mod:`.measurement`), runner (:mod:`.runner`) and report (:mod:`.report`)."""
