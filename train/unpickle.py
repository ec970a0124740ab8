"""The one pickle the product reads: CIFAR-10's own python batches, through an allowlist."""

from __future__ import annotations

import pickle
from typing import Any


class ArraysOnly(pickle.Unpickler):
    """The CIFAR-10 batches are pickles (the official format): this reads dicts, lists, strings
    and numpy arrays from them and refuses every other global, so a planted batch file cannot run
    code (data dirs are shared too)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch (only numpy arrays)")
        return super().find_class(module, name)
