"""Download, verify and convert the real benchmarks the ``full`` profiles use — the only code in xmr that downloads.

``python -m data_scripts list | info NAME | fetch NAME --root DIR [--from-dir DIR] | convert NAME --root DIR |
verify NAME --root DIR``. The registry (:mod:`data_scripts.registry`) holds each dataset's URLs, checksums, sizes,
licence and citation; :mod:`data_scripts.download` downloads with the standard library only (resumable, verified);
:mod:`data_scripts.convert` writes the layout that :mod:`xmr_lib.data` reads (see ``data_scripts/README.md``).
"""

from .registry import DATASETS  # noqa: F401
