"""Training beyond BasicSR: the pipeline with exact resume (:mod:`.pipeline`), atomic checkpoints
(:mod:`.checkpoints`), fixes for basicsr 1.4.2 applied on request (:mod:`.compat`) and option checks
(:mod:`.option_checks`). Importing this package imports none of them."""
