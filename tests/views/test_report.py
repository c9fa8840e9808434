"""`hpsearch report`: a self-contained HTML file that renders offline in a real browser."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import browser
import numpy as np
import optuna
import plotly.offline
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import create_trial

from conftest import Finished, Work
from hpsearch import load_checkpoint
from hpsearch.data import DataSpec, load_test_data
from hpsearch.store.records import RETRAIN, study_get, study_put
from hpsearch.tasks._classify import evaluate
from hpsearch.views import figures
from hpsearch.views.importance import RELIABLE_TRIALS

pytestmark = pytest.mark.skipif(browser.chromium() is None,
                                reason="Debian's chromium is not installed (apt-get install chromium)")

SEARCH_PLOTS = 7    # history, learning curves, size vs score, parallel coordinates, importances, slices, worker timeline
RETRAIN_PLOTS = 4   # retrain curves, confusion matrix, test images, first-layer filters


def _rendered(path: Path, tmp: Path) -> browser.Page:
    page = browser.load(path.resolve().as_uri(), tmp / "profile")
    assert page.console == [], page.console
    return page


def drawn(page: browser.Page) -> int:
    """Plot divs that plotly.js actually turned into a graph (it adds the js-plotly-plot class)."""
    return len(re.findall(r'<div id="plot-\d+" class="[^"]*\bjs-plotly-plot\b', page.dom))


def test_the_browser_check_catches_script_errors_and_blank_pages(tmp_path: Path) -> None:
    """The instrument itself: a broken page must fail the checks the report passes."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>notDefined();</script><p>text only</p></body></html>")
    page = browser.load(bad.as_uri(), tmp_path / "profile")
    assert any("notDefined" in line for line in page.console)
    shot = browser.screenshot(bad.as_uri(), tmp_path / "bad.png", tmp_path / "profile", size=(800, 600))
    assert browser.colored_fraction(shot) < 0.001


@pytest.mark.slow
def test_report_renders_before_and_after_retrain(work: Work, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 tiny_search: Finished, tiny_retrained: Finished) -> None:
    """The session's `tiny` search (4 trials, 2 workers), then the same study once retrained."""
    work.adopt(tiny_search)
    before = work.path / "before.html"
    r = work.cli("report", "tiny", "--out", str(before))
    assert f"{SEARCH_PLOTS} plots" in r.output
    html = before.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)  # nothing to fetch: works offline
    assert "Not retrained yet: run <code>hpsearch best tiny --retrain</code>" in html and "Not shown" not in html
    assert "Layers of the best trial" in html and ">Conv2d</td>" in html  # as `hpsearch inspect` shows them
    prose = re.sub(r"<script.*?</script>", "", html.split("<body", 1)[1], flags=re.DOTALL)
    assert "`" not in prose, "a caption shows a literal backtick"
    page = _rendered(before, tmp_path)
    assert drawn(page) == SEARCH_PLOTS

    work.adopt(tiny_retrained)  # the same search after `best --retrain --seeds 2`

    def no_data(*_: object) -> None:
        raise AssertionError("the report must not load a dataset")
    monkeypatch.setattr("hpsearch.data._resident.ensure_files", no_data)
    work.cli("report")  # the only study; default file name
    after = work.path / "tiny-report.html"
    page = _rendered(after, tmp_path)
    assert drawn(page) == SEARCH_PLOTS + RETRAIN_PLOTS
    assert "Not retrained yet" not in page.dom and "re-scored validation" in page.dom
    assert "Misclassified test images" in page.dom and "Test confusion matrix" in page.dom
    shot = browser.screenshot(after.resolve().as_uri(), tmp_path / "report.png", tmp_path / "profile")
    assert browser.colored_fraction(shot) > 0.01, "the screenshot shows no plot"
    assert not list(work.path.glob("*.part"))


