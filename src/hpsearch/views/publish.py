"""Put a retrain result where optuna-dashboard shows it: a study note, a trial note and study artifacts.

The retrain record (``hpsearch:retrain``) is the source of truth; this module only copies it
into the places the dashboard renders — the study's note (markdown, the study's Note page), a
short note on the retrained trial pointing to it (shown with the trial on the Trials pages: a
finished trial's user attributes cannot change, its note can), and the artifact store
(checkpoints and a learning-curve plot, listed under "Study Artifacts" at the bottom of the
study's main page in optuna-dashboard 0.21, which has no Artifacts tab). Which record round
was published is remembered in ``hpsearch:published``, so publishing is idempotent: an
interrupted publish is finished by the next ``hpsearch best STUDY --retrain`` without touching
the test split again.

The artifact store is a folder. By default it sits beside a SQLite file
(``hpsearch.db`` → ``hpsearch-artifacts/``); with Postgres it is ``./hpsearch-artifacts``
unless ``--artifacts``/``HPSEARCH_ARTIFACTS`` names a folder every machine can reach.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import TrialState
from optuna_dashboard import save_note

from hpsearch.errors import HpsearchError
from hpsearch.fmt import is_pct, mean_std, num
from hpsearch.store.compat import storage_of, trial_id
from hpsearch.store.records import PUBLISHED, RetrainRecord, study_get, study_put, task_of
from hpsearch.store.storage import sqlite_path
from hpsearch.views import tables
from hpsearch.views.importance import RELIABLE_TRIALS


def artifact_dir(url: str, explicit: Path | None = None) -> Path:
    """The artifact folder for a storage URL: the one given, else the default described above."""
    if explicit is not None:
        return explicit.expanduser()
    db = sqlite_path(url)
    if db is not None:
        return db.with_name(f"{db.stem}-artifacts")
    return Path("hpsearch-artifacts")


def artifact_store(folder: Path) -> FileSystemArtifactStore:
    """The store in ``folder`` (created if needed), or one clear error before anything is written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HpsearchError(f"cannot use artifact folder {folder}: {e.strerror or e}; "
                            "pass --artifacts DIR (or set HPSEARCH_ARTIFACTS)") from None
    return FileSystemArtifactStore(str(folder))


def needs_publishing(study: optuna.Study, record: RetrainRecord) -> bool:
    done = study_get(study, PUBLISHED) or {}
    return done.get("round") != record["rounds"]


def publish_new(study: optuna.Study, record: RetrainRecord | None, folder: Path) -> list[dict[str, str]] | None:
    """Publish a retrain round not yet published (a publish cut short is finished by the next
    ``best --retrain``); None when there is nothing new to publish."""
    if record is None or not needs_publishing(study, record):
        return None
    return publish(study, record, folder)


def publish(study: optuna.Study, record: RetrainRecord, folder: Path) -> list[dict[str, str]]:
    """Upload the checkpoints and a curve plot, write the note; return the uploaded artifacts."""
    store = artifact_store(folder)
    uploaded: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        plot = Path(tmp) / f"retrain-curves-trial{record['trial']}-round{record['rounds']}.png"
        curves_png(record, plot)
        files = [plot] + [Path(r["checkpoint"]) for r in record["runs"] if Path(r["checkpoint"]).is_file()]
        for path in files:
            mimetype = "image/png" if path.suffix == ".png" else "application/octet-stream"
            aid = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study, mimetype=mimetype)
            uploaded.append({"artifact_id": aid, "filename": path.name})
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    save_note(study, note_markdown(study.study_name, record, [u["filename"] for u in uploaded], completed))
    save_note(_trial(study, record["trial"]), trial_note_markdown(record))
    study_put(study, PUBLISHED, {"round": record["rounds"], "artifacts": uploaded,
                                         "folder": str(folder.resolve())})
    return uploaded


