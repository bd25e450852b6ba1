"""The hosted pages in a real browser: Debian's Chromium, headless, driven by Selenium
through Debian's chromedriver (both paths given: Selenium Manager never runs, nothing is
downloaded). A person signs in to a relying party built on Authlib's OpenID Connect
client, by password (with JavaScript turned off) and by SMS code (in Persian), allows
it, and lands on its redirect URI, where the client has exchanged the code with PKCE and
validated the ID token; the ID token is checked again here with PyJWT.

The walk through every page in English and Persian also writes their screenshots to
docs/screenshots/ (docs/browser-sign-in.md shows them), at a phone's size.

Without Chromium (``make test`` installs it: ``apt-get install chromium
chromium-driver``) these tests are skipped with that message; tests/test_oidc.py drives
the same flows by posting the pages' forms and always runs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from tests.conftest import PASSWORD, PHONE
from tests.oidc_client import RelyingParty, verify_id_token

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PHONE_SCREEN = (412, 915)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--force-device-scale-factor=1",
    "--hide-scrollbars",
)

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason="Debian's chromium and chromium-driver are not installed "
    "(`make test` installs them: apt-get install chromium chromium-driver)",
)


@pytest.fixture
def browser() -> Iterator[Callable[..., WebDriver]]:
    """Start Chromium with a fresh profile (no cookie of another test); closed after."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, if ever asked, may not download
    started: list[tuple[WebDriver, str]] = []

    def start(*, javascript: bool = True, language: str = "en") -> WebDriver:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        profile = tempfile.mkdtemp(prefix="authserver-chromium-")
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--lang={language}")
        prefs = {"intl.accept_languages": language}
        if not javascript:
            prefs["profile.managed_default_content_settings.javascript"] = 2
        options.add_experimental_option("prefs", prefs)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        # A phone's viewport (a headless window is never narrower than 500 px).
        width, height = PHONE_SCREEN
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
        )
        driver.set_page_load_timeout(30)
        started.append((driver, profile))
        return driver

    yield start
    for driver, profile in started:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def fill(driver: WebDriver, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = driver.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)


def navigate(driver: WebDriver, click: Callable[[], None]) -> None:
    """Do ``click`` and wait until the next page has replaced this one."""
    old = driver.find_element(By.TAG_NAME, "html")
    click()
    WebDriverWait(driver, 30).until(lambda _: is_gone(old))


def is_gone(element: WebElement) -> bool:
    """Whether ``element``'s page was replaced.

    Mid-navigation chromedriver may answer "Node with given id does not belong
    to the document" (a plain WebDriverException) instead of a stale reference.
    """
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return True
        raise
    return False


def press(driver: WebDriver, text: str | None = None) -> None:
    """Press a form's button (the one showing ``text``, else the first)."""
    buttons = driver.find_elements(By.CSS_SELECTOR, "form button")
    button = next((b for b in buttons if text is None or b.text == text), None)
    assert button is not None, [b.text for b in buttons]
    navigate(driver, button.click)


def follow(driver: WebDriver, selector: str) -> None:
    navigate(driver, driver.find_element(By.CSS_SELECTOR, selector).click)


def callback_result(driver: WebDriver, party: RelyingParty) -> dict:
    assert driver.current_url.startswith(party.redirect_uri), driver.current_url
    return json.loads(driver.find_element(By.TAG_NAME, "body").text)


