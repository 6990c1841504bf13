"""The API docs pages (/docs, /redoc) in a real browser cut off from every other host.

Swagger UI and ReDoc must come from the service itself (files installed with fastapi-offline),
so they render on a machine without internet, as the rest of qa does.
"""

from __future__ import annotations

import sys

import pytest

from tests.test_ui_browser import CHROMIUM, FLAGS, WAIT_MS, _need
from tests.ui_support import free_port, running

# ReDoc's "API docs by Redocly" badge shows this logo when it loads and hides it when it fails
# (its onError); nothing else on the page needs another host.
REDOC_BADGE_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """`qa serve` on an empty index folder (the docs need no index)."""
    tmp = tmp_path_factory.mktemp("docs")
    port = free_port()
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--index", str(tmp / "index")]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running(cmd, [f"{url}/openapi.json"], tmp / "serve.log"):
        yield url


@pytest.fixture(scope="module")
def offline_page(tmp_path_factory, service):
    """A Chromium page whose every request to another origin fails, as with no network."""
    if not CHROMIUM.exists():
        _need(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed: pip install -e '.[dev]'")
    blocked: list[str] = []

    def only_the_service(route) -> None:
        if route.request.url.startswith(service + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        context.set_default_timeout(WAIT_MS)
        context.route("**/*", only_the_service)
        page = context.new_page()
        page.blocked = blocked  # type: ignore[attr-defined]
        yield page
        context.close()


def test_swagger_ui_renders_offline(offline_page, service) -> None:
    from playwright.sync_api import expect

    offline_page.blocked.clear()
    offline_page.goto(f"{service}/docs")
    expect(offline_page.locator(".swagger-ui .title")).to_contain_text("qa: answers with sources")
    expect(offline_page.locator(".opblock-summary-path", has_text="/ask")).to_be_visible()
    expect(offline_page.locator(".opblock-summary-path", has_text="/jobs/{job_id}")).to_be_visible()
    assert offline_page.blocked == []


def test_redoc_renders_offline(offline_page, service) -> None:
    from playwright.sync_api import expect

    offline_page.blocked.clear()
    offline_page.goto(f"{service}/redoc")
    expect(offline_page.locator("h1")).to_contain_text("qa: answers with sources")
    expect(
        offline_page.get_by_text("Answer a question with verbatim, cited quotes").first
    ).to_be_visible()
    assert set(offline_page.blocked) <= {REDOC_BADGE_LOGO}
