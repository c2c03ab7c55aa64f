"""A headless Chromium for the site's tests: Debian's chromium and chromedriver, never a download.

`python -m tests.browser PAGE.html OUT.png [--dark]` takes a screenshot of a built page (the
README's docs/site-day.png is made this way from the demo's day).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def browser_problem() -> str | None:
    """Why no browser test can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (path.exists() or shutil.which(path.name)):
            return f"{path} is missing (Debian packages chromium and chromium-driver)"
    return None


def start_chromium(width: int = 1100, height: int = 900) -> Any:
    """Headless Chromium with console and network logs kept for the test to read.

    The driver's path is given explicitly, so Selenium Manager (which would try to download
    a browser) never runs.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--metrics-recording-only",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver_path = CHROMEDRIVER if CHROMEDRIVER.exists() else Path(str(shutil.which("chromedriver")))
    return webdriver.Chrome(service=Service(executable_path=str(driver_path)), options=options)


def set_color_scheme(driver: Any, scheme: str) -> None:
    """Emulate prefers-color-scheme (light or dark) for the pages loaded next."""
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"media": "", "features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )


def screenshot(
    page: Path, out: Path, *, dark: bool = False, width: int = 1100, height: int = 1400
) -> Path:
    """A PNG of the page's first screen, in 128 colours (text and flat colours lose nothing
    visible; the file is a fraction of the size)."""
    from PIL import Image

    driver = start_chromium(width=width, height=height)
    try:
        set_color_scheme(driver, "dark" if dark else "light")
        driver.get(page.resolve().as_uri())
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
    with Image.open(out) as image:
        small = image.convert("RGB").quantize(colors=128)
    small.save(out, optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.browser", description=__doc__)
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--dark", action="store_true")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args(argv)
    problem = browser_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    os.environ.setdefault("SE_AVOID_STATS", "true")
    print(screenshot(args.page, args.out, dark=args.dark, width=args.width, height=args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
