"""The explorer and the demo report in a real browser (headless Chromium driven by Selenium):
the pages load without console errors, the timeline and the latent plane respond, the report
fits the window. Without a browser the tests skip with one line saying what is missing; under
PUSHFORWARD_BROWSER=required (set by .ci/run once it has installed one) they fail instead."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pushforward
from pushforward.explore import write_explorer

from .conftest import open_page as _open


def _pixels(driver: Any, canvas_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{canvas_id}').toDataURL()")


def test_the_timeline_redraws_the_gan(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run = pushforward.train(
        "gan", data="ring8", steps=200, hidden=32, snapshots=6, out="g", progress=False
    )
    (page,) = write_explorer(run.path)
    _open(browser, page)
    where = browser.find_element(By.ID, "where")
    assert where.text.startswith("step 0 of 200")
    first = [_pixels(browser, f"panel-{i}") for i in (1, 2)]  # data space, discriminator
    browser.find_element(By.ID, "timeline").send_keys(Keys.END)  # as a user would
    assert where.text.startswith("step 200 of 200 (frame 6 of 6")
    assert [_pixels(browser, f"panel-{i}") for i in (1, 2)] != first
    browser.find_element(By.ID, "timeline").send_keys(Keys.HOME)
    assert [_pixels(browser, f"panel-{i}") for i in (1, 2)] == first  # frames are fixed
    browser.find_element(By.ID, "play").click()
    time.sleep(1.0)
    assert not where.text.startswith("step 0 of")
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_hovering_the_latent_plane_decodes(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run = pushforward.train(
        "vae", data="digits", latent_dim=2, steps=300, snapshots=4, out="v", progress=False
    )
    (page,) = write_explorer(run.path)
    _open(browser, page)
    browser.find_element(By.ID, "timeline").send_keys(Keys.END)
    plane = browser.find_element(By.ID, "panel-2")
    blank = _pixels(browser, "decoded")
    seen = []
    for dx, dy in ((-100, -100), (100, 100)):
        ActionChains(browser).move_to_element_with_offset(plane, dx, dy).perform()
        seen.append(_pixels(browser, "decoded"))
    assert blank not in seen and seen[0] != seen[1]  # another point, another image
    assert browser.find_element(By.ID, "zpos").text.startswith("z = (")
    path = _pixels(browser, "path")
    for dx, dy in ((-120, 0), (120, 0)):
        ActionChains(browser).move_to_element_with_offset(plane, dx, dy).click().perform()
    assert _pixels(browser, "path") != path  # two clicks draw the path between them
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_the_demo_report_fits_the_window_and_links_its_explorers(
    browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from pushforward.reports import run_demo

    plan = [
        ("ring8", "gmm", {"components": 8}),
        ("ring8", "gan", {"steps": 100, "hidden": 32}),
        ("digits", "vae", {"latent_dim": 8, "hidden": 64, "steps": 100}),
    ]
    report = run_demo(tmp_path / "d", plan=plan)
    _open(browser, report)
    # nothing wider than the window: the key numbers are rows, the rest folded
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= browser.execute_script("return window.innerWidth"), width
    assert len(browser.find_elements(By.CSS_SELECTOR, "details")) == 2
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "1 threads" not in text and "from generated" not in text
    assert "(floor" in text  # the floors beside the numbers they bound
    links = browser.find_elements(By.CSS_SELECTOR, ".explore a")
    assert [a.text for a in links] == ["gmm", "gan", "vae"]
    browser.save_screenshot(str(tmp_path / "report.png"))  # what a reader sees
    assert (tmp_path / "report.png").stat().st_size > 20_000
    links[1].click()
    _open(browser, Path(browser.current_url.removeprefix("file://")))
    assert browser.find_element(By.ID, "where").text.startswith("step 0 of 100")


def test_a_data_path_with_markup_leaves_the_explorer_working(browser: Any, tmp_path: Path) -> None:
    """The path is embedded in the page's data: escaped, it can neither end nor open a script."""
    import numpy as np
    from selenium.webdriver.common.by import By

    folder = tmp_path / "a<!--<script>"
    folder.mkdir()
    np.save(folder / "x.npy", np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32))
    run = pushforward.train(
        "gan", data=f"npy:{folder / 'x.npy'}", steps=4, batch_size=32, out="m", progress=False
    )
    (page,) = write_explorer(run.path)
    _open(browser, page)
    assert browser.find_element(By.ID, "where").text.startswith("step 0 of 4")
    assert "<!--<script>" in browser.find_element(By.TAG_NAME, "h1").text
