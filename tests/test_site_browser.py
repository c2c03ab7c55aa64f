"""The built site in a real browser (Debian's headless chromium via selenium), from file://:
search, filters, stars kept across a reload, BibTeX export, hostile text that never runs, no
console error, no network request, and screenshots of a day page in light and dark.

One browser for the module. Without chromium the module is skipped, except in CI (CI=true),
where that is a failure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import bibtexparser
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from arxiv_digest.settings import load_settings
from tasks.catalog import refresh_catalog
from tasks.lake import Lake
from tasks.library import read_library
from tasks.publish import publish
from tests.browser import browser_problem, set_color_scheme, start_chromium
from tests.digest_days import DayPaper, day_papers, write_digest_day

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DAYS = [date(2026, 6, 28), date(2026, 6, 29), date(2026, 6, 30)]
HOSTILE_DAY = DAYS[-1]
PWN = "window.__pwned=1"
HOSTILE_TITLE = f"<script>{PWN}</script><img src=x onerror={PWN}> Hostile"
BRACES_TITLE = r"Unbalanced {brace and $\mathcal{O}(n)$ math"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three published days (two in Chinese, one in English with hostile text), built into a
    site by the publish step."""
    work = tmp_path_factory.mktemp("site")
    settings = load_settings(
        lake_url=str(work / "lake"),
        duckdb_path=str(work / "digest.duckdb"),
        output_dir=str(work / "output"),
        site_url="",
        site_base_url="",
    )
    lake = Lake.from_settings(settings)
    for day in DAYS[:-1]:
        write_digest_day(lake, day, day_papers(day, 3))
    papers = day_papers(HOSTILE_DAY, 3)
    hostile = DayPaper(
        replace(
            papers[0].paper,
            title=HOSTILE_TITLE,
            abstract=f'An abstract with <img src=x onerror="{PWN}"> in it.',
            authors=(f"<b onclick={PWN}>Mallory</b>", "Ada Lovelace and Sons"),
        ),
        f"[click me](javascript:{PWN}) <script>{PWN}</script> ![x](https://example.org/t.png)",
        (f"<iframe src=javascript:{PWN}></iframe>",),
    )
    braces = DayPaper(replace(papers[1].paper, title=BRACES_TITLE), "Fine.", ())
    write_digest_day(
        lake,
        HOSTILE_DAY,
        [hostile, braces, papers[2]],
        summary=f'Summary <img src=x onerror="{PWN}"> [x](javascript:{PWN})',
        language="en",
    )
    refresh_catalog(settings, lake)
    publish(settings, lake)
    return work / "output" / "site"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = browser_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the browser tests: {problem}")
        pytest.skip(problem)
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, site: Path, page: str) -> None:
    driver.get((site / page).as_uri() if "?" not in page else f"{site.as_uri()}/{page}")


def requests_made(driver: Any) -> list[str]:
    """Every URL the browser requested since the last call (the DevTools performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def assert_clean(driver: Any) -> None:
    """No console error, nothing requested but the site's own files, no hostile script ran."""
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    elsewhere = [u for u in requests_made(driver) if not u.startswith("file://")]
    assert elsewhere == []
    assert driver.execute_script("return window.__pwned") is None


def until(driver: Any, condition: Any) -> None:
    """Wait for the page to reach a state (a condition polled, not a fixed delay)."""
    WebDriverWait(driver, 10, poll_frequency=0.05).until(condition)


def visible_results(driver: Any) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, "[data-search-results] > li")


def test_day_page_loads_from_file_with_hostile_text_shown_as_text(browser, site):
    requests_made(browser)  # only this test's requests count
    open_page(browser, site, f"{HOSTILE_DAY}.html")
    title = browser.find_element(By.CSS_SELECTOR, ".paper-title").text
    assert title == HOSTILE_TITLE
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.find_elements(By.TAG_NAME, "iframe") == []
    hrefs = [a.get_attribute("href") or "" for a in browser.find_elements(By.TAG_NAME, "a")]
    assert not [h for h in hrefs if h.lower().startswith("javascript:")]
    assert (
        f"[click me](javascript:{PWN})" in browser.find_element(By.CSS_SELECTOR, ".analysis").text
    )
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    # The Markdown digest's anchors work: the table of contents jumps to each paper.
    browser.find_elements(By.CSS_SELECTOR, ".toc a")[1].click()
    assert browser.current_url.endswith(f"#{day_papers(HOSTILE_DAY, 3)[1].paper.arxiv_id}v1")
    urls = requests_made(browser)
    assert {u.rsplit("/", 1)[-1] for u in urls} >= {f"{HOSTILE_DAY}.html", "style.css", "site.js"}
    assert_clean(browser)


