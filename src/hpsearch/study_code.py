"""Bringing back the user code a stored study needs to rebuild its models.

A trial's config names its model spec; a built-in spec is always there, a spec the study
module registered is not until that module is imported. Retrain imports it from where the
study recorded it (or from the studies folder) and refuses when its source differs from
what the search ran — retraining another model under the searched trial's name is the
silent error this guards against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpsearch import discover
from hpsearch.errors import StudyModuleError
from hpsearch.models import LEGACY_MODEL, is_builtin, registered
from hpsearch.study import StoredSettings


def ensure_specs(configs: list[dict[str, Any]], settings: StoredSettings, stored_fingerprint: dict[str, Any],
                 studies_dir: Path | None = None, allow_module_change: bool = False) -> None:
    """Import the study module when a config names a spec the user defined.

    Always from its file, even when a spec of that name is registered in this process
    already: what counts is that the code now is the code the search ran.
    """
    names = {c.get("model", {}).get("name", LEGACY_MODEL) for c in configs}
    missing = sorted(n for n in names if n not in registered() or not is_builtin(registered()[n]))
    if not missing:
        return
    path = module_file(settings, studies_dir)
    if path is None:
        raise StudyModuleError(
            f"model {missing[0]!r} is defined in study module {settings.module!r}, which is neither at "
            f"{settings.module_path or '(no path recorded)'} nor in {discover.studies_dir(studies_dir)}/; "
            "pass --studies-dir DIR (or the module's folder)")
    loaded = discover.load(str(path))
    searched = stored_fingerprint.get("source_sha256")
    if searched and loaded.source_sha256 != searched and not allow_module_change:
        raise StudyModuleError(
            f"{path} changed since the search (its models may differ from the ones trained); restore it, "
            "or pass --allow-module-change to retrain with it as it is now")
    still = sorted(n for n in missing if n not in registered())  # a stale class of this process may remain
    if still:
        raise StudyModuleError(f"{path} does not register model {still[0]!r} any more; restore the "
                               "@register_model line, or pass --studies-dir to the version that had it")


def module_file(settings: StoredSettings, studies_dir: Path | None) -> Path | None:
    """The study module where the search had it, else in ``--studies-dir``/the default folder."""
    candidates = [Path(settings.module_path)] if settings.module_path else []
    candidates.append(discover.studies_dir(studies_dir) / f"{settings.module}.py")
    return next((p for p in candidates if p.is_file()), None)

