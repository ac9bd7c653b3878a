"""Read the pickles that real benchmarks publish (revisitop's ``gnd_*.pkl``, CIFAR's batches) without running code.

``pickle.load`` on a downloaded file can call any importable function; a published ground-truth file only needs
containers, strings, numbers and numpy arrays. :func:`load` refuses everything else with an error naming the file
and the class it asked for.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

__all__ = ["ALLOWED", "load", "loads"]

# (module, name) pairs a data pickle may ask for: builtin containers and numpy's array / scalar reconstruction
# (numpy 1.x names them numpy.core.*, numpy 2.x numpy._core.*).
ALLOWED = frozenset(
    [("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int")]
    + [("builtins", n) for n in ("float", "complex", "bool", "slice", "range")]
    + [("collections", "OrderedDict"), ("_codecs", "encode")]
    + [(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer")]
    + [("numpy._core.numeric", "_frombuffer")]
)


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, f, source: str, **kw):
        super().__init__(f, **kw)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 pickles (and protocols 0-2) name builtins "__builtin__"; super() maps them back
        if (module.replace("__builtin__", "builtins"), name) not in ALLOWED:
            raise pickle.UnpicklingError(
                f"{self._source}: the pickle asks for {module}.{name}, which a data file never needs; refused "
                "(only containers, strings, numbers and numpy arrays are read)"
            )
        return super().find_class(module, name)


def load(path: str | os.PathLike, encoding: str = "ASCII") -> Any:
    """Unpickle a data file. ``encoding="latin1"`` or ``"bytes"`` reads Python 2 pickles (CIFAR's batches).

    Raises ``pickle.UnpicklingError`` naming ``path`` for a pickle that asks for anything but data.
    """
    p = Path(path)
    with open(p, "rb") as f:
        return _DataUnpickler(f, str(p), encoding=encoding).load()


def loads(data: bytes, source: str = "<bytes>", encoding: str = "ASCII") -> Any:
    """:func:`load` from bytes; ``source`` names them in errors."""
    return _DataUnpickler(io.BytesIO(data), source, encoding=encoding).load()
