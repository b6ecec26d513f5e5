#!/usr/bin/env python3
"""A debtor on relance's self-service page, in Debian's headless chromium through
chromedriver (Selenium WebDriver). Used by tests/relance/portal_page.rs.

    portal_browser.py LINK SHOTS_DIR PROMISE_DATE PROMISED_INVOICE DISPUTED_INVOICE

Opens LINK (the link of a reminder the SMTP peer received), enters the account, records
a promise to pay PROMISED_INVOICE by PROMISE_DATE, reports a disagreement about
DISPUTED_INVOICE, and downloads the EPC QR code of PROMISED_INVOICE, decoded with
zbarimg (Debian's zbar-tools). Prints one JSON object of what it saw; exits 1 with the
reason on the first thing that is not as expected.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.support.ui import Select, WebDriverWait

LINK, SHOTS, PROMISE_DATE, PROMISED, DISPUTED = sys.argv[1:6]
os.makedirs(SHOTS, exist_ok=True)


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1100,1400", "--lang=en-US"):
        options.add_argument(arg)
    # A loaded machine may fail to start the browser once ("DevToolsActivePort file
    # doesn't exist"): try again before giving up.
    for attempt in range(3):
        try:
            return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        except Exception as e:  # noqa: BLE001 - reported below after the last attempt
            last = e
            time.sleep(2)
    fail(f"the browser did not start: {last}")


def wait(d, condition, what):
    try:
        WebDriverWait(d, 60, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(condition)
    except Exception:
        fail(f"{what}; the page is {d.current_url}:\n{d.find_element(By.TAG_NAME, 'body').text[:2000]}")


def section(d, number):
    return d.find_element(By.ID, "invoice-" + number)


seen = {}
d = browser()
try:
    d.get(LINK)
    seen["landing"] = d.find_element(By.TAG_NAME, "main").text
    d.save_screenshot(os.path.join(SHOTS, "portal-landing.png"))
    d.find_element(By.ID, "enter").click()
    wait(d, lambda d: d.current_url.endswith("/account"), "entering the account did not show it")
    seen["invoices"] = [e.get_attribute("id") for e in d.find_elements(By.CSS_SELECTOR, "section.invoice")]
    seen["total"] = d.find_element(By.ID, "total").text
    seen["references"] = [e.get_attribute("textContent") for e in d.find_elements(By.CSS_SELECTOR, "dd.reference")]
    seen["qr_codes"] = len(d.find_elements(By.CSS_SELECTOR, ".qr svg"))
    seen["statement_link"] = d.find_element(By.PARTIAL_LINK_TEXT, "statement").get_attribute("href")
    # Open the payment details of the first invoice for the picture.
    section(d, PROMISED).find_element(By.CSS_SELECTOR, "details.pay-details summary").click()
    d.save_screenshot(os.path.join(SHOTS, "portal-account.png"))

    # The EPC QR code, as a banking app would read it.
    png = section(d, PROMISED).find_element(By.CSS_SELECTOR, ".qr a").get_attribute("href")
    qr_file = os.path.join(SHOTS, "qr.png")
    with urllib.request.urlopen(png) as r, open(qr_file, "wb") as f:
        f.write(r.read())
    decoded = subprocess.run(["zbarimg", "--raw", "-q", qr_file], capture_output=True, text=True)
    if decoded.returncode != 0:
        fail(f"zbarimg could not read the QR code: {decoded.stderr}")
    seen["qr"] = decoded.stdout.rstrip("\n")

    # A promise to pay: a date and an amount.
    s = section(d, PROMISED)
    s.find_element(By.XPATH, ".//summary[contains(., 'date to pay')]").click()
    date_input = s.find_element(By.CSS_SELECTOR, "form.promise input[name='date']")
    d.execute_script("arguments[0].value = arguments[1]", date_input, PROMISE_DATE)
    s.find_element(By.CSS_SELECTOR, "form.promise button").click()
    wait(d, lambda d: d.find_elements(By.ID, "done"), "the promise was not confirmed")
    seen["promise_done"] = d.find_element(By.ID, "done").text
    seen["promised_tag"] = section(d, PROMISED).find_element(By.CSS_SELECTOR, ".tag").text

    # A disagreement: a reason from the list and the customer's words.
    s = section(d, DISPUTED)
    s.find_element(By.XPATH, ".//summary[contains(., 'disagreement')]").click()
    Select(s.find_element(By.CSS_SELECTOR, "form.dispute select[name='reason']")).select_by_value("wrong_amount")
    s.find_element(By.CSS_SELECTOR, "form.dispute textarea").send_keys("The agreed price was <b>250</b>, see our order.")
    s.find_element(By.CSS_SELECTOR, "form.dispute button").click()
    wait(d, lambda d: "disagreement is recorded" in d.find_element(By.TAG_NAME, "main").text,
         "the disagreement was not confirmed")
    seen["dispute_done"] = d.find_element(By.ID, "done").text
    seen["disputed_tag"] = section(d, DISPUTED).find_element(By.CSS_SELECTOR, ".tag").text
    seen["dispute_forms_left"] = len(section(d, DISPUTED).find_elements(By.CSS_SELECTOR, "form"))
    d.save_screenshot(os.path.join(SHOTS, "portal-done.png"))

    # The page's policy lets no script reach out (the link is in its address).
    seen["csp"] = d.execute_script("return document.querySelectorAll('script').length")
    # A tampered link gets the neutral page.
    d.get(LINK[:-3] + ("AAA" if not LINK.endswith("AAA") else "BBB"))
    seen["tampered"] = d.find_element(By.TAG_NAME, "h1").text
finally:
    d.quit()
print(json.dumps(seen))