def note_markdown(study_name: str, rec: RetrainRecord, files: list[str], completed: int | None = None) -> str:
    """The study note: the three-way comparison, one row per seed (the task's metrics), the parameters;
    with ``completed`` (the study's completed trials now), how far the dashboard's importance panel
    can be trusted — it cannot say so itself."""
    task = task_of(rec)
    n = len(rec["runs"])
    lines = [
        f"## Retrained result (hpsearch): trial {rec['trial']}",
        "",
        f"Trial {rec['trial']}'s parameters retrained from scratch with {n} fresh seeds for "
        f"{rec['epochs']} epochs each on `{rec['device']}`, then evaluated on the held-out test split "
        f"**once** per model (test split looked at {rec['test_looks']} time(s) in this study)"
        + ("." if task.kind == "classify" else f"; task: {task.kind}.")
        + f" Trial {rec['trial']}'s own note (Trials pages) points back here.",
        "",
    ]
    lines += tables.to_markdown(tables.retrain_summary(rec))
    lines += ["", "### Per seed", ""]
    lines += tables.to_markdown(tables.retrain_seeds(rec))
    validation = tables.retrain_validation(rec)
    if validation is not None:
        lines += ["", f"### Validation per seed: at its best epoch (by {rec['metric']}) and at its last", ""]
        lines += tables.to_markdown(validation)
    if "model" in rec:  # hpsearch 0.1 kept neither the model nor its size (upgrade_retrain says why)
        spec = dict(rec["model"])
        name = spec.pop("name")
        args = ", ".join(f"{k}={v}" for k, v in spec.items())
        lines += ["", "### Model", "", f"`{name}({args})`, {rec['n_params']:,} parameters"]
    lines += ["", "### Parameters", "", "| parameter | value |", "|---|---|"]
    lines += [f"| {p} | {v:.4g} |" if isinstance(v, float) else f"| {p} | {v} |" for p, v in rec["params"].items()]
    if files:
        lines += ["", "Artifacts, under **Study Artifacts** at the bottom of this study's main page (each with a "
                  "download button): " + ", ".join(f"`{f}`" for f in files)]
    if completed is not None:
        lines += ["", f"The dashboard's Hyperparameter Importance panel (PED-ANOVA) rested on {completed} completed "
                  f"trial{'s' if completed != 1 else ''} when this note was written"
                  + ("." if completed >= RELIABLE_TRIALS else f": not reliable below {RELIABLE_TRIALS}.")]
    lines += ["", f"`hpsearch report {study_name}` writes all of this, with plots, to one HTML file "
              "(importances with the current count of completed trials)."]
    return "\n".join(lines) + "\n"


def trial_note_markdown(rec: RetrainRecord) -> str:
    """The retrained trial's note: that it was retrained, the test result in one line, where the rest is."""
    task = task_of(rec)
    base = rec["metric"].removeprefix("val_")
    pct = is_pct(base)
    n = len(rec["runs"])
    label = next((c.label for c in task.columns(rec) if c.key == base), base)
    refit = " on train + validation" if rec["refit"] else ""
    return (f"## Retrained (hpsearch, round {rec['rounds']})\n\n"
            f"This trial's parameters were retrained{refit} with {n} fresh seeds × {rec['epochs']} epochs and each "
            f"model evaluated once on the test split: test {label} **{mean_std(rec['test'].get(base), pct)}** "
            f"(search score here: {num(rec['search_value'], pct)}, one seed).\n\n"
            "The study's **Note** page has the per-seed table; the checkpoints are under **Study Artifacts** on "
            "the study's main page.\n")


def _trial(study: optuna.Study, number: int) -> optuna.Trial:
    """A handle on finished trial ``number`` for optuna-dashboard's ``save_note``, which takes an
    ``optuna.Trial``. Constructing one calls the sampler's ``before_trial``; a RandomSampler's does
    nothing, so the study's own sampler (a grid's, say) never acts on a finished trial. The note
    itself is a study system attribute: nothing of the finished trial changes."""
    view = optuna.load_study(study_name=study.study_name, storage=storage_of(study),
                             sampler=optuna.samplers.RandomSampler())
    return optuna.Trial(view, next(trial_id(t) for t in study.get_trials(deepcopy=False) if t.number == number))


def curves_png(rec: RetrainRecord, path: Path) -> None:
    """Learning curves of every retrain seed: losses and validation top-1 per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = task_of(rec)
    head = task.headline_column(rec)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for i, r in enumerate(rec["runs"]):
        c = r.get("curves") or {}
        color = f"C{i % 10}"
        epochs = range(1, len(c.get("train_loss", [])) + 1)
        ax_loss.plot(epochs, c.get("train_loss", []), color=color, label=f"seed {r['seed']} train")
        nan = float("nan")  # a refit has no validation set: its validation curves are None, drawn as gaps
        ax_loss.plot(epochs, [nan if v is None else v for v in c.get("val_loss", [])], color=color, linestyle="--",
                     label=f"seed {r['seed']} val")
        scale = 100 if head.pct else 1
        ax_acc.plot(epochs, [nan if v is None else scale * v for v in c.get(f"val_{head.key}", [])], color=color,
                    label=f"seed {r['seed']}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (solid: train, dashed: validation)")
    ax_acc.set(xlabel="epoch", ylabel=f"validation {head.label}{' (%)' if head.pct else ''}",
               title=f"validation {head.label}")
    ax_acc.legend(fontsize="small")
    fig.suptitle(f"trial {rec['trial']} retrained over {len(rec['runs'])} seeds")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
