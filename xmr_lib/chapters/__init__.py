"""Per-notebook settings: ``chNN.py`` holds ``PROFILES`` (smoke / default / full values of the notebook's knobs)
and ``CLAIMS`` (the paper's claims, decided by recorded metrics; see :mod:`xmr_lib.claims`)."""
