#!/usr/bin/env python3
"""A collector's morning in the relance console, driven in Debian's headless chromium
through chromedriver (Selenium WebDriver). Used by tests/relance/console.rs.

    console_browser.py BASE_URL SHOTS_DIR PROMISE_DATE CALL_DATE OTHER_COLLECTORS_CUSTOMER

Users (made by the test): alice (collector, password alice-password-1), vera (viewer,
vera-password-1), claire (credit_manager, claire-password-1). Prints one JSON object of
what it saw; exits 1 with the reason on the first thing that is not as expected.
"""

import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

BASE, SHOTS, PROMISE_DATE, CALL_DATE, OTHERS = sys.argv[1:6]
os.makedirs(SHOTS, exist_ok=True)


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1366,900", "--lang=en-US"):
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
        # The page is replaced while the condition looks at it: an element of the old
        # page is stale, one of the new may not be there yet; both mean "not yet".
        WebDriverWait(d, 60, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(condition)
    except Exception:
        fail(f"{what}; the page is {d.current_url}:\n{d.find_element(By.TAG_NAME, 'body').text[:2000]}")


def login(d, user, password):
    d.get(BASE + "/")
    if "/login" not in d.current_url:
        fail(f"an anonymous visit was not sent to the sign-in page: {d.current_url}")
    d.find_element(By.ID, "username").send_keys(user)
    d.find_element(By.ID, "password").send_keys(password)
    d.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait(d, lambda d: "/login" not in d.current_url, f"{user} could not sign in")


def logout(d):
    d.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait(d, lambda d: "/login" in d.current_url, "signing out did not lead to the sign-in page")


seen = {}
d = browser()
try:
    # A wrong password is refused.
    d.get(BASE + "/login")
    d.find_element(By.ID, "username").send_keys("alice")
    d.find_element(By.ID, "password").send_keys("not the password")
    d.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".error"), "a wrong password showed no error")
    seen["wrong_password"] = d.find_element(By.CSS_SELECTOR, ".error").text

    # The collector's morning: the call queue, a task, its outcome.
    login(d, "alice", "alice-password-1")
    d.get(BASE + "/lang/en")
    d.get(BASE + "/tasks")
    tasks = d.find_elements(By.CSS_SELECTOR, "article.task")
    if not tasks:
        fail("alice has no call task in her queue")
    seen["tasks"] = len(tasks)
    first = tasks[0]
    link = first.find_element(By.CSS_SELECTOR, "h2 a")
    customer = link.get_attribute("href").rsplit("/", 1)[1]
    seen["customer"] = customer
    seen["tel_links"] = [a.get_attribute("href") for a in first.find_elements(By.CSS_SELECTOR, "a.call")]
    d.save_screenshot(os.path.join(SHOTS, "console-tasks.png"))
    first.find_element(By.CSS_SELECTOR, "input[name='outcome'][value='promise']").click()
    date_input = first.find_element(By.CSS_SELECTOR, "input[name='promise_date']")
    d.execute_script("arguments[0].value = arguments[1]", date_input, PROMISE_DATE)
    callback_input = first.find_element(By.CSS_SELECTOR, "input[name='callback']")
    d.execute_script("arguments[0].value = arguments[1]", callback_input, CALL_DATE)
    first.find_element(By.CSS_SELECTOR, "input[name='note']").send_keys("will pay by transfer")
    first.find_element(By.CSS_SELECTOR, "form.outcome button").click()
    wait(d, lambda d: f"/customers/{customer}" in d.current_url,
         "recording the outcome did not lead to the customer's page")
    seen["promises"] = d.find_element(By.ID, "promises").text
    seen["audit"] = d.find_element(By.ID, "audit").text
    seen["timeline_rows"] = len(d.find_elements(By.CSS_SELECTOR, "#timeline tbody tr"))
    d.find_element(By.ID, "note-text").send_keys("asked for a copy of the invoice <b>by email</b>")
    d.find_element(By.CSS_SELECTOR, "form[action$='/notes'] button").click()
    wait(d, lambda d: "asked for a copy" in d.find_element(By.ID, "notes").text, "the note did not appear")
    seen["notes"] = d.find_element(By.ID, "notes").text
    seen["bold_in_notes"] = len(d.find_elements(By.CSS_SELECTOR, "#notes b"))
    d.save_screenshot(os.path.join(SHOTS, "console-customer.png"))

    # A call scheduled by hand: recorded in the action log, made a task by the outbox.
    d.find_element(By.ID, "call-reason").send_keys("send the signed delivery note")
    due_input = d.find_element(By.ID, "call-due")
    d.execute_script("arguments[0].value = arguments[1]", due_input, CALL_DATE)
    d.find_element(By.CSS_SELECTOR, "#call-form button").click()
    wait(d, lambda d: "call_scheduled" in d.find_element(By.ID, "audit").text,
         "scheduling a call left no trace in the audit trail")
    seen["call_audit"] = d.find_element(By.ID, "audit").text

    def task_listed(d):
        d.get(BASE + "/tasks")
        return "send the signed delivery note" in d.find_element(By.TAG_NAME, "main").text
    wait(d, task_listed, "the scheduled call never reached alice's tasks")
    seen["scheduled_task"] = True

    # Another collector's customer: shown, but no form, and a post is refused.
    d.get(BASE + "/customers/" + OTHERS)
    seen["others_forms"] = len(d.find_elements(
        By.CSS_SELECTOR, "form[action*='/promise'], form[action*='/pause'], form[action*='/call'], form[action*='/dispute']"))
    status = d.execute_script(
        "const f = new URLSearchParams({reason: 'not mine', csrf: document.querySelector(\"form[action='/logout'] input[name='csrf']\").value});"
        "return fetch('/customers/' + arguments[0] + '/pause', {method: 'POST', body: f}).then(r => r.status)",
        OTHERS)
    seen["others_post"] = status
    d.get(BASE + "/customers/" + customer)

    # A form posted without its token is refused, from the page itself.
    status = d.execute_script(
        "return fetch('/customers/' + arguments[0] + '/pause', {method: 'POST', body: new URLSearchParams({reason: 'no token'})}).then(r => r.status)",
        customer)
    seen["post_without_token"] = status
    logout(d)

    # A viewer sees the customer, and no form that changes it.
    login(d, "vera", "vera-password-1")
    d.get(BASE + "/customers/" + customer)
    seen["viewer_forms"] = len(d.find_elements(
        By.CSS_SELECTOR, "form[action*='/promise'], form[action*='/pause'], form[action*='/dispute']"))
    seen["viewer_sees_balance"] = d.find_element(By.ID, "balance-open").text
    status = d.execute_script(
        "const f = new URLSearchParams({reason: 'viewer', csrf: document.querySelector(\"form[action='/logout'] input[name='csrf']\").value});"
        "return fetch('/customers/' + arguments[0] + '/pause', {method: 'POST', body: f}).then(r => r.status)",
        customer)
    seen["viewer_post"] = status
    logout(d)

    # The credit manager's dashboard and customer list.
    login(d, "claire", "claire-password-1")
    d.get(BASE + "/")
    # Right after the start the figures may still be computed: the page reloads itself.
    wait(d, lambda d: not d.find_elements(By.ID, "computing"), "the dashboard's figures were never computed")
    cells = d.find_elements(By.CSS_SELECTOR, "section[aria-labelledby='aging-title'] tbody tr td")
    seen["dashboard_open"] = cells[1].text if len(cells) > 1 else None
    seen["dashboard_charts"] = len(d.find_elements(By.CSS_SELECTOR, ".chart svg"))
    seen["dashboard_over_limit"] = d.find_element(By.ID, "over-limit").text
    d.save_screenshot(os.path.join(SHOTS, "console-dashboard.png"))
    d.get(BASE + "/customers?q=" + customer)
    seen["search_rows"] = len(d.find_elements(By.CSS_SELECTOR, "table.list tbody tr a"))
    d.get(BASE + "/customers")
    d.save_screenshot(os.path.join(SHOTS, "console-customers.png"))
    # The action log, and one action: why, its message, its attempts.
    d.get(BASE + "/actions?kind=email")
    links = d.find_elements(By.CSS_SELECTOR, "#actions tbody a[href^='/actions/']")
    if not links:
        fail("the action log lists no email")
    links[0].click()
    wait(d, lambda d: d.find_elements(By.ID, "msg-title"), "an action's page did not open")
    seen["action_message"] = d.find_element(By.CSS_SELECTOR, "section[aria-labelledby='msg-title']").text
    seen["manager_retry_forms"] = len(d.find_elements(By.CSS_SELECTOR, "form[action$='/retry'], form[action$='/cancel']"))
    d.save_screenshot(os.path.join(SHOTS, "console-action.png"))
    # A report: its chart and tables, with their CSV downloads.
    d.get(BASE + "/reports/aging")
    seen["report_tables"] = len(d.find_elements(By.CSS_SELECTOR, "main section table"))
    seen["report_csv_links"] = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "a[download]")]
    seen["report_chart"] = len(d.find_elements(By.CSS_SELECTOR, ".chart svg")) == 1
    seen["report_csv"] = d.execute_script("return fetch(arguments[0]).then(r => r.text())", seen["report_csv_links"][0])
    d.save_screenshot(os.path.join(SHOTS, "console-reports.png"))
    # The rules: the scripts, their tests' results, and the explain view.
    d.get(BASE + "/rules")
    seen["rule_tests"] = d.find_element(By.ID, "rule-tests").text
    d.find_element(By.ID, "explain-customer").send_keys(customer)
    d.find_element(By.CSS_SELECTOR, "form[action='/rules/explain'] button").click()
    wait(d, lambda d: d.find_elements(By.ID, "decisions"), "the explain view did not open")
    seen["explain"] = d.find_element(By.TAG_NAME, "main").text
    d.save_screenshot(os.path.join(SHOTS, "console-explain.png"))
finally:
    d.quit()

print(json.dumps(seen))
