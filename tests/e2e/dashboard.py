#!/usr/bin/env python3
"""The dashboard of a running `caudal run` (the demo project), driven in headless Chromium.

    python tests/e2e/dashboard.py --base-url http://127.0.0.1:PORT/ --token cdl_... [--artifacts DIR]

scripts/e2e.sh starts the demo daemon and runs this with an analyst token. Steps, as a person
would take them: sign in with the token, see the health badge and the pipelines, see the firing
alert in the banner and the Alerts view, open a delivery
from the live feed that has rejected rows and read its violations, trigger the daily_metrics job
for 2026-11-02, see its run succeed in the runs view; then the overview at a phone's size.

Synchronisation is by explicit waits on the page's stable hooks (ids, data-* attributes), never by
fixed sleeps. On failure a screenshot and the page source go to --artifacts and their paths are
printed; the exit code is 1.
"""

import argparse
import os
import re
import sys
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

JOB = "daily_metrics"
JOB_DATE = "2026-11-02"
PIPELINE = "sales"
TOKEN_KEY = "caudal.token"
# The violation codes a delivery report uses (frictionless' words, see README "Contracts").
CODES = re.compile(
    r"type-error|missing-cell|extra-cell|blank-row|blank-label|duplicate-label|missing-label"
    r"|extra-label|constraint-error|unique-error|row-constraint|table-error|format-error"
)


# The views re-render as they poll (the feed every 2 s): an element found a moment ago may be
# gone, or covered, by the time it is used. Waits retry on these.
RERENDER = (StaleElementReferenceException, NoSuchElementException, ElementClickInterceptedException)


class Failure(Exception):
    """A check that did not hold; its message says what was expected and what was seen."""


def brief(text, n=160):
    """An element's text on one line, cut to n characters."""
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


