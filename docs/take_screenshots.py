"""Screenshots for the documentation, taken the way the browser tests look at the report:
the system's Chromium through Playwright, on a report the quick start wrote.

    python docs/take_screenshots.py data/exports/connections_report_latest.html docs/images
"""

import shutil
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

VIEWPORT = {"width": 1280, "height": 720}


def screenshot_report(report: Path, folder: Path, browser: Any) -> Path:
    """`folder/report.png`: the first screen of the report, in `browser` (Playwright's)."""
    target = folder / "report.png"
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(report.resolve().as_uri())
    page.screenshot(path=str(target))
    page.close()
    return target


def main(report: Path, folder: Path) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium installed (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            return screenshot_report(report, folder, browser)
        finally:
            browser.close()


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), Path(sys.argv[2])))
