"""The HTML results page: the data it embeds (no browser) and the page in headless Chromium.

The browser tests drive Debian's ``chromium`` with its ``chromium-driver`` through Selenium
(no browser download). Without them the browser tests skip, saying what to install; CI
installs both (``.ci/run``).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

from fixtures.make_fixtures import edit_runs
from rnnbench.analysis import load
from rnnbench.impls import colour, family_colour
from rnnbench.report_html import SCHEMA, VENDOR, outliers, page_data, render, views, write_html

FIXTURES = Path(__file__).parent / "fixtures"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
OUTLIER_MS = 1400.0  # injected into gru-1x320-ce / torch-nn's 6th measured step (median 119 ms)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory) -> Path:
    """quick-base with the torch rows on a second device (the page offers a switch) and one
    measured step of gru-1x320-ce / torch-nn made an outlier."""
    d = tmp_path_factory.mktemp("html") / "split"
    shutil.copytree(FIXTURES / "quick-base", d)

    def edit(doc):
        if doc["framework"] == "torch":
            doc["device"] = doc["device_name"] = "cuda"
        if (doc["scenario"], doc["impl"]) == ("gru-1x320-ce", "torch-nn"):
            measured = [st for st in doc["step_log"] if st["phase"] == "measure"]
            measured[5]["runtime_s"] = OUTLIER_MS / 1e3
            doc["median_s"] = statistics.median(st["runtime_s"] for st in measured)

    edit_runs(d, edit)
    return d


def embedded(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="rnnbench-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


# --- the embedded data (no browser) -----------------------------------------------------------

def test_page_data_units_types_and_colours():
    r = load(FIXTURES / "quick-base")
    data = page_data([r])
    assert data["schema"] == SCHEMA and data["unit"] == "ms"
    rows = {(x["scenario"], x["impl"]): x for x in data["runs"][0]["rows"]}
    assert len(rows) == len(r.summary)
    src = r.summary.set_index(["scenario", "impl"])
    nn = rows["gru-1x320-ce", "torch-nn"]
    assert nn["median_ms"] == pytest.approx(1e3 * src.loc[("gru-1x320-ce", "torch-nn"), "median_s"])
    assert nn["ci_low_ms"] < nn["median_ms"] < nn["ci_high_ms"]
    assert nn["first_step_ms"] == pytest.approx(192.096)
    assert nn["steps"] == 8 and nn["warmup"] == 2 and nn["parameters"] == 435225
    assert all(type(nn[k]) is int for k in ("steps", "warmup", "parameters"))
    assert nn["efficiency_pct"] == pytest.approx(45.2183, rel=1e-5)
    assert nn["peak_rss_mib"] == pytest.approx(627.908815) and nn["peak_gpu_mib"] is None
    assert nn["stable"] is True and nn["verified"] is True and nn["flags"] == []
    # One boolean spelling: failed verification false, not checked null; flags carried over.
    assert rows["lstm-4x320bi-ctc", "keras-torch"]["verified"] is False
    assert rows["gru-1x320-ce", "pytensor-scan"]["verified"] is None
    assert rows["gru-1x320-ce", "tf-cell"]["stable"] is False
    assert rows["gru-1x320-ce", "tf-cell"]["flags"][0].startswith("unstable")
    skipped = rows["gru-1x320-ce", "tf-cudnn"]
    assert skipped["status"] == "skipped" and skipped["median_ms"] is None and "CUDA" in skipped["reason"]

    steps = data["runs"][0]["steps"]["gru-1x320-ce/torch-nn"]
    assert steps["warmup"][0] == pytest.approx(192.096) and len(steps["warmup"]) == 2
    assert len(steps["measure"]) == len(steps["measure_loss"]) == 8 and steps["outliers"] == []
    assert "gru-1x320-ce/tf-cudnn" not in data["runs"][0]["steps"]  # skipped: no steps

    assert data["impls"]["torch-cell"]["colour"] == colour("torch-cell") != colour("torch-nn")
    assert {f["name"]: f["colour"] for f in data["frameworks"]} == {f: family_colour(f) for f in r.frameworks}
    assert [s["name"] for s in data["scenarios"]] == r.scenarios
    ctc = next(s for s in data["scenarios"] if s["name"] == "lstm-4x320bi-ctc")
    assert ctc["masking"] is True and ctc["loss"] == "CTC" and ctc["shape"]["time_steps"] == 100
    env = dict(data["runs"][0]["environment"])
    assert env["flush denormals"] == "on" and env["threads"] == "2"
    assert env["GEMM rate"].startswith("118.4 GFLOP/s") and "97d47db" in env["rnnbench"]
    assert data["runs"][0]["versions"]["torch"] == ["torch 2.13.0+cpu"]


def test_outliers():
    assert outliers([100, 101, 99, 100, 102, 98, 100, 1400]) == [7]
    assert outliers([100, 101, 99, 100, 102, 98, 100, 30]) == [7]
    # Within 10% of the median: a tight spread does not make a wobble an outlier.
    assert outliers([100.0, 100.1, 99.9, 100.0, 100.05, 99.95, 100.0, 105.0]) == []
    assert outliers([100, 1400, 100]) == []  # too few steps to tell


def test_views_one_per_run_and_device(split_dir):
    base = load(FIXTURES / "quick-base")
    assert views([base]) == [{"label": "fixture-quick-base", "run": 0, "filter": {}}]
    split = load(split_dir)
    assert [v["filter"] for v in views([split])] == [{"device": "cuda"}, {"device": "cpu"}]
    two = views([base, load(FIXTURES / "quick-new")])
    assert [v["run"] for v in two] == [0, 1]
    assert two[0]["label"].startswith("fixture-quick-base (Intel")


def test_render_is_self_contained(tmp_path, split_dir):
    r = load(split_dir)
    path = write_html(r, tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "{{" not in html
    # Nothing is fetched: no external script, style sheet, image or source map.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
    assert "sourceMappingURL" not in html
    assert html.count("</script>") == html.count("<script")
    assert embedded(html) == json.loads(json.dumps(page_data([r])))
    assert embedded(html)["runs"][0]["steps"]["gru-1x320-ce/torch-nn"]["outliers"] == [5]
    assert path.stat().st_size < 600_000, "the page grew: keep the vendored libraries small"


def test_script_end_tags_in_data_cannot_break_the_page():
    r = load(FIXTURES / "quick-base")
    text = "<!-- <script> </script><script>alert(1)</script> & more"
    r.summary.loc[0, "reason"] = text
    html = render(r)
    assert "alert(1)" in html and "<script>alert(1)" not in html and "<!-- <script>" not in html
    assert embedded(html)["runs"][0]["rows"][0]["reason"] == text


def test_vendored_libraries_are_present_with_licences():
    from rnnbench.report_html import STATIC

    vendor = STATIC / "vendor"
    for name in VENDOR:
        assert (vendor / name).read_text(encoding="utf-8").strip()
    readme = (vendor / "README.md").read_text(encoding="utf-8")
    for package in ("chart.js", "chartjs-chart-error-bars", "chartjs-plugin-annotation", "tablesort"):
        assert re.search(rf"`{re.escape(package)}@\d+\.\d+\.\d+`", readme), package
        assert any(p.name.startswith(package) and "LICEN" in p.name for p in vendor.iterdir()), package


# --- in the browser ----------------------------------------------------------------------------

def _driver():
    """Headless Chromium, or a skip that says what is missing."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"no browser: {CHROMIUM} and {CHROMEDRIVER} are needed "
                    "(apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    except WebDriverException as e:
        pytest.skip(f"headless Chromium did not start: {str(e).strip().splitlines()[0]}")