class Dashboard:
    def __init__(self, driver, base_url, timeout):
        self.d = driver
        self.base = base_url
        self.timeout = timeout
        self.step = "start"

    # --- helpers -----------------------------------------------------------------------------

    def wait(self, what, condition, timeout=None):
        """Wait until condition(driver) is truthy; fail with `what` on time-out."""
        try:
            return WebDriverWait(
                self.d,
                timeout or self.timeout,
                poll_frequency=0.2,
                ignored_exceptions=RERENDER,
            ).until(condition)
        except TimeoutException:
            raise Failure(f"timed out after {timeout or self.timeout} s waiting for {what}") from None

    def visible(self, css, what=None, timeout=None):
        return self.wait(
            what or f"{css} to be visible",
            EC.visibility_of_element_located((By.CSS_SELECTOR, css)),
            timeout,
        )

    def shown(self, css):
        """The first displayed element matching css, or None (no waiting)."""
        for el in self.d.find_elements(By.CSS_SELECTOR, css):
            try:
                if el.is_displayed():
                    return el
            except StaleElementReferenceException:
                pass
        return None

    def nav(self, link_id, expect_css, present_only=False):
        """Follow a nav link (by its href, so a collapsed menu on small screens does not matter)
        and wait for the view it leads to (visible, or only in the page: an empty table may have
        no area)."""
        link = self.wait(f"the nav link a#{link_id}", EC.presence_of_element_located((By.ID, link_id)))
        href = link.get_attribute("href")
        # The view being left may hold the same hook (the jobs view lists recent runs in a
        # table#runs too): when the route changes, wait for the old one to go first.
        old = self.d.find_elements(By.CSS_SELECTOR, expect_css) if href != self.d.current_url else []
        if link.is_displayed():
            link.click()
        elif href:
            self.d.get(href)
        else:
            raise Failure(f"a#{link_id} is hidden and has no href")
        what = f"{expect_css} after following a#{link_id} ({href})"
        for el in old:
            try:  # a route that shows the same view again may keep its element: then go on
                WebDriverWait(self.d, 5, poll_frequency=0.1).until(EC.staleness_of(el))
            except TimeoutException:
                break
        if present_only:
            return self.wait(what, EC.presence_of_element_located((By.CSS_SELECTOR, expect_css)))
        return self.visible(expect_css, what)

    def js_set_value(self, el, value):
        """Set an input's value the way typing does (works for <input type=date> whatever the
        locale's format, and for frameworks that listen to input/change)."""
        self.d.execute_script(
            """
            const [el, v] = arguments;
            const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
            set.call(el, v);
            el.dispatchEvent(new Event('input', {bubbles: true}));
            el.dispatchEvent(new Event('change', {bubbles: true}));
            """,
            el,
            value,
        )

    # --- the steps -----------------------------------------------------------------------------

    def open(self):
        self.step = "open the dashboard"
        self.d.get(self.base)
        self.wait("the page to load", lambda d: d.execute_script("return document.readyState") == "complete")
        kind = self.d.execute_script("return document.contentType")
        if kind != "text/html":
            body = self.d.execute_script("return document.body ? document.body.innerText : ''") or ""
            raise Failure(
                f"{self.base} is no dashboard: it answers {kind!r}, not an HTML page "
                f"(the page says: {body.strip()[:300]!r})"
            )
        try:
            WebDriverWait(self.d, self.timeout, poll_frequency=0.2).until(
                lambda d: d.find_elements(By.ID, "token-form") or d.find_elements(By.ID, "health")
            )
        except TimeoutException:
            body = self.d.execute_script("return document.body ? document.body.innerText : ''") or ""
            raise Failure(
                f"{self.base} shows no dashboard: neither #token-form nor #health appeared within "
                f"{self.timeout} s (title {self.d.title!r}; the page says: {body.strip()[:300]!r})"
            ) from None

    def sign_in(self, token):
        self.step = "sign in with the token"
        # The form may be shown at once, or only a moment later (after the app's first request).
        try:
            form = WebDriverWait(self.d, 5, poll_frequency=0.2).until(
                EC.visibility_of_element_located((By.ID, "token-form"))
            )
        except TimeoutException:
            form = None
        if form is not None:
            field = form.find_element(By.ID, "token-input")
            field.clear()
            field.send_keys(token)
            form.find_element(By.ID, "token-save").click()
            self.wait(
                "#token-form to close after saving the token",
                EC.invisibility_of_element_located((By.ID, "token-form")),
            )
            how = "the token form"
        else:
            # No form on screen (e.g. anonymous reading is allowed): keep the token where the
            # form would, and reload.
            self.d.execute_script("localStorage.setItem(arguments[0], arguments[1])", TOKEN_KEY, token)
            self.d.refresh()
            how = f"localStorage[{TOKEN_KEY!r}] (no #token-form was shown)"
        stored = self.d.execute_script("return localStorage.getItem(arguments[0])", TOKEN_KEY)
        if stored != token:
            raise Failure(f"after signing in through {how}, localStorage[{TOKEN_KEY!r}] is {stored!r}")
        self.wait(
            "#sign-out to be present once signed in",
            EC.presence_of_element_located((By.ID, "sign-out")),
        )
        print(f"  signed in through {how}")

    def health(self):
        self.step = "see the health badge"
        badge = self.visible("#health", "the health badge #health")
        status = self.wait(
            "#health to get a data-status",
            lambda d: (badge.get_attribute("data-status") or "").strip() or False,
        )
        print(f"  #health data-status={status!r}")

    def alerts(self):
        """The demo quarantines 7 of 180 rows, over its sales_quality alert's 2%: the banner on
        every page names the firing alert, and the Alerts view lists it with what is wrong."""
        self.step = "see the firing alert"
        banner = self.wait(
            "the firing-alert banner #alert-banner naming sales_quality",
            lambda d: (b := self.shown("#alert-banner")) and "sales_quality" in b.text and b,
            timeout=30,
        )
        print(f"  banner: {brief(banner.text)!r}")
        row = self.nav("nav-alerts", 'table#alerts tr[data-alert="sales_quality"][data-state="firing"]')
        if "rows rejected" not in row.text:
            raise Failure(f"the firing alert's row does not say what is wrong: {row.text!r}")
        print(f"  alerts: {brief(row.text)!r}")

    def pipelines(self):
        self.step = "see the pipelines"
        self.nav("nav-overview", "table#pipelines")
        row = self.visible(
            f'table#pipelines tr[data-pipeline="{PIPELINE}"]',
            f'the row tr[data-pipeline="{PIPELINE}"] in table#pipelines',
        )
        if PIPELINE not in row.text:
            raise Failure(f"the pipelines row of {PIPELINE!r} does not show its name: {row.text!r}")
        print(f"  pipelines: {brief(row.text)!r}")

    def rejected_rows(self):
        self.step = "open a delivery with rejected rows from the feed"
        self.nav("nav-overview", "table#feed")
        ids = self.wait(
            "deliveries in the live feed (table#feed tr[data-delivery-id])",
            lambda d: list(
                dict.fromkeys(
                    tr.get_attribute("data-delivery-id")
                    for tr in d.find_elements(By.CSS_SELECTOR, "table#feed tr[data-delivery-id]")
                )
            ),
        )
        seen = []
        for i in ids:
            self.nav("nav-overview", "table#feed")
            css = f'table#feed tr[data-delivery-id="{i}"] a.delivery-link'

            def follow(d):
                link = d.find_element(By.CSS_SELECTOR, css)
                if not link.is_displayed():
                    return False
                href = link.get_attribute("href") or ""
                link.click()
                return href or "(no href)"

            href = self.wait(f"the a.delivery-link of delivery {i} in the feed to be clickable", follow)
            if not href.endswith(f"#/deliveries/{i}"):
                raise Failure(f"the feed's link of delivery {i} goes to {href!r}, not #/deliveries/{i}")
            self.visible(
                f'section#delivery[data-delivery-id="{i}"]',
                f'the delivery view section#delivery[data-delivery-id="{i}"]',
            )
            # Rows of the violations table that name a code; a delivery without violations
            # shows none (and may have no table at all), so this wait is short.
            try:
                rows = WebDriverWait(self.d, 5, poll_frequency=0.2, ignored_exceptions=RERENDER).until(
                    lambda d: [
                        r
                        for r in d.find_elements(By.CSS_SELECTOR, "table#violations tbody tr")
                        if r.is_displayed() and CODES.search(r.text)
                    ]
                )
            except TimeoutException:
                texts = [brief(r.text, 80) for r in self.d.find_elements(By.CSS_SELECTOR, "table#violations tbody tr")]
                seen.append(f"delivery {i}: {len(texts)} row(s) in table#violations tbody {texts[:3]!r}")
                continue
            codes = sorted({m for r in rows for m in CODES.findall(r.text)})
            print(f"  delivery {i}: {len(rows)} violation row(s), codes {codes}; first: {brief(rows[0].text)!r}")
            return
        raise Failure(
            "no delivery in the feed showed a violation row naming a rule or code "
            f"(the demo quarantines 7 rows over its 3 deliveries); feed ids {ids}; seen: {seen}"
        )

    def runs_ids(self):
        self.nav("nav-runs", "table#runs", present_only=True)
        return self.wait(
            "the ids of table#runs",
            lambda d: [{r.get_attribute("data-run-id") for r in d.find_elements(By.CSS_SELECTOR, "table#runs tr[data-run-id]")}],
        )[0]

    def trigger_job(self):
        self.step = f"trigger {JOB} for {JOB_DATE}"
        before = self.runs_ids()
        self.nav("nav-jobs", f'[data-job="{JOB}"]')
        job = self.visible(f'[data-job="{JOB}"]', f'the job [data-job="{JOB}"] in the jobs view')
        date = job.find_element(By.CSS_SELECTOR, "input.run-date")
        if (date.get_attribute("type") or "") != "date":
            raise Failure(f"input.run-date of {JOB} has type {date.get_attribute('type')!r}, not 'date'")
        self.js_set_value(date, JOB_DATE)
        if date.get_attribute("value") != JOB_DATE:
            raise Failure(f"input.run-date holds {date.get_attribute('value')!r} after setting {JOB_DATE}")
        job.find_element(By.CSS_SELECTOR, "button.run-now").click()

        def triggered(d):
            el = self.shown(f'[data-job="{JOB}"] .trigger-status')
            return el if el is not None and "triggered" in el.text.lower() else False

        try:
            status = WebDriverWait(self.d, self.timeout, poll_frequency=0.2).until(triggered)
        except TimeoutException:
            el = self.d.find_elements(By.CSS_SELECTOR, f'[data-job="{JOB}"] .trigger-status')
            said = el[0].text if el else "(no .trigger-status element)"
            raise Failure(f"the job did not say 'triggered' within {self.timeout} s; it says {said!r}") from None
        print(f"  {JOB}: {brief(status.text)!r}")
        return before

    def run_succeeds(self, before, limit=30):
        self.step = f"see the run of {JOB} succeed"
        self.nav("nav-runs", "table#runs", present_only=True)
        last = {"reload": time.monotonic()}

        def succeeded(d):
            for r in d.find_elements(By.CSS_SELECTOR, 'table#runs tr[data-run-id][data-status="succeeded"]'):
                if r.get_attribute("data-run-id") not in before and JOB in r.text:
                    return r
            # Should the view not poll by itself, reload it now and then, as a person would.
            if time.monotonic() - last["reload"] > 8:
                last["reload"] = time.monotonic()
                d.refresh()
                self.nav("nav-runs", "table#runs", present_only=True)
            return False

        try:
            row = WebDriverWait(self.d, limit, poll_frequency=0.5, ignored_exceptions=RERENDER).until(succeeded)
        except TimeoutException:
            rows = [
                (r.get_attribute("data-run-id"), r.get_attribute("data-status"), brief(r.text, 80))
                for r in self.d.find_elements(By.CSS_SELECTOR, "table#runs tr[data-run-id]")
            ]
            raise Failure(
                f"no new run of {JOB} with data-status=\"succeeded\" in table#runs within {limit} s "
                f"(runs before the trigger: {sorted(before)}; rows now (id, status, text): {rows})"
            ) from None
        print(f"  run {row.get_attribute('data-run-id')}: {brief(row.text)!r}")

    def phone(self):
        self.step = "the overview at a phone's size (390x844)"
        self.d.set_window_size(390, 844)
        self.nav("nav-overview", "table#pipelines")
        table = self.d.find_element(By.CSS_SELECTOR, "table#pipelines")
        row = self.visible(f'table#pipelines tr[data-pipeline="{PIPELINE}"]')
        rect = table.rect
        if rect["width"] <= 0 or rect["height"] <= 0:
            raise Failure(f"table#pipelines has no area at phone size: {rect}")
        width = self.d.execute_script("return window.innerWidth")
        overflow = self.d.execute_script("return document.documentElement.scrollWidth")
        note = "" if overflow <= width else f" (note: the page scrolls sideways: {overflow}px wide in {width}px)"
        size = f"{round(rect['width'])}x{round(rect['height'])} at ({round(rect['x'])}, {round(rect['y'])})"
        print(f"  phone: table#pipelines visible, {size}; row {brief(row.text, 60)!r}{note}")


