"""Named registries through which plugins (cells, tokenizers, datasets, ...) plug into capx.

A plugin registers at import time with a decorator::

    @CELLS.register("gru")
    class GRUCell: ...

Lookups import capx's own modules for that kind first, then the modules of installed packages
that declare the ``capx.plugins`` entry-point group, so ``CELLS.get("lstm")`` works without the
caller importing anything by hand.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata
from typing import Any, Callable, Iterable

ENTRY_POINT_GROUP = "capx.plugins"


class PluginError(ImportError):
    """A plugin module could not be imported; names the module and keeps the original error."""


class UnknownNameError(ValueError, KeyError):
    """A name that no plugin registered."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0])


class DuplicateNameError(ValueError):
    """Two plugins registered the same name in one registry."""


def import_plugin(module_name: str) -> Any:
    """Import ``module_name``, turning any failure into a :class:`PluginError` that names it."""
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - re-raised with the plugin's name
        raise PluginError(
            f"could not import plugin module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc


class PluginNotEnabledError(PluginError):
    """A file (a checkpoint's config, a model) needs plugin modules that the user has not enabled."""

    def __init__(self, message: str, modules: list[str]):
        super().__init__(message)
        self.modules = modules


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Import extra plugin modules the *user* named (the command line's or a config file's
    ``plugins:`` list, an explicit argument) and the installed entry points. Never call it with
    a list read from a checkpoint or model: use :func:`require_plugins` for those."""
    for module_name in modules:
        import_plugin(module_name)
    _load_entry_points()


def require_plugins(needed: Any, source: str, how: str) -> None:
    """Check that the plugin modules a file says it needs are already enabled, importing nothing.

    A checkpoint is data: the ``plugins:`` list in its config says what it needs, never what to
    import. ``needed`` is that list as read; a module counts as enabled once it is imported (by
    the user's ``plugins=[...]``, an explicit argument, an installed entry point or an ``import``
    of their own). ``how`` says how to enable them: ``{modules}`` in it becomes ``a,b``,
    ``{spaced}`` ``a b`` and ``{quoted}`` ``'a', 'b'``.
    Raises :class:`PluginNotEnabledError` naming the missing modules.
    """
    _load_entry_points()
    if needed is None:
        return
    if not isinstance(needed, (list, tuple)) or not all(isinstance(m, str) for m in needed):
        raise PluginError(f"{source}: its 'plugins:' must be a list of module names; got "
                          f"{needed!r}")
    missing = [m for m in needed if m not in sys.modules]
    if missing:
        quoted = ", ".join(map(repr, missing))
        enable = how.format(modules=",".join(missing), spaced=" ".join(missing), quoted=quoted)
        raise PluginNotEnabledError(
            f"{source} needs plugin module{'s' if len(missing) > 1 else ''} {quoted}, not "
            f"enabled here (loading a file never imports code); {enable}", missing)


_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as exc:  # noqa: BLE001 - re-raised with the plugin's name
            raise PluginError(
                f"could not load plugin {entry_point.name!r} ({entry_point.value}) from the "
                f"{ENTRY_POINT_GROUP!r} entry-point group: {type(exc).__name__}: {exc}"
            ) from exc


class Registry:
    """Maps names to plugin objects of one kind (e.g. every recurrent cell)."""

    def __init__(self, kind: str, builtin_modules: Iterable[str] = ()):
        self.kind = kind
        self._builtin_modules = tuple(builtin_modules)
        self._builtins_loaded = False
        self._entries: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator that registers its target under ``name``; a duplicate name is an error.

        A class with an empty ``name`` attribute (a tokenizer, say) gets ``name`` set to the
        registered name, so the name is written once.
        """

        def decorator(obj: Any) -> Any:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and self._entries[name] is not obj:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is already registered by "
                f"{_describe(self._entries[name])}; pick another name for {_describe(obj)}"
            )
        self._entries[name] = obj
        if isinstance(obj, type) and getattr(obj, "name", None) == "":
            obj.name = name

    def get(self, name: str) -> Any:
        """The object registered as ``name``; an unknown name lists the registered ones."""
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; registered {self.kind}s: "
                f"{', '.join(self.names()) or '(none)'}. If it comes from a plugin, list its "
                f"module under 'plugins:' in the config or install the package that provides it."
            ) from None

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def _ensure_loaded(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for module_name in self._builtin_modules:
            import_plugin(module_name)
        _load_entry_points()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={sorted(self._entries)})"


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


CELLS = Registry("cell", builtin_modules=("capx.cells",))
UPDATE_RULES = Registry("update rule", builtin_modules=("capx.optim",))
TOKENIZERS = Registry("tokenizer", builtin_modules=("capx.tokenizers",))
DATASETS = Registry("dataset", builtin_modules=("capx.datasets", "capx.images.image_folder"))
DECODERS = Registry("decoder", builtin_modules=("capx.decoding",))
ENCODERS = Registry("encoder", builtin_modules=("capx.encoders",))