@pytest.fixture(scope="module")
def browser():
    driver = _driver()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page_url(split_dir, tmp_path_factory) -> str:
    return write_html(load(split_dir), tmp_path_factory.mktemp("page") / "report.html").resolve().as_uri()


@pytest.fixture
def page(browser, page_url):
    """The split fixture's page, freshly loaded; the console as it was after loading."""
    browser.get("about:blank")
    browser.get_log("browser")
    browser.get(page_url)
    return browser, browser.get_log("browser")


def detail_impls(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#detail tbody tr')].filter(r => !r.hidden)"
        ".map(r => r.dataset.impl)")


def column(driver, header: str) -> list[str]:
    return driver.execute_script(
        "const k = [...document.querySelectorAll('#detail thead th')].findIndex(h => h.textContent === arguments[0]);"
        "return [...document.querySelectorAll('#detail tbody tr')].filter(r => !r.hidden)"
        ".map(r => r.cells[k].dataset.sort ?? r.cells[k].textContent)", header)


def click_header(driver, header: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//table[@id='detail']//th[text()='{header}']").click()


def test_page_loads_without_console_errors(page, tmp_path):
    driver, log = page
    assert [e for e in log if e["level"] in ("SEVERE", "WARNING")] == []
    assert driver.execute_script("return typeof Chart") == "function"
    # The stored runs as they are: one view (no switch); quick-new has a scenario that
    # some frameworks did not run (gaps in the overview chart).
    for name in ("quick-new", "quick-base"):
        driver.get(write_html(load(FIXTURES / name), tmp_path / f"{name}.html").resolve().as_uri())
        assert [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == [], name
        assert not driver.find_element("id", "view-switch").is_displayed()
    assert driver.find_element("id", "title").text == "rnnbench results: fixture-quick-base"
    assert "48 yes, 1 failed, 4 not checked" in driver.find_element("id", "tally").text
    assert "milliseconds (ms)" in driver.find_element("css selector", "header .unit").text
    # The seed's two tables: 4 scenarios x the frameworks of the view; one row of 15 impls.
    assert len(driver.find_elements("css selector", "#fastest tbody tr")) == 4
    assert len(driver.find_elements("css selector", "#every thead th")) == 3 + 15
    env = driver.find_element("id", "env").text
    assert "flush denormals on" in env and "GEMM rate 118.4 GFLOP/s" in env


def test_view_switch_between_devices(page):
    from selenium.webdriver.support.ui import Select

    driver, _ = page
    select = Select(driver.find_element("id", "view"))
    assert driver.find_element("id", "view-switch").is_displayed()
    assert [o.text for o in select.options] == ["device cuda", "device cpu"]
    cuda = set(detail_impls(driver))
    assert {"torch-nn", "torch-cell"} <= cuda and "tf-cell" not in cuda
    select.select_by_index(1)
    cpu = set(detail_impls(driver))
    assert "tf-cell" in cpu and "torch-nn" not in cpu


def test_view_switch_between_runs(browser, tmp_path):
    from selenium.webdriver.support.ui import Select

    runs = [load(FIXTURES / "quick-base"), load(FIXTURES / "quick-new")]
    browser.get(write_html(runs, tmp_path / "two.html").resolve().as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    select = Select(browser.find_element("id", "view"))
    assert [o.text.split(" (")[0] for o in select.options] == ["fixture-quick-base", "fixture-quick-new"]

    def tabs():
        return [b.text for b in browser.find_elements("css selector", "#scenario-tabs button")]

    assert "lstm-1x320-ce-short" not in tabs()
    select.select_by_index(1)
    assert "lstm-1x320-ce-short" in tabs()
    assert browser.find_element("id", "title").text.startswith("rnnbench results: fixture-quick-new")
    assert "fixture-quick-new" in browser.find_element("id", "env").text


def test_sorting_a_column_reorders_rows(page):
    driver, _ = page
    driver.find_element("css selector", "#scenario-tabs button[data-scenario='lstm-1x320-ce']").click()
    medians = [float(v) for v in column(driver, "median")]
    assert medians == sorted(medians) and len(medians) == 4  # torch only (cuda view), fastest first
    by_median = detail_impls(driver)
    assert by_median != sorted(by_median)
    click_header(driver, "implementation")
    assert detail_impls(driver) == sorted(by_median)
    click_header(driver, "median")
    click_header(driver, "median")
    descending = [float(v) for v in column(driver, "median")]
    assert descending == sorted(medians, reverse=True)


def test_framework_filter_hides_rows_bars_and_panels(page):
    from selenium.webdriver.support.ui import Select

    driver, _ = page
    Select(driver.find_element("id", "view")).select_by_index(1)  # cpu: several frameworks
    driver.find_element("css selector", "#scenario-tabs button[data-scenario='gru-1x320-ce']").click()
    before = detail_impls(driver)
    assert "keras-jax" in before and "tf-cell" in before
    driver.find_element("css selector", "#framework-filter input[data-framework='tensorflow']").click()
    after = detail_impls(driver)
    assert "keras-jax" in after and not {"tf-cell", "tf-xla", "tf-blockcell", "tf-cudnn"} & set(after)
    assert not any(r.is_displayed() for r in driver.find_elements("css selector", "#detail tr[data-framework='tensorflow']"))
    bars = driver.execute_script("return Chart.getChart('bars-chart').data.labels")
    assert "tf-cell" not in bars and "keras-jax" in bars
    panels = [p.get_attribute("data-impl") for p in driver.find_elements("css selector", "#panels .panel")]
    assert "tf-cell" not in panels and "keras-jax" in panels
    driver.find_element("css selector", "#framework-filter input[data-framework='tensorflow']").click()
    assert "tf-cell" in detail_impls(driver)


def test_hovering_a_bar_shows_its_ci_and_steps(page):
    from selenium.webdriver.common.action_chains import ActionChains

    driver, _ = page
    driver.find_element("css selector", "#scenario-tabs button[data-scenario='gru-1x320-ce']").click()
    canvas = driver.find_element("id", "bars-chart")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    bar = driver.execute_script(
        "const c = Chart.getChart('bars-chart'); const b = c.getDatasetMeta(0).data[0];"
        "return {x: b.x, y: b.y, base: b.base, w: c.width, h: c.height, n: c.data.labels.length,"
        " first: c.data.labels[0]}")
    assert bar["n"] == 4 and bar["first"] == "torch-nn"
    # Move to the middle of the first bar (offsets are from the canvas centre).
    ActionChains(driver).move_to_element_with_offset(
        canvas, int((bar["x"] + bar["base"]) / 2 - bar["w"] / 2), int(bar["y"] - bar["h"] / 2)).perform()
    lines = driver.execute_script(
        "const t = Chart.getChart('bars-chart').tooltip;"
        "return t.getActiveElements().length ? [t.title, t.body.flatMap(b => b.lines)] : null")
    assert lines, "no tooltip after hovering the first bar"
    title, body = lines
    assert title == ["torch-nn"]
    assert any(line.startswith("median 119 ms, 1.00\u00d7 fastest") for line in body)
    assert any(line.startswith("95% CI 116") for line in body)
    assert "8 measured steps after 2 warm-up" in body


def test_step_panels_mark_warmup_and_outliers(page):
    driver, _ = page
    driver.find_element("css selector", "#scenario-tabs button[data-scenario='gru-1x320-ce']").click()
    panels = driver.find_elements("css selector", "#panels .panel")
    assert [p.get_attribute("data-impl") for p in panels] == ["torch-nn", "torch-cell", "torch-custom", "torch-compile"]
    assert "1 outlier" in panels[0].text and "outlier" not in panels[1].text
    marks = driver.execute_script(
        "const c = Chart.getChart(document.querySelector('#panels .panel canvas'));"
        "const pts = c.data.datasets[0].data;"
        "return {outliers: pts.filter(p => p.outlier).map(p => [p.x, p.ms]), warm: pts.filter(p => p.phase === 'warmup').length,"
        " box: c.options.plugins.annotation.annotations.warmup.xMax, ymax: c.scales.y.max}")
    assert marks["outliers"] == [[2 + 6, OUTLIER_MS]] and marks["warm"] == 2 and marks["box"] == 2.5
    assert marks["ymax"] > OUTLIER_MS  # a measured outlier stays on the panel's scale


def test_scenario_link_opens_its_details(page):
    driver, _ = page
    driver.find_element("css selector", "#fastest a[data-scenario='lstm-4x320bi-ctc']").click()
    selected = driver.find_element("css selector", "#scenario-tabs button[aria-selected='true']")
    assert selected.text == "lstm-4x320bi-ctc"
    assert "CTC" in driver.find_element("id", "scenario-desc").text


def test_screenshot_is_not_blank(page, tmp_path):
    from PIL import Image

    driver, _ = page
    driver.execute_script("window.scrollTo(0, 0)")
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    assert shot.size[0] >= 1000
    pixels = np.asarray(shot).reshape(-1, 3)
    colours = len(np.unique(pixels, axis=0))
    non_white = float((pixels.min(axis=1) < 240).mean())
    assert colours > 50 and non_white > 0.05, (colours, non_white)
    # The charts drew: the overview canvas holds the frameworks' colours.
    drawn = driver.execute_script(
        "const c = document.getElementById('overview-chart'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
        "for (let k = 0; k < d.length; k += 4) if (d[k + 3] > 0 && (d[k] < 200 || d[k + 1] < 200)) n++;"
        "return n / (c.width * c.height)")
    assert drawn > 0.05
