"""Command-line wiring only: parse options, call a service function, print its result.

This is the one place where domain errors become exit codes: a :class:`HpsearchError`
prints one line (``error: …``) and exits with its code; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from typer import core as _typer_core
from typer.core import TyperGroup

from hpsearch.errors import BadOption, HpsearchError
from hpsearch.run import pruners
from hpsearch.study import samplers

# the option parser's package: newer Typer (0.29 here) vendors Click as typer._click; older Typer uses Click
click: Any = getattr(_typer_core, "_click", None) or __import__("click")


class _OneLineUsage(click.exceptions.UsageError):
    """A usage error shown as every hpsearch error is: one ``error:`` line (exit 2, as Click's)."""

    def show(self, file: Any = None) -> None:
        err.print(Text.assemble(ERROR, f" {self.message}"), highlight=False, soft_wrap=True)


def _one_line(e: Any) -> Any:
    """The option parser's error as one line naming the help to read, not Click's three lines
    with pydantic's "Value error," inside (Typer validates values with pydantic)."""
    if isinstance(e, _OneLineUsage) or type(e).__name__ == "NoArgsIsHelpError":
        return e  # already one line; or a bare `hpsearch`, which shows the help
    message = " ".join(e.format_message().replace("Value error, ", "").split()).rstrip(".")
    where = e.ctx.command_path if e.ctx is not None else "hpsearch"
    return _OneLineUsage(f"{message[:1].lower()}{message[1:]}; see `{where} --help`", e.ctx)


class _Group(TyperGroup):
    """Usage errors of the group and of every command in hpsearch's one-line form (:func:`_one_line`)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.UsageError as e:
            raise _one_line(e) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.UsageError as e:
            raise _one_line(e) from None


app = typer.Typer(
    cls=_Group,
    help="Hyperparameter search for PyTorch image models (classify, reconstruct, segment) on a shared Optuna study.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: wraps to any width; rich's panels cut option text at 80 columns
)
# markup off: messages carry user input (study names, paths, parameters), and "[/]" in a name must
# print as itself, not be parsed by rich (it crashed, or hid "[red]" of a study named "[red]x")
# NO_COLOR (no-color.org): rich drops colours for it but kept bold and other styles; no colour
# system at all writes plain text
_plain = {"color_system": None} if os.environ.get("NO_COLOR") else {}
out = Console(markup=False, **_plain)  # type: ignore[arg-type]
err = Console(stderr=True, markup=False, **_plain)  # type: ignore[arg-type]
ERROR = ("error:", "bold red")
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class At(str, Enum):
    best = "best"
    final = "final"


class Stat(str, Enum):
    mean = "mean"
    min = "min"
    max = "max"


class Order(str, Enum):
    score = "score"
    grid = "grid"


def _one_of(names: list[str], what: str) -> Callable[[str | None], str | None]:
    """A ``--option`` whose values come from a registry, so the CLI never lists them a second time."""
    def check(value: str | None) -> str | None:
        if value is not None and value not in names:
            raise typer.BadParameter(f"{value!r} is not a {what}; choose from {', '.join(names)}")
        return value
    return check


PRUNERS = pruners.registered()
SAMPLERS = [k for k in samplers.registered() if k != "grid"]  # a grid's cells are declared in the study module


class PlotlyJS(str, Enum):  # hpsearch.views.report.PLOTLYJS_MODES
    inline = "inline"
    cdn = "cdn"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text (progress, if any, goes to stderr).")]
StorageOpt = Annotated[str | None, typer.Option(
    "--storage", envvar="HPSEARCH_STORAGE", show_default="sqlite:///hpsearch.db",
    metavar="URL", help="Study database URL: sqlite:///FILE or postgresql+psycopg://USER:PASS@HOST:PORT/DB, or "
         "grpc://HOST:PORT (grpcs:// with TLS) for `hpsearch storage-proxy`.")]
DataRootOpt = Annotated[Path | None, typer.Option(
    "--data-root", envvar="HPSEARCH_DATA", show_default="~/.cache/hpsearch/data",
    metavar="DIR", help="Folder with the datasets (torchvision layout); downloads land here when online.")]
ArtifactsOpt = Annotated[Path | None, typer.Option(
    "--artifacts", envvar="HPSEARCH_ARTIFACTS",
    show_default="beside a SQLite file, named after it (hpsearch.db → hpsearch-artifacts/), "
    "else ./hpsearch-artifacts",
    metavar="DIR", help="Artifact folder (Optuna's FileSystemArtifactStore) that retrain uploads to and the dashboard serves; "
    "with Postgres, a folder every machine can reach.")]
DeviceOpt = Annotated[Device, typer.Option(help="Where to train: auto picks CUDA when available.")]


StudiesDirOpt = Annotated[Path | None, typer.Option(envvar="HPSEARCH_STUDIES", show_default="./studies",
                                                   metavar="DIR", help="Folder of study modules.")]


def guarded(fn: F) -> F:
    """Turn domain errors into one line and an exit code (tracebacks only with --debug)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HpsearchError as e:
            if _state["debug"]:
                if e.detail:
                    err.print(e.detail, highlight=False, soft_wrap=True, markup=False)
                raise
            hint = " (rerun with --debug for the worker's traceback)" if e.detail else ""
            err.print(Text.assemble(ERROR, f" {e}{hint}"), highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM where a command handles it (run)
            from hpsearch.run.interrupts import exit_code
            err.print("interrupted")
            raise typer.Exit(exit_code(e)) from None
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:  # `hpsearch … | head`: the reader left; say nothing more, as Click does
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(1) from None
        except Exception as e:  # noqa: BLE001 - the one boundary for unexpected failures
            if _state["debug"]:
                raise
            err.print(Text.assemble(ERROR, f" {type(e).__name__}: {e} (rerun with --debug for the traceback)"),
                      highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from hpsearch import __version__
        out.print(f"hpsearch {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", envvar="HPSEARCH_DEBUG",
                                        help="Show full tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    _state["debug"] = debug


def _complete_module(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of `run STUDY`: the study modules in --studies-dir (or ./studies) and the shipped ones."""
    from hpsearch.study.discover import available, shipped_dir, studies_dir

    folder = ctx.params.get("studies_dir")
    names = {*available(studies_dir(folder)), *available(shipped_dir())}
    return sorted(n for n in names if n.startswith(incomplete))


def _complete_study(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of a study name: the studies in --storage (or the default database); none
    if it cannot be opened (completion never prints an error into the user's command line)."""
    import optuna

    try:
        names = optuna.get_all_study_names(_storage(ctx.params.get("storage")))
    except Exception:  # noqa: BLE001 - a database that is not there completes to nothing
        return []
    return sorted(n for n in names if n.startswith(incomplete))


def _storage(url: str | None) -> str:
    from hpsearch.store.storage import default_url
    return url or default_url()


def _device(device: Device) -> Any:
    """The torch device for ``--device``, resolved once here (torch loads only for the commands that train)."""
    from hpsearch.train.loop import resolve_device

    try:
        return resolve_device(device.value)
    except ValueError as e:
        raise HpsearchError(str(e)) from None


def _data_root(root: Path | None) -> Path:
    from hpsearch.data import default_data_root
    return root if root is not None else default_data_root()


@app.command()
@guarded
def run(
    study: Annotated[str, typer.Argument(metavar="STUDY", autocompletion=_complete_module, help="Study module name in ./studies (else one shipped with hpsearch, e.g. digits), or a path to a .py file.")],
    workers: Annotated[str, typer.Option("--workers", "-w", metavar="N|auto", help="Worker processes pulling trials, or auto: one "
                                         "per core on a CPU; on CUDA as many per card as earlier trials' measured "
                                         "peak memory allows (one per card until measured).")] = "1",
    n_trials: Annotated[int | None, typer.Option(
        "--n-trials", "-n", metavar="N", help="Global budget: finished (complete + pruned) trials in the study, "
        "across all workers and machines. Default: the study's n_trials.")] = None,
    timeout: Annotated[float | None, typer.Option(metavar="SECONDS", help="Start no new trial after this many seconds (> 0).")] = None,
    deadline: Annotated[float | None, typer.Option(metavar="SECONDS", help=(
        "Stop the whole search after this many seconds, running trials included: each stops at the end of "
        "its current epoch, recorded as pruned there (its curve kept); one still inside an epoch a grace "
        "period later is stopped like Ctrl-C. Exits 0."))] = None,
    storage: StorageOpt = None,
    seed: Annotated[int | None, typer.Option(metavar="INT", help="Study seed (sampler and training seeds derive from it); "
                                             "fixed when the study is created. Default 0.")] = None,
    device: DeviceOpt = Device.auto,
    data_root: DataRootOpt = None,
    studies_dir: StudiesDirOpt = None,
    name: Annotated[str | None, typer.Option(metavar="NAME", help="Study name in the database (default: module name); letters, "
                                             "digits, '.', '_', '-', not starting with '.' or '-'.")] = None,
    pruner: Annotated[str, typer.Option(
        metavar=f"[{'|'.join(PRUNERS)}]", callback=_one_of(PRUNERS, "pruner"),
        help="Stop unpromising trials early: median (compare at equal epochs), median-time (at equal "
             "seconds: suits --timeout, slow models must earn their cost), hyperband, none.")] = "median",
    allow_module_change: Annotated[bool, typer.Option(
        help="Join a study even though its module changed since the study was created.")] = False,
    allow_data_change: Annotated[bool, typer.Option(
        help="Join a study even though its dataset's files changed since the study was created.")] = False,
    sampler: Annotated[str | None, typer.Option(
        metavar=f"[{'|'.join(SAMPLERS)}]", callback=_one_of(SAMPLERS, "sampler"),
        help="Sampler for a new study (default: the module's, else tpe); stored, so every worker and "
             "machine uses it. A grid is declared in the module: Study(sampler=samplers.grid({...})).")] = None,
    trials_per_worker: Annotated[int, typer.Option(
        "--trials-per-worker", metavar="K", help="Trials each worker trains at once (>= 1), each its own budget decision. "
        "Where fusion is on (CUDA, or HPSEARCH_FUSE=1) those whose model and batch size match train as one "
        "model, e.g. a grid's optimizer variants; the others take turns, an epoch each.")] = 1,
    cpu_slots: Annotated[int | None, typer.Option(
        "--cpu-slots", envvar="HPSEARCH_CPU_SLOTS", min=0,
        metavar="N", help="On a CPU, how many trials train at once however many workers run (default: the cores; "
             "0: no limit).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search: N worker processes pull trials from one shared study until the budget is met.

    Ctrl-C or SIGTERM marks running trials failed and exits 130 or 143; rerun to resume."""
    from hpsearch.run import supervisor
    from hpsearch.train.options import Speedups
    from hpsearch.views import terminal

    speedups = Speedups.from_env()  # a bad HPSEARCH_FUSE or HPSEARCH_CAPTURE is one line here, not a failed trial per worker
    if workers != "auto" and not workers.strip().isdigit():
        raise BadOption(f"--workers must be >= 1 or auto, got {workers!r}")
    result = supervisor.run(supervisor.RunRequest(
        study=study, storage=_storage(storage), data_root=_data_root(data_root), workers=workers if workers == "auto" else int(workers),
        n_trials=n_trials, timeout=timeout, deadline=deadline, seed=seed, device=device.value, studies_dir=studies_dir,
        name=name, pruner=pruner, allow_module_change=allow_module_change,
        allow_data_change=allow_data_change, sampler=sampler,
        trials_per_worker=trials_per_worker, speedups=speedups, cpu_slots=cpu_slots,
    ), err if as_json else out)
    if as_json:
        import dataclasses
        import json

        print(json.dumps(dataclasses.asdict(result), indent=2))
    else:
        terminal.run_summary(out, result)
    if result.interrupted:
        raise typer.Exit(result.exit_code)


@app.command()
@guarded
def best(
    study: Annotated[str | None, typer.Argument(metavar="STUDY", autocompletion=_complete_study, help="Study name (default: the only study in the storage).")] = None,
    retrain: Annotated[bool, typer.Option(help="Retrain the best params over several seeds and evaluate "
                                          "the test split once.")] = False,
    seeds: Annotated[int, typer.Option(metavar="K", help="Seeds to retrain with.")] = 5,
    top_k: Annotated[int, typer.Option("--top-k", metavar="K", help="Re-score the K best trials on validation over "
                                       "fresh seeds and retrain the best mean.")] = 1,
    force: Annotated[bool, typer.Option(help="Retrain and evaluate the test split again (counted).")] = False,
    epochs: Annotated[int | None, typer.Option("--epochs", metavar="N", help="With --retrain: train the final runs this many "
                                               "epochs (default: the search's); recorded.")] = None,
    trial: Annotated[int | None, typer.Option("--trial", metavar="N", help="With --retrain: retrain this trial instead of the "
                                              "best (any COMPLETE trial: a grid's row, a Pareto-front point).")] = None,
    where: Annotated[str | None, typer.Option("--where", metavar="PARAM=VALUE,...", help=(
        "Choose a row of `hpsearch compare` (e.g. --where opt=sgd,width=32): its configuration with the best "
        "validation mean, retrained with fresh seeds — not the luckiest single seed."))] = None,
    refit: Annotated[bool, typer.Option("--refit", help="With --retrain: train the final runs on train + "
                                        "validation (more data, no validation score); recorded as a refit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    storage: StorageOpt = None,
    device: DeviceOpt = Device.auto,
    data_root: DataRootOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR", help="Where retrained checkpoints go "
                                          "(OUT/STUDY/trialN-seedS.pt).")] = Path("runs"),
    artifacts: ArtifactsOpt = None,
    studies_dir: StudiesDirOpt = None,
    allow_module_change: Annotated[bool, typer.Option(
        help="Retrain a model defined in the study module even though the module changed since "
             "the search.")] = False,
    allow_data_change: Annotated[bool, typer.Option(
        help="Retrain even though the dataset's files changed since the search.")] = False,
) -> None:
    """Show the best trial (several objectives: the Pareto front); with --retrain, its seed-averaged
    score on the held-out test split."""
    from hpsearch.results.best import best as answer
    from hpsearch.results.best import parse_where
    from hpsearch.store.queries import pick_study
    from hpsearch.store.storage import open_storage
    from hpsearch.views import terminal

    url = _storage(storage)
    st = pick_study(open_storage(url, create=False), url, study, "best")
    if refit and not retrain:
        raise BadOption("--refit applies to --retrain: hpsearch best STUDY --retrain --refit")
    rows = parse_where(where) if where is not None else None
    if not retrain:
        terminal.best(out, answer(st, trial, where=rows), as_json=as_json)
        return
    from hpsearch.results.retrain import RetrainRequest  # torch, the trainer and the dashboard's writer: only here
    from hpsearch.train.options import Speedups
    from hpsearch.views.progress import RetrainView
    from hpsearch.views.publish import artifact_dir, artifact_store, publish_new

    folder = artifact_dir(url, artifacts)
    artifact_store(folder)  # a bad --artifacts fails here, before any training or test look
    request = RetrainRequest(  # Speedups.from_env: a bad HPSEARCH_FUSE or HPSEARCH_CAPTURE fails here too
        seeds=seeds, top_k=top_k, force=force, data_root=_data_root(data_root), device=_device(device),
        out_dir=out_dir, studies_dir=studies_dir, storage_url=url, allow_module_change=allow_module_change,
        allow_data_change=allow_data_change, trial=trial, epochs=epochs, refit=refit, speedups=Speedups.from_env())
    shown = err if as_json else out
    with RetrainView(shown) as view:  # the "once" policy is the service's (results.retrain.needs_look)
        done = answer(st, trial, request, view.message, view.tick, where=rows)
    uploaded = publish_new(st, done.record, folder)
    if uploaded is not None:
        shown.print(f"dashboard: study note written, {len(uploaded)} artifacts uploaded to {folder} "
                    "(hpsearch dashboard shows them)", highlight=False, soft_wrap=True)
    terminal.best(out, done, as_json=as_json)


@app.command()
@guarded
def studies(storage: StorageOpt = None, as_json: JsonOpt = False) -> None:
    """One line per study: name, trials by state, best value."""
    from hpsearch.store.queries import study_lines
    from hpsearch.store.storage import open_storage
    from hpsearch.views import terminal

    lines = study_lines(open_storage(_storage(storage), create=False))
    if as_json:
        import dataclasses
        import json

        print(json.dumps([dataclasses.asdict(line) for line in lines], indent=2))
        return
    terminal.studies(out, lines)


@app.command()
@guarded
def trials(
    study: Annotated[str | None, typer.Argument(metavar="STUDY", autocompletion=_complete_study, help="Study name (default: the only study in the "
                                                "storage).")] = None,
    sort: Annotated[str | None, typer.Option(metavar="COLUMN", help="Sort by a column: the metric (best first), a cost "
                                             "(seconds, params, epochs) or a parameter (ascending).")] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Reverse the --sort order.")] = False,
    top: Annotated[int | None, typer.Option("--top", metavar="N", help="Only the first N (by --sort, else the best N).")] = None,
    columns: Annotated[str | None, typer.Option(metavar="COLUMN,...", help="Comma-separated columns for the table or CSV "
                                                "(default: as many as fit the terminal).")] = None,
    state: Annotated[str | None, typer.Option(metavar="STATE,...", help="Only these states, e.g. complete,pruned.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    storage: StorageOpt = None,
) -> None:
    """Every trial of a study: state, the metric, epochs, seconds, size, parameters."""
    from hpsearch.store.queries import objective_names, pick_study
    from hpsearch.store.rows import trial_rows
    from hpsearch.store.storage import open_storage
    from hpsearch.views import terminal
    from hpsearch.views.listing import select

    url = _storage(storage)
    db = open_storage(url, create=False)
    st = pick_study(db, url, study, "trials")
    listing = select(trial_rows(st, db), objective_names(st), [d.name.lower() for d in st.directions],
                     states=state, sort=sort, reverse=reverse, top=top, columns=columns)
    if fmt == Format.table and columns is None:  # the columns that fit: the parameters that mattered most
        from hpsearch.views.importance import param_importances
        from hpsearch.views.listing import RANK_FROM, by_importance

        if listing.total >= RANK_FROM:  # (the ranking is computed only where it can be used)
            imp = param_importances(st)
            listing = by_importance(listing, imp.values, imp.completed)
    terminal.trials(out, listing, fmt.value)


@app.command()
@guarded
def compare(
    by: Annotated[str, typer.Option("--by", metavar="PARAM,...", help="Parameter(s) to group by, comma-separated (e.g. opt,hidden); "
                                    "the mean ± std is over everything else (seeds).")],
    study: Annotated[str | None, typer.Argument(metavar="STUDY", autocompletion=_complete_study, help="Study name (default: the only study in the "
                                                "storage).")] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", metavar="NAME,...", help=(
        "Columns to show, comma-separated: any curve the trials recorded (val_loss, val_top1, val_topk, "
        "train_loss, train_top1; val_psnr, val_ssim for images) and seconds, epochs, best_epoch, n_params, "
        "n_trainable, flops. Default: the study metric, epochs, seconds and parameters."))] = None,
    at: Annotated[At, typer.Option("--at", help="Read each trial's curves at its best epoch (by the study "
                                   "metric) or at its last.")] = At.best,
    stat: Annotated[Stat, typer.Option("--stat", help="Per row: mean ± std over its trials, or the min or max.")] = Stat.mean,
    order: Annotated[Order, typer.Option("--order", help="Rows by validation score (best first), or in the "
                                         "order the grid declares its values.")] = Order.score,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    test: Annotated[bool, typer.Option("--test", help="Also evaluate every row's trials once on the test split: "
                                       "each is retrained from its recorded seed; the look is counted.")] = False,
    storage: StorageOpt = None,
    device: DeviceOpt = Device.auto,
    data_root: DataRootOpt = None,
    studies_dir: StudiesDirOpt = None,
) -> None:
    """Compare groups of trials on validation: one row per value of --by, mean ± std over seeds; the
    footer names the command that retrains the best row."""
    import json

    from hpsearch.results.compare import compare as group
    from hpsearch.store.queries import pick_study, recorded, settings_of
    from hpsearch.store.records import looks_counted
    from hpsearch.store.storage import open_storage
    from hpsearch.views import terminal

    url = _storage(storage)
    st = pick_study(open_storage(url, create=False), url, study, "compare")
    settings = settings_of(st)
    asked = [m.strip() for m in metrics.split(",") if m.strip()] if metrics is not None else None
    result = group(st, [p.strip() for p in by.split(",") if p.strip()], settings.metric, metrics=asked,
                   at=at.value, stat=stat.value, order=order.value, sampler=settings.sampler)
    shown = result.to_dict()
    if test:
        from hpsearch.results.compare_test import groups_on_test_split
        from hpsearch.train.options import Speedups

        dev = _device(device)
        say = (lambda m: err.print(m, highlight=False)) if as_json else (lambda m: out.print(m, highlight=False))
        tested = groups_on_test_split(st, result, data_root=_data_root(data_root), device=dev, storage_url=url,
                                      studies_dir=studies_dir, speedups=Speedups.from_env(), say=say)
        for row, t in zip(shown["groups"], tested["groups"]):
            row["test"] = {k: v for k, v in t.items() if k.startswith("test_")}
        shown["test_look"] = tested["look"]
        shown["reproduced"] = f"{tested['reproduced']}/{tested['retrained']}"
    shown["test_looks"] = looks_counted(st)
    shown["retrained"] = recorded(st) is not None
    if as_json:
        print(json.dumps(shown, indent=2))
        return
    terminal.comparison(out, shown)


@app.command()
@guarded
def inspect(
    study: Annotated[str | None, typer.Argument(metavar="STUDY", autocompletion=_complete_study, help=(
        "Study name (default: the only study in the storage)."))] = None,
    trial: Annotated[int | None, typer.Option("--trial", metavar="N", help=(
        "Inspect this trial's model (any trial with a config, pruned ones too; default: the best)."))] = None,
    feature_maps: Annotated[bool, typer.Option("--feature-maps", help=(
        "Write every convolution's output for --images validation images as PNGs (channels tiled, one colour "
        "scale per layer)."))] = False,
    predictions: Annotated[int | None, typer.Option("--predictions", metavar="N", help=(
        "Write a grid of the first N validation images with true and predicted classes and top-3 "
        "probabilities."))] = None,
    attributions: Annotated[str | None, typer.Option("--attributions", metavar="METHOD,...", help=(
        "Write what made the model score a class for --images validation images (Captum): saliency, "
        "guided-backprop, integrated-gradients, grad-cam, or all."))] = None,
    target: Annotated[str | None, typer.Option("--target", metavar="CLASS", help=(
        "With --attributions: explain this class's score (default: each image's predicted class)."))] = None,
    neurons: Annotated[int | None, typer.Option("--neurons", metavar="N", help=(
        "Write guided backpropagation of the N neurons of the last convolution that respond most to each "
        "--images validation image."))] = None,
    images: Annotated[str, typer.Option("--images", metavar="N|I,J,...", help=(
        "With --feature-maps, --attributions or --neurons: the first N validation images, or these "
        "indices."))] = "1",
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", metavar="FILE", help=(
        "Use a retrained model's weights (runs/STUDY/trialN-seedS.pt); else the trial is trained again from "
        "its recorded seed (search trials keep no weights)."))] = None,
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR", help="Where the PNGs go.")] = Path("inspect"),
    as_json: JsonOpt = False,
    storage: StorageOpt = None,
    device: DeviceOpt = Device.auto,
    data_root: DataRootOpt = None,
    studies_dir: StudiesDirOpt = None,
    allow_module_change: Annotated[bool, typer.Option(
        help="Rebuild a model defined in the study module even though the module changed since the "
             "search.")] = False,
) -> None:
    """Look inside a trial's model: one row per layer with its output shape for the study's images,
    its parameters (trainable and frozen) and its forward FLOPs; with --feature-maps or
    --predictions, what the trained model does with validation images. Never reads the test split."""
    import json

    from hpsearch.results import inspect as service
    from hpsearch.store.queries import pick_study
    from hpsearch.store.storage import open_storage
    from hpsearch.views import terminal

    url = _storage(storage)
    st = pick_study(open_storage(url, create=False), url, study, "inspect")
    table = service.layer_table(st, trial, studies_dir, allow_module_change)
    shown = err if as_json else out
    written: list[Path] = []
    how = None
    methods = None
    if attributions is not None:
        methods = list(service.ATTRIBUTIONS) if attributions.strip() == "all" else \
            [m.strip() for m in attributions.split(",") if m.strip()]
        unknown = [m for m in methods if m not in service.ATTRIBUTIONS]
        if unknown or not methods:
            raise BadOption(f"--attributions: no method {unknown[0] if unknown else attributions!r}; choose from "
                            f"{', '.join(service.ATTRIBUTIONS)} or all")
    if neurons is not None and neurons < 1:
        raise BadOption(f"--neurons {neurons}: give a number of neurons, 1 or more")
    if feature_maps or predictions is not None or methods or neurons:
        from hpsearch.views import inside

        if predictions is not None and predictions < 1:
            raise BadOption(f"--predictions {predictions}: give a number of images, 1 or more")
        model = service.trained(st, trial, _data_root(data_root), _device(device), checkpoint=checkpoint,
                                studies_dir=studies_dir, say=lambda m: shown.print(m, highlight=False),
                                check=(lambda d: service.validation_rows(d, images))
                                if feature_maps or methods or neurons else None)
        how = model.how
        shown.print(how, highlight=False, soft_wrap=True)
        if feature_maps:
            maps = service.feature_maps(model, service.validation_rows(model.data, images))
            written += inside.feature_map_pngs(st.study_name, model.trial, maps, out_dir)
        if methods:
            found = service.attributions(model, service.validation_rows(model.data, images), methods, target)
            written += inside.attribution_pngs(st.study_name, model.trial, found, out_dir)
        if neurons:
            found_neurons = service.neurons(model, service.validation_rows(model.data, images), neurons)
            written += inside.neuron_pngs(st.study_name, model.trial, found_neurons, out_dir)
        if predictions is not None:
            grid = service.predictions(model, predictions)
            written.append(inside.predictions_png(st.study_name, model.trial, grid, out_dir / (
                f"{st.study_name}-trial{model.trial}-predictions.png")))
    if as_json:
        print(json.dumps({**table.to_dict(), "weights": how, "png": [str(p) for p in written]}, indent=2))
        return
    terminal.layer_table(out, table)
    if written:
        out.print(f"wrote {len(written)} PNG{'s' if len(written) != 1 else ''} to {out_dir}/", highlight=False)


@app.command()
@guarded
def data(
    study: Annotated[str | None, typer.Argument(metavar="STUDY", autocompletion=_complete_study, help=(
        "Study name (default: the only study in the storage)."))] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", metavar="DIR", help=(
        "Also write STUDY-samples.png (one training image per class) and STUDY-classes.png (counts per "
        "class) here."))] = None,
    as_json: JsonOpt = False,
    storage: StorageOpt = None,
    data_root: DataRootOpt = None,
) -> None:
    """The study's dataset as the search sees it: train and validation sizes and class counts, image
    size, normalisation; one sample image per class. Never reads the test split."""
    import json

    from hpsearch.results.overview import overview
    from hpsearch.store.queries import pick_study
    from hpsearch.store.storage import open_storage
    from hpsearch.views import overview as views

    url = _storage(storage)
    st = pick_study(open_storage(url, create=False), url, study, "data")
    seen = overview(st, _data_root(data_root))
    written = views.write_pngs(seen, out_dir) if out_dir is not None else []
    if as_json:
        print(json.dumps({**seen.to_dict(), "png": [str(p) for p in written]}, indent=2))
        return
    views.terminal(out, seen)
    if written:
        out.print("wrote " + ", ".join(str(p) for p in written), highlight=False, soft_wrap=True)


@app.command()
@guarded
def dashboard(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to bind; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT", help="Port to listen on.")] = 8080,
    artifacts: ArtifactsOpt = None,
    allowed_hosts: Annotated[str, typer.Option(
        metavar="HOST,...", help="Comma-separated host names the browser may use besides the bound address and "
             "localhost (e.g. the machine's name behind a tunnel); '*' allows any.")] = "",
    allow_writes: Annotated[bool, typer.Option(
        help="Let the dashboard delete studies and change trials (notes are always writable).")] = False,
) -> None:
    """Serve optuna-dashboard on the study database, with retrain notes and artifacts."""
    from hpsearch.views.dashboard import serve
    from hpsearch.views.publish import artifact_dir

    url = _storage(storage)
    try:
        serve(url, host, port, artifact_dir(url, artifacts), log_requests=_state["debug"],
              allowed_hosts=tuple(h for h in allowed_hosts.split(",") if h.strip()), allow_writes=allow_writes,
              ready=lambda where: out.print(f"optuna-dashboard at {where} (Ctrl-C stops)", highlight=False,
                                            soft_wrap=True))
    except KeyboardInterrupt:
        out.print("dashboard stopped")


@app.command("storage-proxy")
@guarded
def storage_proxy(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to bind; 0.0.0.0 serves other machines (with --tls-cert, "
                                      "or on a private network: without TLS the token travels in clear).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, metavar="PORT", help="Port to listen on (0: any free port, printed).")] = 13000,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", envvar="HPSEARCH_PROXY_TOKEN_FILE",
        metavar="FILE", help="File holding the shared secret every call must carry (else HPSEARCH_PROXY_TOKEN); workers and "
             "dashboards set the same.")] = None,
    no_token: Annotated[bool, typer.Option("--no-token", help="Serve without a shared secret: only where every "
                                           "process that can reach the port is trusted.")] = False,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", envvar="HPSEARCH_PROXY_TLS_CERT",
                                                  metavar="FILE", help="PEM certificate chain: serve TLS (clients use grpcs://HOST:PORT "
                                                       "and trust its CA through HPSEARCH_PROXY_TLS_CA).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", envvar="HPSEARCH_PROXY_TLS_KEY",
                                                 metavar="FILE", help="PEM private key of --tls-cert.")] = None,
) -> None:
    """Serve the study database over gRPC, so many workers share a few database connections.

    Workers join with --storage grpc://HOST:PORT; the budget stays exact (the proxy takes the
    budget lock for them). Ctrl-C or SIGTERM stops it."""
    from hpsearch.store.proxy import serve
    from hpsearch.store.proxy_client import proxy_token

    if (tls_cert is None) != (tls_key is None):
        raise HpsearchError("TLS needs both --tls-cert and --tls-key (PEM files)")
    serve(_storage(storage), host, port, tls=(tls_cert, tls_key) if tls_cert and tls_key else None,
          ready=lambda where: out.print(f"storage proxy at {where} (Ctrl-C stops)", highlight=False, soft_wrap=True),
          token=proxy_token(token_file), no_token=no_token)
    out.print("storage proxy stopped", highlight=False)


@app.command()
@guarded
def report(
    study: Annotated[str | None, typer.Argument(metavar="STUDY", autocompletion=_complete_study, help="Study name (default: the only study in the storage).")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", metavar="FILE", help="HTML file to write.",
                                                  show_default="STUDY-report.html")] = None,
    by: Annotated[str | None, typer.Option("--by", metavar="PARAM,...", help="Add a comparison section grouped by these parameters "
                                           "(comma-separated; a grid study has one by its dimensions).")] = None,
    plotlyjs: Annotated[PlotlyJS, typer.Option(help="inline: opens offline (~5 MB); cdn: small file, loads plotly.js "
                                               "from cdn.plot.ly.")] = PlotlyJS.inline,
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write one self-contained HTML report (plots, retrain result) that opens offline."""
    from hpsearch.store.paths import safe_name
    from hpsearch.store.queries import pick_study
    from hpsearch.store.storage import open_storage
    from hpsearch.views.report import write_report

    url = _storage(storage)
    st = pick_study(open_storage(url, create=False), url, study, "report")
    path = out_file or Path(f"{safe_name(st.study_name)}-report.html")
    sections = write_report(st, path, [p.strip() for p in by.split(",") if p.strip()] if by else None, plotlyjs.value)
    if as_json:
        import json

        print(json.dumps({"study": st.study_name, "path": str(path.resolve()), "bytes": path.stat().st_size,
                          "plots": sections}, indent=2))
        return
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {sections} plots); open it in a browser",
              highlight=False, soft_wrap=True)


def main() -> None:
    app(prog_name="hpsearch")


if __name__ == "__main__":
    main()