def test_search_finds_papers_across_days_and_filters_them(browser, site):
    open_page(browser, site, "index.html")
    box = browser.find_element(By.CSS_SELECTOR, ".search-box input[name=q]")
    box.send_keys("SIMA")
    box.submit()  # the front page's form opens search.html?q=SIMA
    until(browser, lambda d: d.current_url.endswith("/search.html?q=SIMA"))
    until(
        browser, lambda d: "result" in d.find_element(By.CSS_SELECTOR, "[data-search-status]").text
    )
    results = visible_results(browser)
    # The SIMA paper is in the first two days' digests (the third day's was renamed).
    days = sorted(r.find_element(By.TAG_NAME, "a").get_attribute("href") for r in results)
    assert len(results) == 2 and all("/2026-06-2" in d for d in days)
    status = browser.find_element(By.CSS_SELECTOR, "[data-search-status]").text
    assert status == "2 results"
    # A term only the analyses hold, then narrowed by category and by keyword.
    query = browser.find_element(By.CSS_SELECTOR, "[data-search-query]")
    query.clear()
    query.send_keys("Gemini")
    found = len(visible_results(browser))
    assert found >= 2
    category = Select(browser.find_element(By.CSS_SELECTOR, "[data-search-category]"))
    category.select_by_value("cs.AI")
    in_category = visible_results(browser)
    assert 0 < len(in_category) <= found
    for item in in_category:
        assert "cs.AI" in item.find_element(By.CSS_SELECTOR, ".meta").text
    keyword = browser.find_element(By.CSS_SELECTOR, "[data-search-keyword]")
    keyword.send_keys("no such words anywhere")
    assert visible_results(browser) == []
    assert browser.find_element(By.CSS_SELECTOR, "[data-search-status]").text == "0 results"
    # Hostile titles are found as text and shown as text.
    keyword.clear()
    category.select_by_value("")
    query.clear()
    query.send_keys("onerror")
    [hostile] = visible_results(browser)
    assert hostile.find_element(By.TAG_NAME, "a").text == HOSTILE_TITLE
    hostile.find_element(By.TAG_NAME, "a").click()
    until(browser, lambda d: "/search.html" not in d.current_url)
    assert browser.current_url.endswith(
        f"{HOSTILE_DAY}.html#{day_papers(HOSTILE_DAY, 1)[0].paper.arxiv_id}v1"
    )
    assert_clean(browser)


def test_day_page_filters_by_category_and_keyword(browser, site):
    open_page(browser, site, f"{DAYS[0]}.html")
    papers = browser.find_elements(By.CSS_SELECTOR, "[data-paper]")
    count = browser.find_element(By.CSS_SELECTOR, "[data-filter-count]")
    assert count.text == "3 of 3 shown"
    Select(browser.find_element(By.CSS_SELECTOR, "[data-filter-category]")).select_by_value("cs.CV")
    shown = [p for p in papers if p.is_displayed()]
    assert len(shown) == 2
    for paper in shown:
        assert "cs.CV" in json.loads(paper.get_attribute("data-categories"))
    Select(browser.find_element(By.CSS_SELECTOR, "[data-filter-category]")).select_by_value("")
    browser.find_element(By.CSS_SELECTOR, "[data-filter-keyword]").send_keys("Illumination")
    assert [p.get_attribute("id") for p in papers if p.is_displayed()] == [
        f"{day_papers(DAYS[0], 3)[2].paper.arxiv_id}v1"
    ]
    assert count.text == "1 of 3 shown"
    assert_clean(browser)


