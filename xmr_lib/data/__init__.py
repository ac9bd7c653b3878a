"""Datasets: ``data.load(name, split)`` for the embedded and converted real sets and the readers of the other prepared
real sets (Karpathy captions, tagged collections, MediaEval 2017) (:mod:`.registry`), the generated
benchmarks (:mod:`.photo_instances`, :mod:`.easy_vqa`, :mod:`.shape_captions`).

The package's public names are exactly :mod:`.registry`'s ``__all__`` (one list, kept there)."""

from xmr_lib.data import registry
from xmr_lib.data.registry import *  # noqa: F403  (the names of registry.__all__, re-exported)

__all__ = list(registry.__all__)
