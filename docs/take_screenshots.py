"""Screenshots for the documentation, taken the way the browser tests look at the report:
the system's Chromium through Playwright, on a report the quick start wrote.

    python docs/take_screenshots.py data/exports/connections_report_latest.html docs/images
"""

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def screenshot_report(report: Path, folder: Path) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium installed (apt-get install -y chromium)")
    target = folder / "report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(report.resolve().as_uri())
        page.screenshot(path=str(target))
        browser.close()
    return target


if __name__ == "__main__":
    print(screenshot_report(Path(sys.argv[1]), Path(sys.argv[2])))