def test_starred_papers_survive_a_reload_and_export_as_bibtex(browser, site, tmp_path):
    open_page(browser, site, f"{HOSTILE_DAY}.html")
    browser.execute_script("window.localStorage.clear()")
    browser.refresh()
    stars = browser.find_elements(By.CSS_SELECTOR, "[data-paper] [data-star]")
    assert [s.get_attribute("aria-pressed") for s in stars] == ["false"] * 3
    stars[0].click()
    stars[1].click()
    browser.refresh()

    def pressed(driver: Any) -> list[str]:
        stars = driver.find_elements(By.CSS_SELECTOR, "[data-paper] [data-star]")
        return [s.get_attribute("aria-pressed") for s in stars]

    until(browser, lambda d: pressed(d) == ["true", "true", "false"])
    assert browser.find_element(By.CSS_SELECTOR, "[data-star-count]").text == "(2)"
    # A star set from the search results lands in the same list.
    open_page(browser, site, "search.html?q=Light-X")
    first = visible_results(browser)[0]
    first.find_element(By.CSS_SELECTOR, "[data-star]").click()
    open_page(browser, site, "reading-list.html")
    # localStorage reaches a newly loaded page asynchronously (Chromium commits a page's
    # writes in its browser process); the list shows what arrives, as it arrives.
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-reading-list] li")) == 3)
    listed = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "[data-reading-list] li a")]
    assert listed[:2] == [HOSTILE_TITLE, BRACES_TITLE] and len(listed) == 3
    text = browser.find_element(By.CSS_SELECTOR, "[data-bibtex]").get_attribute("value")
    library = bibtexparser.parse_string(text)
    assert library.failed_blocks == [] and len(library.entries) == 3
    hostile = library.entries[0]
    arxiv_id = day_papers(HOSTILE_DAY, 1)[0].paper.arxiv_id
    assert hostile.entry_type == "misc" and hostile.key == f"arXiv:{arxiv_id}v1"
    fields = {f.key: f.value for f in hostile.fields}
    assert fields["eprint"] == arxiv_id and fields["archivePrefix"] == "arXiv"
    assert fields["title"] == HOSTILE_TITLE and fields["year"] == "2026"
    assert fields["author"] == f"<b onclick={PWN}>Mallory</b> and {{Ada Lovelace and Sons}}"
    assert fields["url"] == f"https://arxiv.org/abs/{arxiv_id}v1"
    # The loop with profiles: the export is a library file (DIGEST_PROFILES `library`) whose
    # entries are the starred papers, by arXiv id.
    exported = tmp_path / "starred.bib"
    exported.write_text(text, encoding="utf-8")
    assert [e.arxiv_id for e in read_library(exported)][:1] == [arxiv_id]
    assert all(e.arxiv_id for e in read_library(exported))
    braces = {f.key: f.value for f in library.entries[1].fields}
    assert braces["title"].count("{") == braces["title"].count("}")
    assert "\\textbraceleft{}brace" in braces["title"]
    link = browser.find_element(By.CSS_SELECTOR, "[data-bibtex-download]")
    assert link.get_attribute("href").startswith("blob:") and link.get_attribute("download")
    # Unstarring from the list removes it there and from its BibTeX.
    browser.find_elements(By.CSS_SELECTOR, "[data-reading-list] [data-star]")[0].click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "[data-reading-list] li")) == 2
    bib = browser.find_element(By.CSS_SELECTOR, "[data-bibtex]").get_attribute("value")
    assert HOSTILE_TITLE not in bib
    assert_clean(browser)


def test_day_page_fits_a_phone_screen(browser, site):
    browser.set_window_size(390, 844)
    try:
        open_page(browser, site, f"{DAYS[1]}.html")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
    finally:
        browser.set_window_size(1100, 900)
    assert_clean(browser)


def test_day_page_screenshots_in_light_and_dark(browser, site):
    ARTIFACTS.mkdir(exist_ok=True)
    backgrounds = {}
    for scheme in ("light", "dark"):
        set_color_scheme(browser, scheme)
        open_page(browser, site, f"{DAYS[1]}.html")
        backgrounds[scheme] = browser.execute_script(
            "return getComputedStyle(document.documentElement).backgroundColor"
        )
        path = ARTIFACTS / f"site-day-{scheme}.png"
        assert browser.save_screenshot(str(path)) and path.stat().st_size > 10_000
        print(f"screenshot: {path}")
    set_color_scheme(browser, "light")
    assert backgrounds == {"light": "rgb(253, 253, 252)", "dark": "rgb(19, 20, 22)"}
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    assert_clean(browser)