def shoot(driver: WebDriver, name: str, language: str) -> None:
    """Keep a screenshot of the page; rewritten only when the page looks different."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.{language}.png"
    # The blinking caret would make every picture differ from the last.
    driver.execute_script("document.activeElement.style.caretColor = 'transparent'")
    picture = driver.get_screenshot_as_png()
    if not path.exists() or path.read_bytes() != picture:
        path.write_bytes(picture)


def assert_fits_a_phone(driver: WebDriver) -> None:
    width, viewport = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert viewport == PHONE_SCREEN[0]
    assert width <= viewport, f"{driver.current_url} is {width}px wide"


def assert_accessible_form(driver: WebDriver) -> None:
    """Every visible input has a label; the language and direction are declared."""
    html = driver.find_element(By.TAG_NAME, "html")
    assert html.get_attribute("lang") in ("en", "fa")
    assert html.get_attribute("dir") == ("rtl" if html.get_attribute("lang") == "fa" else "ltr")
    for field in driver.find_elements(By.CSS_SELECTOR, "input:not([type=hidden])"):
        labels = driver.find_elements(By.CSS_SELECTOR, f"label[for='{field.get_attribute('id')}']")
        assert labels and labels[0].text, field.get_attribute("name")


def test_password_sign_in_without_javascript(browser, site, relying_party, user):
    driver = browser(javascript=False)
    driver.get(relying_party.url + "/login")
    assert "/signin" in driver.current_url
    assert driver.switch_to.active_element.get_attribute("name") == "phone"
    fill(driver, {"phone": "06 12 97 56 34", "password": "not the password"})
    press(driver)
    # The mistake is announced, and focus waits in the password field.
    alert = driver.find_element(By.CSS_SELECTOR, "[role=alert]")
    assert "Wrong phone number or password" in alert.text
    assert driver.switch_to.active_element.get_attribute("name") == "password"
    fill(driver, {"password": PASSWORD})
    press(driver)
    assert "/consent" in driver.current_url
    assert "Tenant portal" in driver.find_element(By.TAG_NAME, "h1").text
    press(driver, "Allow")
    result = callback_result(driver, relying_party)
    claims = verify_id_token(site, relying_party, result["id_token"])
    assert claims["amr"] == ["pwd"] and claims["sub"] == user
    assert result["iss"] == site.url


def test_sms_code_sign_in_in_persian(browser, site, relying_party, gateway):
    driver = browser(language="fa")
    driver.get(relying_party.url + "/login?ui_locales=fa")
    html = driver.find_element(By.TAG_NAME, "html")
    assert (html.get_attribute("lang"), html.get_attribute("dir")) == ("fa", "rtl")
    follow(driver, "a[href*='/signin/code']")
    fill(driver, {"phone": "0612975634"})
    press(driver)
    assert "/signin/code/verify" in driver.current_url
    fill(driver, {"code": gateway.last_code(PHONE)})
    press(driver)
    assert "/consent" in driver.current_url
    follow(driver, "button[value=allow]")
    result = callback_result(driver, relying_party)
    claims = verify_id_token(site, relying_party, result["id_token"])
    assert claims["amr"] == ["otp", "sms"]
    assert result["userinfo"]["phone_number"] == PHONE


def test_focus_moves_through_the_form_in_reading_order(browser, site, relying_party):
    driver = browser()
    driver.get(relying_party.url + "/login")
    order = []
    for _ in range(4):
        active = driver.switch_to.active_element
        order.append(active.get_attribute("name") or active.tag_name)
        active.send_keys(Keys.TAB)
    # The fields, their button, then the other ways to sign in.
    assert order == ["phone", "password", "button", "a"]


@pytest.mark.parametrize("language", ["en", "fa"])
def test_every_page_in_both_languages(browser, site, relying_party, user, language):
    """Walk every page (checking it fits a phone and labels its fields) and keep its
    screenshot for the documentation."""
    driver = browser(language=language)
    # Each language's walk sends its codes to its own numbers (the SMS cooldown).
    code_phone, reset_phone = {"en": ("+33698765401", "+33698765402")}.get(
        language, ("+33698765403", "+33698765404")
    )

    def page(name: str) -> None:
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == language
        assert_fits_a_phone(driver)
        assert_accessible_form(driver)
        shoot(driver, name, language)

    driver.get(relying_party.url + "/login")
    driver.get(driver.current_url + f"&lang={language}")
    page("sign-in")
    fill(driver, {"phone": PHONE, "password": "wrong password"})
    press(driver)
    page("sign-in-error")
    follow(driver, "a[href*='/signin/code']")
    page("code-request")
    fill(driver, {"phone": code_phone})
    press(driver)
    page("code-verify")
    follow(driver, "a[href*='/signin?']")
    fill(driver, {"phone": PHONE, "password": PASSWORD})
    press(driver)
    page("consent")
    follow(driver, "button[value=allow]")
    callback_result(driver, relying_party)

    driver.get(site.url + "/signin")
    page("signed-in")
    driver.get(site.url + "/oauth/logout")
    page("sign-out")
    press(driver)
    page("signed-out")

    driver.get(site.url + "/signup")
    page("sign-up")
    driver.get(site.url + "/password-reset")
    page("reset-request")
    fill(driver, {"phone": reset_phone})
    press(driver)
    page("reset-verify")
    driver.get(
        site.url + "/oauth/authorize?response_type=code&client_id="
        f"{relying_party.client_id}&redirect_uri=https://evil.example.com/"
    )
    page("error")
