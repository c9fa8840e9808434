"""`hpsearch report`: a self-contained HTML file that renders offline in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import browser
from conftest import Finished, Work

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
    assert "Not retrained yet: run `hpsearch best tiny --retrain`" in html and "Not shown" not in html
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
    assert "First 30 test images" in page.dom and "Test confusion matrix" in page.dom
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
