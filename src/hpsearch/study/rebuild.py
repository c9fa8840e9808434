"""Bringing back the user code and data a stored study needs to rebuild its models.

A trial's config names its model spec; a built-in spec is always there, a spec the study
module registered is not until that module is imported. Retrain imports it from where the
study recorded it (or from the studies folder) and refuses when its source differs from
what the search ran — retraining another model under the searched trial's name is the
silent error this guards against.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hpsearch.errors import DatasetError, StudyModuleError
from hpsearch.models import LEGACY_MODEL, is_builtin, registered
from hpsearch.study import discover
from hpsearch.study.declaration import StoredSettings


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
    path = import_study_module(settings, stored_fingerprint, studies_dir, allow_module_change,
                               f"model {missing[0]!r} is defined in", "its models may differ from the ones trained")
    still = sorted(n for n in missing if n not in registered())  # a stale class of this process may remain
    if still:
        raise StudyModuleError(f"{path} does not register model {still[0]!r} any more; restore the "
                               "@register_model line, or pass --studies-dir to the version that had it")


def module_file(settings: StoredSettings, studies_dir: Path | None) -> Path | None:
    """The study module where the search had it, else in ``--studies-dir``/the default folder."""
    candidates = [Path(settings.module_path)] if settings.module_path else []
    candidates.append(discover.studies_dir(studies_dir) / f"{settings.module}.py")
    return next((p for p in candidates if p.is_file()), None)


def check_data_hash(stored: StoredSettings, current: str | None, allow: bool, what: str) -> str | None:
    """Refuse data whose files changed since the study was created (a different dataset under
    the same name makes every comparison with the search's trials meaningless); with ``allow``,
    return the warning to show instead. Studies made before hashes were kept are not checked."""
    if stored.data_hash is None or current is None or stored.data_hash == current:
        return None
    msg = (f"{stored.data.label}: the data's files changed since {what} was created "
           f"(content {stored.data_hash[:12]} then, {current[:12]} now)")
    if not allow:
        raise DatasetError(f"{msg}; restore them, pass --name NEW_NAME for a new study, "
                           "or pass --allow-data-change to go on with the data as it is now")
    return f"warning: {msg} (going on: --allow-data-change)"


def ensure_data_code(settings: StoredSettings, stored_fingerprint: dict[str, Any],
                     studies_dir: Path | None = None, allow_module_change: bool = False) -> None:
    """Import the study module when the dataset is a function of it (``datasets.tensors``)."""
    module = getattr(settings.data.source, "needs_module", None)
    if module is None or module in sys.modules:
        return
    import_study_module(settings, stored_fingerprint, studies_dir, allow_module_change,
                        "the study's data comes from a function in", "its data function may differ")


def import_study_module(settings: StoredSettings, stored_fingerprint: dict[str, Any], studies_dir: Path | None,
                        allow_module_change: bool, needed: str, risk: str) -> Path:
    """Import the study module from where the search had it, refusing a changed one."""
    path = module_file(settings, studies_dir)
    if path is None:
        raise StudyModuleError(
            f"{needed} study module {settings.module!r}, which is neither at "
            f"{settings.module_path or '(no path recorded)'} nor in {discover.studies_dir(studies_dir)}/; "
            "pass --studies-dir DIR (or the module's folder)")
    loaded = discover.load(str(path))
    searched = stored_fingerprint.get("source_sha256")
    if searched and loaded.source_sha256 != searched and not allow_module_change:
        raise StudyModuleError(f"{path} changed since the search ({risk}); restore it, "
                               "or pass --allow-module-change to use it as it is now")
    return path
