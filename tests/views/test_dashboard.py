"""`hpsearch dashboard` and what `best --retrain` publishes to it: a study note and artifacts.

The dashboard is a real `hpsearch dashboard` process; we read it through optuna-dashboard's
own HTTP API, on SQLite and on Postgres.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna_dashboard import get_note

from conftest import Finished, Work
from dashboard_process import Dashboard, api, get
from hpsearch.store.records import PUBLISHED, RETRAIN, study_get
from hpsearch.views.importance import param_importances

pytestmark = pytest.mark.slow


def test_retrain_publishes_note_and_artifacts_that_the_dashboard_serves(searched_any: tuple[Work, Path]) -> None:
    work, root = searched_any
    r = work.cli("best", "--retrain", "--seeds", "2", "--data-root", str(root), "--artifacts", "arts")
    assert "study note written, 3 artifacts uploaded" in r.output
    study = optuna.load_study(study_name="tiny_mnist", storage=work.url)
    rec, published = study_get(study, RETRAIN), study_get(study, PUBLISHED)
    assert published["round"] == 1 and len(list((work.path / "arts").iterdir())) == 3

    dash = Dashboard(work, "--artifacts", "arts")
    try:
        assert [s["study_name"] for s in dash.studies] == ["tiny_mnist"]
        sid = dash.studies[0]["study_id"]
        detail = api(dash.port, f"/api/studies/{sid}")
        assert len(detail["trials"]) == len(study.trials) == 3
        assert [t["number"] for t in detail["trials"]] == [0, 1, 2]
        note = detail["note"]["body"]
        # the study page lists short lines, not the settings / fingerprint / retrain JSON
        shown = {a["key"]: a["value"] for a in detail["user_attrs"]}
        assert set(shown) == {"retrain", "hpsearch:test_looks"}, shown
        assert shown["retrain"].startswith(f"trial {rec['trial']}: test top1 ") and "over 2 seeds (test look 1)" in shown["retrain"]
        assert all(len(a["value"]) < 200 for t in detail["trials"] for a in t["user_attrs"])  # nor do trial pages
        assert f"## Retrained result (hpsearch): trial {rec['trial']}" in note
        assert "Artifacts tab" not in note  # optuna-dashboard 0.21 has none: the card is on the study's main page
        assert "under **Study Artifacts** at the bottom of this study's main page" in note
        assert "Importance panel (PED-ANOVA) rested on 3 completed trials when this note was written: not reliable " \
               "below 50." in note
        retrained = next(t for t in detail["trials"] if t["number"] == rec["trial"])  # linked back to its retrain
        assert retrained["note"]["body"].startswith("## Retrained (hpsearch, round 1)")
        assert f"with 2 fresh seeds × {rec['epochs']} epochs" in retrained["note"]["body"]
        assert all(t["note"]["body"] == "" for t in detail["trials"] if t["number"] != rec["trial"])
        for run in rec["runs"]:  # one row per seed, with its test top-1 as recorded
            assert f"| {run['seed']} | {run['test_loss']:.4f} | {100 * run['test_top1']:.2f} % |" in note
        names = {a["filename"]: a for a in detail["artifacts"]}
        assert set(names) == {f"trial{rec['trial']}-seed{s}.pt" for s in rec["seeds"]} | {
            f"retrain-curves-trial{rec['trial']}-round1.png"}
        png = names[f"retrain-curves-trial{rec['trial']}-round1.png"]
        assert png["mimetype"] == "image/png"
        assert get(f"http://127.0.0.1:{dash.port}/artifacts/{sid}/{png['artifact_id']}").startswith(b"\x89PNG")
        ckpt = names[f"trial{rec['trial']}-seed{rec['seeds'][0]}.pt"]
        body = get(f"http://127.0.0.1:{dash.port}/artifacts/{sid}/{ckpt['artifact_id']}")
        assert body == Path(rec["runs"][0]["checkpoint"]).read_bytes()
    finally:
        dash.stop()

    # Showing the record again publishes nothing; --force is a new round with a new note.
    work.cli("best", "--retrain", "--data-root", str(root), "--artifacts", "arts")
    assert len(list((work.path / "arts").iterdir())) == 3
    work.cli("best", "--retrain", "--force", "--seeds", "2", "--data-root", str(root), "--artifacts", "arts")
    study = optuna.load_study(study_name="tiny_mnist", storage=work.url)
    assert study_get(study, PUBLISHED)["round"] == 2 and len(list((work.path / "arts").iterdir())) == 6
    note = get_note(study)
    assert all(str(s) in note for s in study_get(study, RETRAIN)["seeds"])


def test_the_report_ranks_parameters_as_the_dashboard_does(work: Work, tiny_search: Finished) -> None:
    """The report's importances are the numbers the running dashboard's importance panel shows,
    parameter for parameter, in the same order: a reader never sees two rankings."""
    work.adopt(tiny_search)
    ours = param_importances(optuna.load_study(study_name="tiny", storage=work.url))
    dash = Dashboard(work)
    try:
        got = api(dash.port, f"/api/studies/{dash.studies[0]['study_id']}/param_importances")["param_importances"][0]
    finally:
        dash.stop()
    assert ours.completed == 4 and len(ours.values) == 2
    assert [d["name"] for d in got] == list(ours.values)
    assert {d["name"]: d["importance"] for d in got} == pytest.approx(ours.values)


def test_dashboard_bad_inputs_are_one_line(work: Work, tmp_path: Path, searched: tuple[Work, Path]) -> None:
    missing = work.cli("dashboard", "--storage", f"sqlite:///{tmp_path / 'nope.db'}", expect=1)
    assert missing.output.startswith("error: no study database at") and len(missing.output.splitlines()) == 1
    dash = Dashboard(work)
    try:
        busy = work.cli("dashboard", "--port", str(dash.port), expect=1)
        assert f"cannot listen on 127.0.0.1:{dash.port}" in busy.output and len(busy.output.splitlines()) == 1
    finally:
        dash.stop()
    blocker = work.path / "a-file"
    blocker.write_text("")
    bad = work.cli("best", "--retrain", "--artifacts", str(blocker / "sub"), expect=1)
    assert bad.output.startswith("error: cannot use artifact folder") and len(bad.output.splitlines()) == 1
    assert study_get(optuna.load_study(study_name="tiny_mnist", storage=work.url), RETRAIN) is None


def _request(port: int, method: str, path: str, host: str | None = None,
             body: dict[str, Any] | None = None) -> tuple[int, str]:
    headers = {"Host": host} if host else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_dashboard_refuses_foreign_hosts_and_writes_unless_allowed(work: Work, tiny_search: Finished) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not delete studies."""
    work.adopt(tiny_search)
    dash = Dashboard(work)
    try:
        sid = dash.studies[0]["study_id"]
        status, text = _request(dash.port, "DELETE", f"/api/studies/{sid}", host="evil.example")
        assert status == 403 and "host 'evil.example' is not allowed" in text
        status, text = _request(dash.port, "DELETE", f"/api/studies/{sid}")
        assert status == 403 and "read-only" in text and "--allow-writes" in text
        assert _request(dash.port, "GET", "/api/studies", host=f"localhost:{dash.port}")[0] == 200
        # notes stay writable, on the routes the installed optuna-dashboard has (they were refused: issue 35)
        assert _request(dash.port, "PUT", f"/api/studies/{sid}/note", body={"version": 1, "body": "mine"})[0] == 204
        trial_id = api(dash.port, f"/api/studies/{sid}")["trials"][0]["trial_id"]
        assert _request(dash.port, "PUT", f"/api/studies/{sid}/{trial_id}/note",
                        body={"version": 1, "body": "trial note"})[0] == 204
        detail = api(dash.port, f"/api/studies/{sid}")  # read back as the dashboard's page reads it
        assert detail["note"]["body"] == "mine" and detail["trials"][0]["note"]["body"] == "trial note"
        assert get_note(optuna.load_study(study_name="tiny", storage=work.url)) == "mine"
        assert optuna.get_all_study_names(work.url) == ["tiny"]
    finally:
        dash.stop()
    dash = Dashboard(work, "--allow-writes", "--allowed-hosts", "box.lan")
    try:
        assert _request(dash.port, "GET", "/api/studies", host="box.lan")[0] == 200
        assert _request(dash.port, "DELETE", f"/api/studies/{sid}")[0] in (200, 204)
        assert optuna.get_all_study_names(work.url) == []
    finally:
        dash.stop()
