"""Find and import a study module: a name in the studies folder, or a path to a ``.py`` file.

Import problems become one line that points at the user's file (``file:line: message``),
never a traceback through importlib.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hpsearch.errors import StudyModuleError
from hpsearch.study.declaration import Study
from hpsearch.study.usercode import local_modules, sources_sha256

T = TypeVar("T")


@dataclass(frozen=True)
class LoadedStudy:
    name: str  # the module name: the study's default name in the database
    path: Path
    study: Study
    source_sha256: str  # of the module and the helpers it imports from its folder
    sources: tuple[str, ...] = ()  # names of those helper modules


def studies_dir(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    return Path(os.environ.get("HPSEARCH_STUDIES") or "studies")


def available(folder: Path | None) -> list[str]:
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))


def shipped_dir() -> Path | None:
    """The folder of the study modules shipped with hpsearch (the package ``hpsearch.shipped``,
    the repository's ``studies/``), or None where the installation has none."""
    try:
        spec = importlib.util.find_spec("hpsearch.shipped")
    except ModuleNotFoundError:
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def resolve(ref: str, folder: Path | None = None) -> Path:
    """STUDY → file path. A ref with a slash or ending in ``.py`` is a path; else a module name in
    the studies folder, or — unless a folder was named (--studies-dir, HPSEARCH_STUDIES) — one of
    the studies shipped with hpsearch, so `hpsearch run digits` works from any folder."""
    if ref.endswith(".py") or os.sep in ref or "/" in ref:
        path = Path(ref)
        if not path.is_file():
            raise StudyModuleError(f"study file {ref} does not exist")
        return path
    named = folder is not None or bool(os.environ.get("HPSEARCH_STUDIES"))
    folder = studies_dir(folder)
    path = folder / f"{ref}.py"
    shipped = None if named else shipped_dir()
    if not path.is_file() and shipped is not None and (shipped / f"{ref}.py").is_file():
        return shipped / f"{ref}.py"
    if not path.is_file():
        names = available(folder)
        listing = f"available in {folder}/: {', '.join(names)}" if names else \
            f"{folder}/ has no study modules (pass --studies-dir DIR or set HPSEARCH_STUDIES)"
        ships = available(shipped)
        if ships:
            listing += f"; shipped with hpsearch: {', '.join(ships)}"
        raise StudyModuleError(f"unknown study {ref!r}; {listing}")
    return path


def load(ref: str, folder: Path | None = None) -> LoadedStudy:
    path = resolve(ref, folder).resolve()
    source = path.read_bytes()
    module_name = f"hpsearch_study_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StudyModuleError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    _put_first_on_path(path.parent)
    try:
        spec.loader.exec_module(module)
    except SystemExit as err:  # a script's sys.exit(0) at import made `run` exit 0 having run nothing
        sys.modules.pop(module_name, None)
        raise StudyModuleError(f"{path}: called sys.exit({err.code!r}) while being imported; a study module only "
                               "declares `study = hpsearch.Study(...)` (put script code under "
                               "`if __name__ == \"__main__\":`)") from None
    except SyntaxError as err:
        sys.modules.pop(module_name, None)
        raise StudyModuleError(f"{err.filename or path}:{err.lineno}: SyntaxError: {err.msg}") from err
    except Exception as err:  # noqa: BLE001 - any error in user code is reported the same way
        sys.modules.pop(module_name, None)
        raise StudyModuleError(f"{_location(err, path)}: {type(err).__name__}: {err}") from err
    study = getattr(module, "study", None)
    if not isinstance(study, Study):
        what = "no `study`" if study is None else f"`study` is a {type(study).__name__}"
        raise StudyModuleError(
            f"{path}: {what}; a study module must declare `study = hpsearch.Study(dataset=..., space=...)`"
        )
    local = local_modules(module)
    helpers = tuple(sorted(n for n in local if n != module_name))
    return LoadedStudy(path.stem, path, study, sources_sha256(source, local, module_name), helpers)


def _put_first_on_path(folder: Path) -> None:
    """Let the module import helpers beside it, as ``python module.py`` would (its folder
    first on ``sys.path``), and forget same-named helpers imported from another folder."""
    here = str(folder)
    if here in sys.path:
        sys.path.remove(here)
    sys.path.insert(0, here)
    for file in folder.glob("*.py"):
        cached = sys.modules.get(file.stem)
        where = getattr(cached, "__file__", None)
        if where and Path(where).resolve() != file.resolve():
            del sys.modules[file.stem]


def probe(loaded: LoadedStudy, fn: Callable[[Study, str], T]) -> T:
    """Run ``fn(study, source_sha256)``, which calls the module's space function; an error in
    that user code becomes ``file:line: the search space raised …`` instead of a traceback."""
    try:
        return fn(loaded.study, loaded.source_sha256)
    except Exception as err:  # noqa: BLE001 - any error in user code is reported the same way
        raise StudyModuleError(f"{_location(err, loaded.path)}: the search space raised "
                               f"{type(err).__name__}: {err}") from err


def _location(err: BaseException, path: Path) -> str:
    """``file:line`` of the deepest traceback frame inside the study file (else the file)."""
    line = None
    for frame in traceback.extract_tb(err.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)