def make_driver(args):
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-US"):
        options.add_argument(a)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver is Debian's: give its path so that Selenium Manager downloads nothing.
    service = Service(executable_path=args.chromedriver, log_output=os.path.join(args.artifacts, "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_window_size(1280, 900)
    driver.set_page_load_timeout(30)
    driver.implicitly_wait(0)
    return driver


def save_artifacts(driver, directory, name):
    paths = []
    try:
        shot = os.path.join(directory, f"{name}.png")
        if driver.save_screenshot(shot):
            paths.append(shot)
    except WebDriverException as e:
        print(f"  (no screenshot: {e.msg})", file=sys.stderr)
    try:
        html = os.path.join(directory, f"{name}.html")
        with open(html, "w", encoding="utf-8") as f:
            f.write(driver.page_source)
        paths.append(html)
    except WebDriverException as e:
        print(f"  (no page source: {e.msg})", file=sys.stderr)
    return paths


def browser_log(driver):
    try:
        return [f"{e.get('level')}: {e.get('message')}" for e in driver.get_log("browser")]
    except WebDriverException:
        return []


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True, help="where caudal run serves, e.g. http://127.0.0.1:8080/")
    p.add_argument("--token", required=True, help="an analyst (or admin) token")
    p.add_argument("--artifacts", default=".", help="folder for screenshots and page sources")
    p.add_argument("--timeout", type=float, default=15, help="seconds each wait may take (default 15)")
    p.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    p.add_argument("--chromedriver", default=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    args = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # keep stdout and stderr in order in a log
    os.makedirs(args.artifacts, exist_ok=True)
    os.environ.setdefault("SE_OFFLINE", "true")

    try:
        driver = make_driver(args)
    except WebDriverException as e:
        print(f"dashboard: FAILED: cannot start {args.chromium} through {args.chromedriver}: {e.msg}", file=sys.stderr)
        return 1
    ui = Dashboard(driver, args.base_url, args.timeout)
    try:
        print(f"dashboard: {driver.capabilities.get('browserVersion')} headless, {args.base_url}")
        ui.open()
        ui.sign_in(args.token)
        ui.health()
        ui.pipelines()
        ui.alerts()
        ui.rejected_rows()
        before = ui.trigger_job()
        ui.run_succeeds(before)
        save_artifacts(driver, args.artifacts, "desktop-runs")
        ui.phone()
        save_artifacts(driver, args.artifacts, "phone-overview")
        print("dashboard: ok")
        return 0
    except (Failure, WebDriverException) as e:
        if isinstance(e, Failure):
            message = str(e)
        else:
            message = f"{type(e).__name__}: {e.msg}"
            traceback.print_exc()
        print(f"dashboard: FAILED at step '{ui.step}': {message}", file=sys.stderr)
        try:
            print(f"  url: {driver.current_url}", file=sys.stderr)
        except WebDriverException:
            pass
        for path in save_artifacts(driver, args.artifacts, "failure"):
            print(f"  saved {path}", file=sys.stderr)
        logs = browser_log(driver)
        if logs:
            print("  browser console:", file=sys.stderr)
            for line in logs[-20:]:
                print(f"    {line}", file=sys.stderr)
        return 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
