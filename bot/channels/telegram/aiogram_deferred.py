"""aiogram's Telegram types and methods built when first used, not when aiogram is imported.

Importing aiogram 3.31 builds the pydantic validators of all its ~600 types and methods
(its types/__init__.py calls model_rebuild on every type; its methods build as their classes
are made): 4.4 s of CPU on this project's 2-core machines, paid by every `sada run` process
and every process that starts one, while a survey uses about fifteen of them. Upstream has
no fix (aiogram issues #1876 and #1891). Deferred, the import costs 0.8 s; the aiogram shell
then builds what a survey uses (`build`, at its import: about 0.4 s more).

While aiogram's package runs its import, and only then, pydantic's two build points are
replaced:
- `model_rebuild(_types_namespace=...)` on a type whose build is deferred (aiogram's
  TelegramObject sets defer_build) builds nothing: it puts the names its annotations use
  into the type's module, where pydantic's own deferred build and the build of any model
  that contains the type resolve them;
- a method class, built as its class is made, gets pydantic's placeholders instead (as
  defer_build gives), which build the validator the first time it is used.
Afterwards pydantic is as it was. These are pydantic internals (pinned in requirements.lock):
a pydantic without them gets aiogram's own import, and tests/telegram/test_aiogram_deferred.py
fails, as it does if the models a survey uses differ from those aiogram's own import builds.

`install()` (bot/channels/telegram/__init__.py) puts a finder in front of the import system
for the first import of aiogram; a process that imported aiogram before gets it as it is.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importlib.abc alone is 30 ms of every process's start
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from pydantic import BaseModel

_PACKAGE = "aiogram"
_NAME = re.compile(r"[A-Za-z_]\w*")


@contextmanager
def builds_deferred() -> Iterator[None]:
    """Within: aiogram's models are made without building their validators."""
    from pydantic import BaseModel
    from pydantic._internal import _mock_val_ser, _model_construction

    saved = vars(BaseModel)["model_rebuild"]  # the classmethod itself
    rebuild = saved.__func__
    complete = getattr(_model_construction, "complete_model_class", None)
    if complete is None or not hasattr(_mock_val_ser, "set_model_mocks"):
        yield  # another pydantic: aiogram's own import, slower but whole
        return

    def model_rebuild(
        cls: type[BaseModel], *, force: bool = False, raise_errors: bool = True,
        _parent_namespace_depth: int = 2, _types_namespace: Mapping[str, Any] | None = None,
    ) -> bool | None:
        if (force or cls.__pydantic_complete__ or _types_namespace is None
                or not cls.model_config.get("defer_build")):
            return rebuild(
                cls, force=force, raise_errors=raise_errors,
                _parent_namespace_depth=_parent_namespace_depth + 1,
                _types_namespace=_types_namespace)
        # the annotations of its own fields and of those it inherits, which pydantic
        # resolves in the type's module too
        module = vars(sys.modules[cls.__module__])
        for base in cls.__mro__:
            for annotation in vars(base).get("__annotations__", {}).values():
                for name in _NAME.findall(annotation if isinstance(annotation, str) else ""):
                    if name not in module and name in _types_namespace:
                        module[name] = _types_namespace[name]
        return None

    def complete_model_class(cls: type[BaseModel], *args: Any, **kwargs: Any) -> bool:
        if cls.__module__.startswith(_PACKAGE + "."):
            _mock_val_ser.set_model_mocks(cls)
            return False
        return complete(cls, *args, **kwargs)

    setattr(BaseModel, "model_rebuild", classmethod(model_rebuild))  # noqa: B010
    _model_construction.complete_model_class = complete_model_class
    try:
        yield
    finally:
        setattr(BaseModel, "model_rebuild", saved)  # noqa: B010
        _model_construction.complete_model_class = complete


class _Loader:
    """aiogram's own loader, its package run within builds_deferred()."""

    def __init__(self, loader: Loader) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with builds_deferred():
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # resource readers and the like
        return getattr(self._loader, name)


class _Finder:
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if fullname != _PACKAGE:
            return None
        uninstall()  # once: later imports (and the lookup below) go the usual way
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)  # type: ignore[assignment]
        return spec


_FINDER = _Finder()


def install() -> None:
    if _PACKAGE not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


def build(*models: type[BaseModel]) -> None:
    """Build `models` now, where their first use would have (a process is ready with what it
    uses built, and no reply waits on a build)."""
    for model in models:
        if not model.__pydantic_complete__:
            model.model_rebuild()