def test_report_errors_are_one_line(work: Work) -> None:
    r = work.cli("report", "nope", expect=1)
    assert r.output.startswith("error: no study database at") and len(r.output.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize(("finished", "study", "sections", "column"), [
    ("cae_retrained", "tiny_cae", ("Test reconstructions", "Per-image test PSNR"), "test PSNR dB"),
    ("unet_retrained", "tiny_unet", ("Test masks", "Per-image test F1 (Dice)"), "test F1 (Dice)"),
])
def test_task_reports_render_their_own_sections(work: Work, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                request: pytest.FixtureRequest, finished: str, study: str,
                                                sections: tuple[str, str], column: str) -> None:
    """A reconstruct and a segment study, retrained: their sections instead of the classifier's,
    drawn by plotly in Chromium, from the record alone (no dataset is loaded)."""
    work.adopt(request.getfixturevalue(finished))

    def no_data(*_: object) -> None:
        raise AssertionError("the report must not load a dataset")
    monkeypatch.setattr("hpsearch.data._resident.ensure_files", no_data)
    out = work.path / f"{study}.html"
    r = work.cli("report", study, "--out", str(out))
    plots = int(re.search(r"(\d+) plots", r.output).group(1))
    page = _rendered(out, tmp_path)
    assert drawn(page) == plots and plots >= 5  # history, curves, … plus the retrain plots
    for section in sections:
        assert section in page.dom
    assert column in page.dom and "Test confusion matrix" not in page.dom and "top-1" not in page.dom
    assert "Not shown: this retrain record" not in page.dom
    shot = browser.screenshot(out.resolve().as_uri(), tmp_path / f"{study}.png", tmp_path / "profile")
    assert browser.colored_fraction(shot) > 0.01, "the screenshot shows no plot"


@pytest.mark.slow
def test_plotlyjs_is_written_once_and_cdn_links_it_for_a_small_file(work: Work, tiny_search: Finished) -> None:
    """Offline by default: plotly.js is most of the file and must be in it exactly once; with
    --plotlyjs cdn the file links the matching version and is a small fraction of the size."""
    work.adopt(tiny_search)
    inline, cdn = work.path / "inline.html", work.path / "cdn.html"
    work.cli("report", "tiny", "--out", str(inline))
    work.cli("report", "tiny", "--out", str(cdn), "--plotlyjs", "cdn")
    js = plotly.offline.get_plotlyjs()
    head, middle = js[:300], js[len(js) // 2:len(js) // 2 + 300]  # banner and a piece of the library's body
    text = inline.read_text()
    assert text.count(head) == 1 and text.count(middle) == 1
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)
    small = cdn.read_text()
    url = f"https://cdn.plot.ly/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"
    assert re.findall(r'<script[^>]+src="([^"]+)"', small) == [url]
    assert head not in small and middle not in small
    assert cdn.stat().st_size < 1_000_000 and inline.stat().st_size > 4_000_000
    assert inline.stat().st_size - cdn.stat().st_size == pytest.approx(len(js.encode()), rel=0.01)


def _study(n: int = 6) -> optuna.Study:
    """A real in-memory Optuna study with six parameters of every kind the slice grid draws."""
    dists = {"lr": FloatDistribution(1e-5, 1e-1, log=True), "weight_decay": FloatDistribution(1e-7, 1e-2, log=True),
             "units": IntDistribution(8, 512, log=True), "dropout": FloatDistribution(0.0, 0.5),
             "optimizer": CategoricalDistribution(["adam", "sgd", "rmsprop"]), "blocks": IntDistribution(1, 3)}
    study = optuna.create_study(study_name="synthetic", direction="maximize")
    rng = np.random.default_rng(0)
    for i in range(n):
        params = {"lr": 10 ** rng.uniform(-5, -1), "weight_decay": 10 ** rng.uniform(-7, -2),
                  "units": int(2 ** rng.integers(3, 10)), "dropout": float(rng.uniform(0, 0.5)),
                  "optimizer": ["adam", "sgd", "rmsprop"][i % 3], "blocks": int(rng.integers(1, 4))}
        curve = {e: 0.1 + 0.8 * (1 - 0.5 ** e) * (0.5 + 0.5 * i / n) for e in range(1, 6)}
        study.add_trial(create_trial(params=params, distributions=dists, value=curve[5], intermediate_values=curve))
    return study


def test_slices_wrap_into_a_grid_with_log_axes_for_log_parameters() -> None:
    """One panel per parameter, four to a row (not one 4,800-px strip), log x axes exactly for
    the log-scale parameters, categories by name, one score axis and one colour scale."""
    study = _study()
    fig = figures.slices(study)
    names = [a.text for a in fig.layout.annotations]
    assert names == ["lr", "weight_decay", "units", "dropout", "optimizer", "blocks"]
    xaxes = [fig.layout[f"xaxis{i + 1 if i else ''}"] for i in range(len(names))]
    types = dict(zip(names, (ax.type for ax in xaxes)))
    assert types == {"lr": "log", "weight_decay": "log", "units": "log", "dropout": None, "optimizer": "category",
                     "blocks": None}
    assert [round(ax.domain[0], 2) for ax in xaxes] == [0.0, 0.26, 0.52, 0.77, 0.0, 0.26]  # wrapped after 4
    assert len({ax.anchor for ax in xaxes}) == 6 and fig.layout.height < 800
    assert all(tr.marker.coloraxis == "coloraxis" for tr in fig.data) and fig.layout.coloraxis.colorscale
    assert fig.layout.yaxis.title.text == "value" and "Objective Value" not in fig.to_json()


def test_parallel_coordinates_have_few_short_ticks_and_no_white_lines() -> None:
    fig = figures.parallel_coordinates(_study())
    pc = fig.data[0]
    by = {d.label: d for d in pc.dimensions}
    assert set(by) == {"value", "lr (log)", "weight_decay (log)", "units (log)", "dropout", "optimizer", "blocks"}
    for d in pc.dimensions[1:]:
        assert d.ticktext is not None and len(d.ticktext) <= 7 and all(len(t) <= 12 for t in d.ticktext)
    assert list(by["optimizer"].ticktext) == ["adam", "sgd", "rmsprop"]
    assert all(re.fullmatch(r"1e-\d", t) for t in by["lr (log)"].ticktext)
    darkest, lightest = pc.line.colorscale[0][1], pc.line.colorscale[-1][1]  # Viridis: no near-white end
    assert "Objective Value" not in fig.to_json() and lightest != "rgb(255,255,255)" and darkest != lightest


def test_parallel_coordinates_tell_a_parameter_never_asked_from_a_none_choice() -> None:
    study = optuna.create_study()
    pool, momentum = CategoricalDistribution([None, 2]), FloatDistribution(0.5, 0.9)
    for i, (p, m) in enumerate([(None, 0.6), (2, None), (None, None)]):
        asked, dists = {"pool": p}, {"pool": pool}
        if m is not None:  # momentum is asked only in the first trial
            asked, dists = {**asked, "momentum": m}, {**dists, "momentum": momentum}
        study.add_trial(create_trial(params=asked, distributions=dists, value=float(i)))
    by = {d.label: d for d in figures.parallel_coordinates(study).data[0].dimensions}
    assert list(by["pool"].ticktext) == ["None", "2"]  # None is a choice here, not a missing value
    assert by["momentum"].ticktext[0] == "not asked"
    assert list(by["momentum"].values).count(by["momentum"].tickvals[0]) == 2


def test_learning_curves_zoom_to_the_better_trials_with_a_full_range_button() -> None:
    fig = figures.learning_curves(_study(8), "val_top1")
    lo, hi = fig.layout.yaxis.range
    finals = sorted(t.value for t in _study(8).trials)
    assert finals[1] < lo + 0.1 * (hi - lo) and lo > 0.15 and hi >= finals[-1]  # early epochs (~0.3) left out
    labels = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert labels == ["zoom: better three quarters", "full range"]


@pytest.mark.slow
def test_importances_state_their_trial_count_and_reliability(work: Work, tiny_search: Finished) -> None:
    work.adopt(tiny_search)
    out = work.path / "r.html"
    work.cli("report", "tiny", "--out", str(out))
    text = out.read_text()
    assert "Computed from 4 completed trials; the best 10% is 1 trial." in text
    assert f"Not reliable below {RELIABLE_TRIALS} completed trials" in text and "PED-ANOVA" in text
    assert "PED-ANOVA over 4 completed trials (top 1)" in text  # the plot's title too (its dash is \u2014 in JSON)
    assert f"not reliable below {RELIABLE_TRIALS}" in text


def _test_split(rec: dict, checkpoint: Path) -> tuple[torch.nn.Module, object]:
    model, ckpt = load_checkpoint(checkpoint)
    spec = DataSpec(**{k: ckpt["settings"][k] for k in ("dataset", "val_fraction", "split_seed", "train_subset")})
    mean, std = torch.tensor(ckpt["normalization"]["mean"]), torch.tensor(ckpt["normalization"]["std"])
    return model.to(memory_format=torch.channels_last), load_test_data(spec, None, mean, std, look=lambda: None)


@pytest.mark.slow
def test_confusion_is_the_mean_over_seeds_and_the_images_are_the_mistakes(
        work: Work, tmp_path: Path, tiny_retrained: Finished) -> None:
    """Against the test split itself: the matrix sums to its size (not seeds × size), and the
    kept images are the first seed's model's mistakes, re-predicted from its checkpoint. Then
    the same study with an old-shaped record (no per-seed matrices, no mistakes) still renders."""
    work.adopt(tiny_retrained)
    study = optuna.load_study(study_name="tiny", storage=work.url)
    rec = study_get(study, RETRAIN)
    model, test = _test_split(rec, Path(rec["runs"][0]["checkpoint"]))
    pred = evaluate(model, test, None)[3].cpu()
    y = test.y.cpu()
    wrong = set((pred != y).nonzero().flatten().tolist())
    assert wrong, "a 3-epoch tiny model makes mistakes on digits"

    heat = figures.confusion(rec).data[0]
    assert np.asarray(heat.customdata).sum() == pytest.approx(len(test))
    assert [sum(map(sum, m)) for m in rec["confusion_per_seed"]] == [len(test)] * 2
    assert np.asarray(rec["confusion"]).sum() == 2 * len(test)  # the stored sum, as older records have it

    kept = rec["mistakes"]
    idx = kept["indices"]
    assert kept["total"] == len(wrong) and set(idx) <= wrong and len(idx) == min(30, len(wrong))
    assert kept["labels"] == y[idx].tolist() and kept["predicted"] == pred[idx].tolist()
    pixels = np.frombuffer(base64.b64decode(kept["pixels"]), dtype=np.uint8).reshape(kept["shape"])
    assert np.array_equal(pixels, torch.cat([test.pixels(slice(i, i + 1)) for i in idx]).numpy())

    new = work.path / "new.html"
    work.cli("report", "tiny", "--out", str(new))
    html = new.read_text()
    assert "Misclassified test images" in html and "mean over the 2 seeds" in html and "First 30" not in html

    study_put(study, RETRAIN, {k: v for k, v in rec.items() if k not in ("confusion_per_seed", "mistakes")})
    old = work.path / "old.html"
    work.cli("report", "tiny", "--out", str(old))
    page = _rendered(old, tmp_path)
    assert drawn(page) == SEARCH_PLOTS + RETRAIN_PLOTS and "Not shown" not in page.dom
    assert "First 30 test images" in page.dom and f"mean over 2 seeds' models, {len(test)} test images" in page.dom


def test_the_report_has_contents_and_a_trial_table_that_sorts_in_the_browser(work: Work, tmp_path: Path) -> None:
    from hpsearch.store.records import SETTINGS
    from hpsearch.study.declaration import StoredSettings

    study = optuna.create_study(study_name="sorted", storage=work.url, direction="maximize")
    study.set_user_attr(SETTINGS, StoredSettings(data=DataSpec("digits"), max_epochs=3, metric="val_top1", seed=0,
                                                 module="sorted").to_dict())
    values = [0.5, 0.9, 0.7, 0.6]  # trial order is not score order
    study.add_trials([create_trial(params={"lr": 0.001 * (i + 1)}, distributions={"lr": FloatDistribution(1e-4, 1.0)},
                                   value=v, intermediate_values={1: v}, user_attrs={"epochs": 1})
                      for i, v in enumerate(values)])
    out = work.path / "t.html"
    work.cli("report", "sorted", "--out", str(out), "--plotlyjs", "cdn")  # small: the table is what is tested
    page_html = out.read_text()
    anchors = re.findall(r'<h2 id="(s\d+)">', page_html)
    toc = re.search(r'<nav class="toc">(.*?)</nav>', page_html, flags=re.DOTALL)
    assert toc is not None and re.findall(r'href="#(s\d+)"', toc.group(1)) == anchors and "Trials" in toc.group(1)

    def numbers_after(clicks: int) -> list[int]:
        """Click the metric's header ``clicks`` times, as a reader would; the trial numbers top to bottom."""
        clicked = tmp_path / f"clicked{clicks}.html"
        click = 'document.querySelector("table.sortable th:nth-child(3)").click();' * clicks
        clicked.write_text(page_html.replace("</body>", f"<script>{click}</script></body>"))
        dom = browser.load(clicked.as_uri(), tmp_path / "profile").dom
        table = dom.split('<table class="sortable"', 1)[1].split("</table>", 1)[0]
        rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], flags=re.DOTALL)
        return [int(re.findall(r'data-v="([^"]*)"', r)[0]) for r in rows]

    assert numbers_after(0) == [0, 1, 2, 3]
    assert numbers_after(1) == [0, 3, 2, 1]  # 0.5, 0.6, 0.7, 0.9
    assert numbers_after(2) == [1, 2, 3, 0]  # again: the other way round
