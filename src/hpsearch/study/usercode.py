"""User code that must travel with results: a study module and what it imports from its folder.

A model spec defined in a study module (or in a helper beside it) is only a name in the
database; to rebuild that model elsewhere — in a fresh process, in another folder, after
the studies folder is gone — the checkpoint carries the code. We record the module that
defines the spec and every module it imports from the same folder, and reinstall them with
an import hook that serves those sources instead of files.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

Sources = dict[str, dict[str, Any]]  # module name → {"source": str, "package": bool}


def local_modules(module: ModuleType) -> Sources:
    """``module`` and the modules it reaches (imports, or classes and functions it uses)
    whose files live in its folder, with their sources: the user code a result depends on."""
    folder = Path(module.__file__ or ".").resolve().parent
    out: Sources = {}
    stack = [module]
    while stack:
        m = stack.pop()
        if m.__name__ in out or not getattr(m, "__file__", None):
            continue
        out[m.__name__] = {"source": Path(m.__file__).read_text(), "package": hasattr(m, "__path__")}  # type: ignore[arg-type]
        for value in list(vars(m).values()):
            dep = value if isinstance(value, ModuleType) else sys.modules.get(_module_of(value))
            if dep is None or dep.__name__ in out or dep.__name__.startswith("hpsearch."):
                continue
            file = getattr(dep, "__file__", None)
            if file and Path(file).resolve().is_relative_to(folder):
                stack.append(dep)
    return out


def _module_of(value: Any) -> str:
    try:
        name = getattr(value, "__module__", None)
    except Exception:  # noqa: BLE001 - user objects may raise on attribute access
        return ""
    return name if isinstance(name, str) else ""


def sources_sha256(main_source: bytes, sources: Sources, main: str) -> str:
    """The study module's fingerprint hash: its file's sha256 alone when it imports no local
    code (what hpsearch 0.1 stored, so old studies still match), else a hash over all of it."""
    helpers = {k: v["source"] for k, v in sources.items() if k != main}
    if not helpers:
        return hashlib.sha256(main_source).hexdigest()
    blob = json.dumps({"main": hashlib.sha256(main_source).hexdigest(), "helpers": helpers}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def code_of(cls: type) -> dict[str, Any] | None:
    """What a checkpoint stores to rebuild instances of ``cls`` (None for hpsearch's own)."""
    if cls.__module__.startswith("hpsearch."):
        return None
    module = sys.modules.get(cls.__module__)
    if module is None or not getattr(module, "__file__", None):
        return None
    return {"module": cls.__module__, "class": cls.__qualname__, "sources": local_modules(module)}


class _SourceFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        entry = self.sources.get(name)
        if entry is None:
            return None
        return importlib.util.spec_from_loader(name, self, is_package=bool(entry["package"]))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        code = compile(self.sources[module.__name__]["source"], f"<checkpoint: {module.__name__}>", "exec")
        exec(code, module.__dict__)  # noqa: S102 - the user's own module, stored when it trained


def install(code: dict[str, Any]) -> None:
    """Import the stored module (registering its specs), unless it is imported already."""
    name = code["module"]
    if name in sys.modules:
        return
    finder = _SourceFinder(code["sources"])
    sys.meta_path.insert(0, finder)
    try:
        importlib.import_module(name)
    finally:
        sys.meta_path.remove(finder)
