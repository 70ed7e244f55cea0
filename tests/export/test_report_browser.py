"""The HTML report in a real browser: headless Chromium (the system's, never a download)
driven by Playwright, on a report the asset wrote from a synced warehouse.

What a person does with the page is what is tested: read the tab counts, sort, filter,
follow the banner's link, and see hostile company names as text.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from export_helpers import resources

from connections_pipeline.assets.report import finch_connections_report
from connections_pipeline.export.columns import latest_report_name

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium installed (apt-get install -y chromium); .ci/run installs it",
    ),
]
HEADERS = {
    "Company Name": 0,
    "Company ID": 1,
    "Connection ID": 2,
    "# Entities": 5,
    "Provider": 10,
}


@pytest.fixture(scope="module")
def report_path(synced_warehouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    result = dg.materialize(
        [finch_connections_report], resources=resources(synced_warehouse_url, str(folder))
    )
    assert result.success
    return folder / latest_report_name()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Root in CI and in containers: Chromium's sandbox needs user namespaces.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(report_path: Path, browser):
    # The report first: Dagster's run must not start inside Playwright's event loop.
    context = browser.new_context(offline=True)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    opened.on(
        "dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss())
    )
    opened.on("request", lambda request: _note_request(request.url, problems))
    opened.goto(report_path.as_uri())
    opened.problems = problems
    yield opened
    context.close()


def _note_request(url: str, problems: list[str]) -> None:
    if not url.startswith("file://"):
        problems.append(f"fetched {url}")


def _visible_keys(page, state: str) -> list[str]:
    return page.eval_on_selector_all(
        f"#table-{state} tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.key)"
    )


def _column(page, state: str, index: int) -> list[str]:
    return page.eval_on_selector_all(
        f"#table-{state} tbody tr:not([hidden])",
        f"rows => rows.map(r => r.cells[{index}].textContent)",
    )


def test_tab_counts_and_rows_are_the_warehouse(page, synced_current: pl.DataFrame) -> None:
    for state in ("live", "staged", "disconnected"):
        keys = synced_current.filter(pl.col("state") == state)["connection_key"].to_list()
        assert page.text_content(f"#count-{state}") == str(len(keys))
        page.click(f"#tab-{state}")
        assert page.is_visible(f"#panel-{state}")
        assert sorted(_visible_keys(page, state)) == sorted(keys)
    assert page.problems == []


def test_top_of_the_page_names_the_snapshot(page, synced_warehouse_url: str) -> None:
    from connections_pipeline.warehouse import Warehouse

    with Warehouse(synced_warehouse_url) as warehouse:
        run = warehouse.latest_loaded_run()
    assert page.get_attribute("#as-of", "datetime") == run["as_of"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert page.text_content("#sync-run") == run["run_id"]
    expected = "complete" if run["status"] == "success" else "partial"
    assert page.text_content("#sync-status").startswith(expected)


def test_sorting_by_a_column_orders_the_rows_both_ways(page, synced_current) -> None:
    live = synced_current.filter(pl.col("state") == "live")
    ids = [value for value in live["company_id"].to_list() if value]
    page.click("#table-live th >> text='Company ID'")
    shown = [text for text in _column(page, "live", HEADERS["Company ID"]) if text]
    assert shown == sorted(ids, key=str.casefold)
    page.click("#table-live th >> text='Company ID'")
    shown = [text for text in _column(page, "live", HEADERS["Company ID"]) if text]
    assert shown == sorted(ids, key=str.casefold, reverse=True)
    # Numbers sort as numbers ("10" after "9"), blanks last.
    page.click("#table-live th >> text='# Entities'")
    counts = _column(page, "live", HEADERS["# Entities"])
    expected = sorted(value for value in live["entity_count"].to_list() if value is not None)
    assert [int(text) for text in counts if text] == expected
    assert counts[len(expected) :] == [""] * (len(counts) - len(expected))
    assert page.problems == []


def test_a_filter_on_any_column_keeps_the_matching_rows(page, synced_current) -> None:
    live = synced_current.filter(pl.col("state") == "live")
    provider = live["provider_name"].drop_nulls().mode().sort()[0]
    page.fill("#table-live input[aria-label='Filter Provider']", provider.upper())
    expected = live.filter(
        pl.col("provider_name").str.to_lowercase().str.contains(provider.lower(), literal=True)
    )["connection_key"]
    assert sorted(_visible_keys(page, "live")) == sorted(expected.to_list())
    assert page.text_content("#panel-live .shown-count") == str(expected.len())
    assert 0 < expected.len() < live.height
    # A second column narrows further; clearing both shows every row again.
    connection_id = expected[0]
    page.fill("#table-live input[aria-label='Filter Connection ID']", connection_id)
    assert _visible_keys(page, "live") == [connection_id]
    page.fill("#table-live input[aria-label='Filter Provider']", "")
    page.fill("#table-live input[aria-label='Filter Connection ID']", "")
    assert len(_visible_keys(page, "live")) == live.height


def test_the_banner_link_shows_exactly_the_connections_needing_action(page, synced_current):
    needing = synced_current.filter(pl.col("needs_action"))
    assert needing.height > 0
    assert page.text_content("#action-count") == str(needing.height)
    page.click("#needs-action-link")
    shown = [
        key for state in ("live", "staged", "disconnected") for key in _visible_keys(page, state)
    ]
    assert sorted(shown) == sorted(needing["connection_key"].to_list())
    assert page.is_visible("#only-action")
    page.click("#show-all")
    assert (
        len(_visible_keys(page, "live")) == synced_current.filter(pl.col("state") == "live").height
    )


def test_hostile_company_names_stay_text(page, synced_current) -> None:
    hostile = [
        name
        for name in synced_current["company_name"].drop_nulls().unique().to_list()
        if "<" in name or name.lstrip().startswith(("=", "+", "-", "@"))
    ]
    assert any("<img" in name for name in hostile), "the dataset plants markup in names"
    # Nothing from the data became an element, ran, or was fetched.
    assert page.eval_on_selector_all("tbody img, tbody script, tbody iframe", "e => e.length") == 0
    for state in ("live", "staged", "disconnected"):
        page.click(f"#tab-{state}")
    texts = set()
    for state in ("live", "staged", "disconnected"):
        texts.update(_column(page, state, HEADERS["Company Name"]))
    for name in hostile:
        # As stored: the CSV's formula guard (a leading ') is no business of a web page.
        assert name.replace("\r", "\n") in {text.replace("\r", "\n") for text in texts}
    assert page.problems == []


def test_the_documentation_screenshot_is_taken_of_a_real_report(
    report_path: Path, browser, tmp_path: Path
) -> None:
    # docs/images/report.png comes from this script; it must keep working on a real report.
    from take_screenshots import screenshot_report

    shot = screenshot_report(report_path, tmp_path, browser)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
