"""Model parameters stored as views into one flat buffer, so update rules can treat them as one array.

Both dicts pickle and copy as their flat buffer plus the names and shapes, so the arrays of an
unpickled or ``copy.deepcopy``-ed dict are views into its own new buffer (``copy.copy`` shares the
buffer, as a shallow copy shares a dict's values).
"""

from __future__ import annotations

import numpy as np


class ParamDict(dict):
    """A dict of named views into one flat array.

    Assigning ``params[name] = value`` copies into the existing view (the CS231n solver and
    notebooks assign new arrays this way), so the flat buffer always holds the current values.
    """

    def __init__(self, arrays: dict[str, np.ndarray], dtype: np.dtype):
        total = sum(a.size for a in arrays.values())
        self.flat = np.empty(total, dtype=dtype)
        super().__init__(_views(self.flat, {k: a.shape for k, a in arrays.items()}))
        for name, array in arrays.items():
            dict.__getitem__(self, name)[...] = array

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        if name not in self:
            raise KeyError(f"unknown parameter {name!r}; parameters: {', '.join(self)}")
        target = dict.__getitem__(self, name)
        value = np.asarray(value)
        if value.shape != target.shape:
            raise ValueError(
                f"parameter {name!r} has shape {target.shape}, cannot assign shape {value.shape}"
            )
        target[...] = value

    def update(self, *args, **kwargs) -> None:
        """Assign every item through :meth:`__setitem__` (``dict.update`` replaces the views)."""
        for name, value in dict(*args, **kwargs).items():
            self[name] = value

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: v.shape for k, v in self.items()}

    def __reduce__(self):
        return _rebuild, (type(self), self.flat, self.shapes())

    def empty_like(self) -> "GradDict":
        """A dict of uninitialised arrays with the same names, shapes and flat layout."""
        return GradDict(np.empty_like(self.flat), self.shapes())


class GradDict(dict):
    """Gradients laid out exactly like a :class:`ParamDict`; ``flat`` is the whole buffer."""

    def __init__(self, flat: np.ndarray, shapes: dict[str, tuple[int, ...]]):
        self.flat = flat
        super().__init__(_views(flat, shapes))

    def __reduce__(self):
        return _rebuild, (type(self), self.flat, {k: v.shape for k, v in self.items()})


def _rebuild(cls: type, flat: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> dict:
    """Unpickle a :class:`ParamDict` or :class:`GradDict`: named views into ``flat``."""
    obj = cls.__new__(cls)
    obj.flat = flat
    dict.update(obj, _views(flat, shapes))
    return obj


def _views(flat: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    views, offset = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape, dtype=np.int64))
        views[name] = flat[offset : offset + size].reshape(shape)
        offset += size
    return views
