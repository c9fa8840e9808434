"""Every piece of Optuna's private API hpsearch relies on, in one place.

Why each is needed rather than a public equivalent:

- ``study_id`` / ``trial_id``: the storage API (public) is keyed by ids that only the private
  ``_study_id`` / ``_trial_id`` attributes give; heartbeats and the fast listing need them.
- ``storage_of`` / ``backend_of``: a study's storage, and the RDB storage under Optuna's trial
  cache, for the one-query reads in :mod:`hpsearch.store.rows` and :mod:`hpsearch.run.pruners`.
- ``rdb_models``: Optuna's SQLAlchemy table definitions, so those queries follow Optuna's own
  schema instead of a copy of it.
- ``set_trial_system_attr``: ``Trial.set_system_attr`` is deprecated; pruners keep bookkeeping
  in system attributes the way Optuna's own pruners do, through the storage.
- ``grpc_servicer``: ``run_grpc_proxy_server`` blocks and owns its server; ``hpsearch
  storage-proxy`` shares a port with its budget service, so it registers the servicer itself.

``tests/store/test_optuna_compat.py`` exercises each function against the oldest supported Optuna
(:data:`OLDEST`, installed beside the suite) and the installed one; pyproject pins the range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

OLDEST = "4.2.1"  # the grpc storage proxy appeared in 4.2; pyproject: optuna>=4.2,<6


def study_id(study: optuna.Study) -> int:
    return int(study._study_id)


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    return int(trial._trial_id)


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    return study._storage


def backend_of(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """The storage under Optuna's in-process trial cache (an RDBStorage is wrapped in one)."""
    return getattr(storage, "_backend", storage)


def rdb_models() -> Any:
    """Optuna's RDB schema module (``TrialModel``, ``TrialValueModel``, …), versioned with the storage."""
    from optuna.storages._rdb import models

    return models


def set_trial_system_attr(study: optuna.Study, trial: optuna.trial.FrozenTrial, key: str, value: Any) -> None:
    storage_of(study).set_trial_system_attr(trial_id(trial), key, value)


def grpc_servicer(storage: optuna.storages.BaseStorage) -> tuple[Any, Callable[[Any, Any], None]]:
    """Optuna's storage servicer for ``storage`` and the function that adds it to a grpc server."""
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    return OptunaStorageProxyService(storage), api_pb2_grpc.add_StorageServiceServicer_to_server



def grpc_client_with(client: optuna.storages.GrpcStorageProxy, channel: Any) -> None:
    """Point Optuna's gRPC storage client at ``channel`` (one that adds the proxy's shared secret),
    rebuilding its stub and trial cache as its private ``_setup`` builds them on the plain channel."""
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.client import GrpcClientCache

    client._channel = channel
    client._stub = api_pb2_grpc.StorageServiceStub(channel)
    client._cache = GrpcClientCache(client._stub)
