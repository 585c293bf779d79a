"""Keyboard use, labels on every control, status in words, a narrow window."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ready

from tests.console.conftest import Page, Remote, Stack

UNLABELLED = """
return [...document.querySelectorAll('main input, main select, main textarea, main button')]
  .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label')
    && !(c.tagName === 'BUTTON' && c.textContent.trim()))
  .map((c) => c.outerHTML);
"""
# a state shown by a badge's colour is also its word
COLOUR_ONLY = """
return [...document.querySelectorAll('.badge')].filter((b) => !b.textContent.trim())
  .map((b) => b.outerHTML);
"""
WIDE = "return document.documentElement.scrollWidth > window.innerWidth + 1"


def test_the_tree_works_from_the_keyboard_and_every_control_is_labelled(
    page: Page, stack: Stack, remote: Remote
):
    stack.register("keys", remote)
    page.sign_in("gov")
    page.open("/console/connections/keys")
    page.heading("Connection keys")
    body = page.browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # the first stop is the skip link
    assert page.browser.switch_to.active_element.text == "Skip to content"
    toggle = page.browser.find_element(
        By.XPATH, "//button[@aria-label='Show the children of keys']"
    )
    toggle.send_keys(Keys.ENTER)
    page.wait(
        ready.text_to_be_present_in_element((By.CSS_SELECTOR, "ul[role=tree]"), remote.database)
    )
    assert toggle.get_attribute("aria-expanded") == "true"
    # a state is a word next to its colour
    assert "present" in page.browser.find_element(By.CSS_SELECTOR, "ul[role=tree]").text
    assert page.browser.execute_script(UNLABELLED) == []
    assert page.browser.execute_script(COLOUR_ONLY) == []
    for path in (
        "/console/connections/new",
        "/console/jobs",
        "/console/requests",
        "/console/access",
    ):
        page.open(path)
        page.wait(ready.presence_of_element_located((By.CSS_SELECTOR, "main h1")))
        assert page.browser.execute_script(UNLABELLED) == [], path
        assert page.browser.execute_script(COLOUR_ONLY) == [], path


def test_a_narrow_window_keeps_everything_reachable(page: Page, stack: Stack, remote: Remote):
    stack.register("narrow", remote)
    page.sign_in("gov")
    page.browser.set_window_size(420, 900)
    try:
        for path, shot in (
            ("/console/connections/narrow", "narrow"),
            ("/console/connections", None),
            ("/console/connections/new", "narrow-register"),
            ("/console/jobs", None),
            ("/console/requests", None),
            ("/console/access?user=alice&catalog=hive&schema=sales&table=orders", "narrow-access"),
            ("/console/upgrade", None),
        ):
            page.open(path)
            page.wait(ready.presence_of_element_located((By.CSS_SELECTOR, "main h1")))
            if "access" in path:
                page.click("Explain")
                page.text("ALLOWED")
            assert not page.browser.execute_script(WIDE), path  # no sideways scrolling
            assert page.browser.find_element(By.ID, "signout").is_displayed()
            if shot:
                page.shot(shot)
    finally:
        page.browser.set_window_size(1280, 900)


def test_the_technology_tabs_follow_the_arrow_keys(page: Page, stack: Stack):
    page.sign_in("gov")
    page.open("/console/connections/new")
    page.heading("Register a connection")
    tab = page.browser.find_element(By.XPATH, "//button[@role='tab'][.='PostgreSQL']")
    assert tab.get_attribute("aria-selected") == "true" and tab.get_attribute("tabindex") == "0"
    tab.send_keys(Keys.ARROW_RIGHT)
    page.text("Trino endpoint")
    focused = page.browser.switch_to.active_element
    assert focused.text == "Trino" and focused.get_attribute("aria-selected") == "true"
    focused.send_keys(Keys.ARROW_LEFT)
    page.text("PostgreSQL endpoint")
    assert page.browser.switch_to.active_element.text == "PostgreSQL"


def test_every_technology_and_method_of_the_register_form_is_labelled(page: Page, stack: Stack):
    page.sign_in("gov")
    page.open("/console/connections/new")
    page.heading("Register a connection")
    for technology in ("Trino", "Snowflake", "Databricks", "PostgreSQL"):
        page.browser.find_element(By.XPATH, f"//button[@role='tab'][.='{technology}']").click()
        methods = page.browser.find_elements(By.NAME, "method")
        options = methods[0].find_elements(By.TAG_NAME, "option") if methods else [None]
        for index in range(len(options)):
            if methods:
                chooser = page.browser.find_element(By.NAME, "method")
                chooser.find_elements(By.TAG_NAME, "option")[index].click()
            assert page.browser.execute_script(UNLABELLED) == [], technology
    page.browser.find_element(By.XPATH, "//button[@role='tab'][.='Trino']").click()
    chooser = page.browser.find_element(By.NAME, "method")
    chooser.find_elements(By.TAG_NAME, "option")[2].click()  # OAuth client certificate
    page.text("Certificate (PEM): from a file")
    page.text("Certificate thumbprint")
    page.shot("register-trino")
