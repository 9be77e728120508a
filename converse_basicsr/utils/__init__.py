"""Small helpers shared by the whole package: runtime settings (:mod:`.runtime`), shipped-config lookup
(:mod:`.configs`) and module discovery (:mod:`.discovery`)."""
