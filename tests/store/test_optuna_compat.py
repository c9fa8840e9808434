"""hpsearch's uses of Optuna's private API (:mod:`hpsearch.store.compat`), checked against a real
SQLite storage under the installed Optuna and, in a subprocess, under the oldest supported one."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy import select

from hpsearch.store import compat
from hpsearch.store.rows import row_of, trial_rows

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'compat.db'}"
    study = optuna.create_study(study_name="compat", storage=url, direction="maximize")

    def objective(t: optuna.Trial) -> float:
        t.report(0.5, 1)
        t.set_user_attr("epochs", 1)
        if t.suggest_categorical("prune", [True, False]) and t.number % 2:
            raise optuna.TrialPruned()
        return t.suggest_float("lr", 1e-4, 1e-1, log=True)

    study.optimize(objective, n_trials=6)
    return optuna.load_study(study_name="compat", storage=url)  # as workers open it: through Optuna's cache


def test_installed_optuna_is_in_the_supported_range() -> None:
    version = tuple(int(p) for p in optuna.__version__.split(".")[:2])
    assert tuple(int(p) for p in compat.OLDEST.split(".")[:2]) <= version < (6, 0)
    if os.environ.get("HPSEARCH_EXPECT_OPTUNA"):  # the subprocess below: the old version really loaded
        assert optuna.__version__ == os.environ["HPSEARCH_EXPECT_OPTUNA"]


def test_ids_storage_and_backend(study: optuna.Study) -> None:
    storage = compat.storage_of(study)
    backend = compat.backend_of(storage)
    assert isinstance(backend, RDBStorage)
    assert compat.study_id(study) == backend.get_study_id_from_name("compat")
    for t in study.get_trials(deepcopy=False):
        assert compat.trial_id(t) == backend.get_trial_id_from_study_id_trial_number(compat.study_id(study), t.number)
    trial = study.ask()
    assert compat.trial_id(trial) == backend.get_trial_id_from_study_id_trial_number(compat.study_id(study),
                                                                                    trial.number)
    study.tell(trial, state=TrialState.FAIL)


def test_rdb_models_read_the_same_rows_as_the_public_api(study: optuna.Study) -> None:
    m = compat.rdb_models()
    backend = compat.backend_of(compat.storage_of(study))
    T = m.TrialModel.__table__
    with backend.engine.connect() as conn:
        numbers = list(conn.execute(select(T.c.number).where(T.c.study_id == compat.study_id(study))
                                    .order_by(T.c.number)).scalars())
    assert numbers == list(range(6))
    for attr in ("TrialValueModel", "TrialParamModel", "TrialUserAttributeModel", "TrialIntermediateValueModel"):
        assert hasattr(m, attr)
    fast = trial_rows(study, backend)
    assert fast == [row_of(t) for t in study.get_trials(deepcopy=False)]
    assert {r["state"] for r in fast} == {"COMPLETE", "PRUNED"} or {r["state"] for r in fast} == {"COMPLETE"}


def test_trial_system_attr_is_stored(study: optuna.Study) -> None:
    running = study.ask()  # a pruner writes while the trial runs
    frozen = study.get_trials(deepcopy=False)[-1]
    compat.set_trial_system_attr(study, frozen, "hpsearch:test", [[1, 2.5]])
    again = optuna.load_study(study_name="compat", storage=compat.backend_of(compat.storage_of(study)))
    assert again.trials[running.number].system_attrs["hpsearch:test"] == [[1, 2.5]]


def test_grpc_servicer_registers_on_a_server(study: optuna.Study) -> None:
    grpc = pytest.importorskip("grpc")
    from concurrent.futures import ThreadPoolExecutor

    servicer, add = compat.grpc_servicer(compat.backend_of(compat.storage_of(study)))
    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        proxied = optuna.load_study(study_name="compat",
                                    storage=optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port))
        assert [t.number for t in proxied.trials] == list(range(6))
    finally:
        server.stop(0)


def test_the_oldest_supported_optuna(tmp_path: Path) -> None:
    """This file again, in a subprocess where Optuna OLDEST shadows the installed one."""
    if os.environ.get("HPSEARCH_EXPECT_OPTUNA"):
        pytest.skip("already the subprocess")
    target = tmp_path / "optuna-old"
    got = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                          f"optuna=={compat.OLDEST}"], capture_output=True, text=True, timeout=300)
    if got.returncode != 0:
        pytest.skip(f"could not install optuna=={compat.OLDEST} (offline?): {got.stderr.strip()[-200:]}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]),
           "HPSEARCH_EXPECT_OPTUNA": compat.OLDEST}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                       capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).parents[2])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "5 passed" in r.stdout, r.stdout[-1000:]
