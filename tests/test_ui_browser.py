"""The chat UI in a real browser (Debian's chromium via Playwright), started by `qa up`.

Asks about the tests' corpus, waits for the answer and its quote, opens a source card and the whole
document, asks what the article never states, uploads a file and asks about it, uploads a PDF and
sees the page of its citation; screenshots go to test-output/.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from qa.serving.launcher import port_free
from tests.conftest import ROOT
from tests.ui_support import free_port, index_corpus, running, wait_for_index, wait_ready

CHROMIUM = Path("/usr/bin/chromium")
OUT = ROOT / "test-output"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 120_000  # generous: the tests wait on states, and a busy 2-core machine is slow
JOB_MS = 300_000  # an upload on a busy machine: the model loads, then every chunk is embedded


def _need(what: str) -> None:
    """Skip without the browser on a developer's machine; in CI (CI set) that is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI must install it (.ci/run installs chromium)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    if not CHROMIUM.exists():
        _need(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _need("playwright is not installed: pip install -e '.[dev]'")
    # `expect` has its own limit (5 s) apart from the context's: waits on states get the same
    expect.set_options(timeout=WAIT_MS)
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as pw:
        # executable_path: Playwright never downloads a browser of its own.
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 1200},
        )
        context.set_default_timeout(WAIT_MS)
        yield context
        context.close()


@pytest.fixture(scope="module")
def qa_up(tmp_path_factory, request):
    """`qa up` on free ports, run from a folder without ui/ (the app is found by the package)."""
    tmp = tmp_path_factory.mktemp("qa-up")
    index_dir, api_port, ui_port = tmp / "index", free_port(), free_port()
    api, ui = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"
    cmd = [sys.executable, "-m", "qa.cli", "up", "--index", str(index_dir)]
    cmd += ["--api-port", str(api_port), "--ui-port", str(ui_port)]
    log = tmp / "qa-up.log"
    with running(cmd, [], log, cwd=tmp) as proc:
        index_corpus(index_dir, request.getfixturevalue("embedder"))
        wait_for_index(api, proc)
        wait_ready(f"{ui}/_stcore/health", proc, log)
        yield {"api": api, "ui": ui, "proc": proc, "log": log, "ports": (api_port, ui_port)}


def test_ask_in_a_browser(browser_context, qa_up) -> None:
    from playwright.sync_api import expect

    OUT.mkdir(exist_ok=True)
    page = browser_context.new_page()
    page.goto(qa_up["ui"])
    chat = page.get_by_placeholder("Ask about your documents")
    chat.wait_for()
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_test_id("stMetricValue").first).to_have_text("3")

    chat.fill("How much is the loan for the Kestrel Ridge wind farm?")
    chat.press("Enter")
    answer = page.get_by_test_id("stChatMessage").nth(1)
    expect(answer).to_contain_text("€840 million")
    expect(answer).to_contain_text("[1]")

    card = (
        answer.get_by_test_id("stExpander")
        .filter(has=page.locator("mark", has_text="€840 million"))
        .first
    )
    card.locator("summary").click()
    quote = card.locator("mark")
    expect(quote).to_be_visible()
    expect(quote).to_contain_text("€840 million")
    expect(card).to_contain_text("2026-03-12")
    # Its source relative to the folder it was indexed from: no path of the server's.
    expect(card.get_by_test_id("stCaptionContainer").first).to_have_text(
        re.compile(r"^2026-03-12 · kestrel-wind-farm\.txt · chars \d+–\d+$")
    )
    card.scroll_into_view_if_needed()
    page.screenshot(path=str(OUT / "ui-answer.png"), full_page=True)

    card.get_by_role("button", name="Open the whole document").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("mark")).to_contain_text("€840 million")
    expect(dialog).to_contain_text("carved from local oak")  # the last paragraph
    page.screenshot(path=str(OUT / "ui-document.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)


def test_an_unanswerable_question_abstains_with_its_reason(browser_context, qa_up) -> None:
    from playwright.sync_api import expect

    OUT.mkdir(exist_ok=True)
    page = browser_context.new_page()
    page.goto(qa_up["ui"])
    answer = _ask(page, "What is the interest rate on the loan for the Kestrel Ridge wind farm?")
    warning = answer.get_by_test_id("stAlertContentWarning")
    expect(warning).to_contain_text("The sources don't say")
    expect(warning).to_contain_text("no passage gives a percentage or share")
    expect(answer).to_contain_text("Related reading")
    expect(answer.locator("mark")).to_have_count(0)  # no quote is offered as an answer
    page.screenshot(path=str(OUT / "ui-abstain.png"), full_page=True)


def _upload(page, qa_up, path):
    """Open the UI and index one file through the sidebar's uploader; the sidebar."""
    from playwright.sync_api import expect

    page.goto(qa_up["ui"])
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))
    sidebar.get_by_role("button", name="Index 1 file(s)").click()
    # The first upload may wait for the indexing model to load on a busy machine.
    expect(sidebar).to_contain_text("Indexed: 1 added", timeout=JOB_MS)
    return sidebar


def _ask(page, question: str):
    """Ask in the chat box; the answer's chat message."""
    chat = page.get_by_placeholder("Ask about your documents")
    chat.fill(question)
    chat.press("Enter")
    return page.get_by_test_id("stChatMessage").nth(1)


def test_upload_then_ask_about_it(browser_context, qa_up, tmp_path) -> None:
    from playwright.sync_api import expect

    note = tmp_path / "quillton-festival.txt"
    note.write_text(
        "Quillton festival report\n\n"
        "The Zorblat festival takes place every March in Quillton. "
        "In 2025 it attracted 12,400 visitors, a record for the town.\n",
        encoding="utf-8",
    )
    page = browser_context.new_page()
    sidebar = _upload(page, qa_up, note)
    expect(sidebar.get_by_test_id("stMetricValue").first).to_have_text("4")

    answer = _ask(page, "How many visitors did the Zorblat festival attract in 2025?")
    expect(answer).to_contain_text("12,400")
    card = answer.get_by_test_id("stExpander").first
    expect(card.locator("summary")).to_contain_text("[1] Quillton festival report")  # line 1
    card.locator("summary").click()
    caption = card.get_by_test_id("stCaptionContainer").first
    expect(caption).to_have_text(re.compile(r"^quillton-festival\.txt · chars \d+–\d+$"))
    page.screenshot(path=str(OUT / "ui-upload.png"), full_page=True)

    # Remove it again from the document list, with the confirmation step.
    docs = sidebar.get_by_test_id("stExpander").filter(has_text="Documents (4)")
    docs.locator("summary").click()
    docs.locator("[class*='st-key-del-quillton'] button:visible").click()
    expect(sidebar).to_contain_text(
        "Remove quillton-festival.txt (Quillton festival report) from the"
    )
    sidebar.get_by_role("button", name="Remove", exact=True).click()
    expect(sidebar.get_by_test_id("stMetricValue").first).to_have_text("3")
    expect(sidebar).to_contain_text("Documents (3)")


def test_a_pdf_citation_shows_its_page(browser_context, qa_up, tmp_path) -> None:
    from fpdf import FPDF
    from playwright.sync_api import expect

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in (
        "Zentrix quarry annual report. The quarry opened in 1962.",
        "The Zentrix quarry shipped 8,300 tonnes of granite in 2024.",
    ):
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    report = tmp_path / "zentrix-quarry.pdf"
    pdf.output(str(report))
    page = browser_context.new_page()
    _upload(page, qa_up, report)
    answer = _ask(page, "How many tonnes of granite did the Zentrix quarry ship in 2024?")
    expect(answer).to_contain_text("8,300")
    card = answer.get_by_test_id("stExpander").first
    expect(card.locator("summary")).to_contain_text("[1] Zentrix Quarry · ")  # then its date
    expect(card.locator("summary")).to_contain_text(" · p. 2")
    page.screenshot(path=str(OUT / "ui-pdf-page.png"), full_page=True)


def _documents(page) -> int:
    """The document count the sidebar shows."""
    from playwright.sync_api import expect

    metric = page.get_by_test_id("stSidebar").get_by_test_id("stMetricValue").first
    expect(metric).to_have_text(re.compile(r"^\d+$"), timeout=WAIT_MS)
    return int(metric.inner_text())


def test_asking_while_a_file_is_indexed(browser_context, qa_up, tmp_path) -> None:
    """The upload stays followed through a question, which says the file is still being
    indexed; then the job's end shows, the count goes up, and the file answers."""
    from playwright.sync_api import expect

    towers = tmp_path / "selvik-towers.txt"
    towers.write_text(
        "Selvik estate towers\n\n"
        + " ".join(
            f"Tower {i} of the Selvik estate has {i * 7 + 3} windows and {i % 9 + 2} lifts."
            for i in range(1500)
        ),
        encoding="utf-8",
    )
    page = browser_context.new_page()
    page.goto(qa_up["ui"])
    before = _documents(page)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(towers))
    sidebar.get_by_role("button", name="Index 1 file(s)").click()
    progress = sidebar.get_by_test_id("stProgress")
    expect(progress).to_contain_text(re.compile(r"Embedding: \d+ of \d+ chunks"), timeout=JOB_MS)
    embedding = re.search(r"of (\d+) chunks", progress.inner_text())
    expect(sidebar.get_by_role("button", name="Index 1 file(s)")).to_have_count(0, timeout=WAIT_MS)

    answer = _ask(page, "How many windows has Tower 1234 of the Selvik estate?")
    expect(answer).to_contain_text(
        "Still being indexed when this was answered: selvik-towers.txt", timeout=WAIT_MS
    )
    expect(answer.get_by_test_id("stCaptionContainer").last).to_contain_text(
        " ms", timeout=WAIT_MS
    )  # answered

    # The question did not lose the upload: it is followed to its end, the count follows.
    expect(sidebar).to_contain_text("Indexed: 1 added", timeout=JOB_MS)
    expect(sidebar).to_contain_text("selvik-towers.txt · added", timeout=WAIT_MS)
    expect(sidebar.get_by_test_id("stMetricValue").first).to_have_text(
        str(before + 1), timeout=WAIT_MS
    )
    expect(sidebar.get_by_role("button", name="Index 1 file(s)")).to_have_count(0, timeout=WAIT_MS)
    docs = httpx.get(f"{qa_up['api']}/documents", params={"limit": 1000}).json()["documents"]
    (entry,) = [d for d in docs if d["id"] == "selvik-towers.txt"]
    assert embedding is not None and int(embedding.group(1)) == entry["n_chunks"]  # this file's

    chat = page.get_by_placeholder("Ask about your documents")
    chat.fill("How many windows has Tower 1234 of the Selvik estate?")
    chat.press("Enter")
    again = page.get_by_test_id("stChatMessage").nth(3)
    expect(again).to_contain_text("8641 windows", timeout=WAIT_MS)
    expect(again).not_to_contain_text("Still being indexed", timeout=WAIT_MS)
    page.screenshot(path=str(OUT / "ui-upload-while-asking.png"), full_page=True)


def test_a_bad_file_does_not_sink_the_batch(browser_context, qa_up, tmp_path) -> None:
    """Each file of one upload gets its own outcome, the reason shown as text."""
    from playwright.sync_api import expect

    good = tmp_path / "harbour-note.txt"
    good.write_text("The Brannock harbour crane lifts 62 tonnes.", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    tool = tmp_path / "tool.exe"
    tool.write_bytes(b"MZ\x90\x00 not a document")
    page = browser_context.new_page()
    page.goto(qa_up["ui"])
    before = _documents(page)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        [str(good), str(empty), str(tool)]
    )
    sidebar.get_by_role("button", name="Index 3 file(s)").click()
    expect(sidebar).to_contain_text("Indexed: 1 added, 2 failed", timeout=JOB_MS)
    expect(sidebar).to_contain_text("harbour-note.txt · added", timeout=WAIT_MS)
    expect(sidebar).to_contain_text("empty.txt · not indexed: the file is empty", timeout=WAIT_MS)
    expect(sidebar).to_contain_text(
        "tool.exe · not indexed: unsupported file type .exe; upload one of .txt, .md",
        timeout=WAIT_MS,
    )
    expect(sidebar.get_by_test_id("stMetricValue").first).to_have_text(
        str(before + 1), timeout=WAIT_MS
    )
    page.screenshot(path=str(OUT / "ui-upload-outcomes.png"), full_page=True)

    # A request with no file that can be indexed is refused, the reason shown as text. (The
    # finished upload's uploader makes way for a fresh one: wait until the old one is gone.)
    uploader = sidebar.get_by_test_id("stFileUploaderDropzoneInput")
    expect(uploader).to_have_count(1, timeout=WAIT_MS)
    uploader.set_input_files(str(tool))
    sidebar.get_by_role("button", name="Index 1 file(s)").click()
    expect(sidebar.get_by_test_id("stAlertContentError")).to_contain_text(
        "Upload refused: 'tool.exe': unsupported file type .exe", timeout=WAIT_MS
    )


def test_a_reload_keeps_the_conversation_and_new_starts_over(browser_context, qa_up) -> None:
    from playwright.sync_api import expect

    page = browser_context.new_page()
    page.goto(qa_up["ui"])
    answer = _ask(page, "How much is the loan for the Kestrel Ridge wind farm?")
    expect(answer).to_contain_text("€840 million", timeout=WAIT_MS)
    expect(page).to_have_url(re.compile(r"\?c=[0-9a-f]{32}$"), timeout=WAIT_MS)
    kept = page.url

    page.reload()
    messages = page.get_by_test_id("stChatMessage")
    expect(messages).to_have_count(2, timeout=WAIT_MS)
    expect(messages.nth(0)).to_contain_text(
        "How much is the loan for the Kestrel Ridge wind farm?", timeout=WAIT_MS
    )
    expect(messages.nth(1)).to_contain_text("€840 million", timeout=WAIT_MS)
    assert page.url == kept

    other = browser_context.new_page()  # another tab: a conversation of its own
    other.goto(qa_up["ui"])
    other.get_by_placeholder("Ask about your documents").wait_for()
    expect(other.get_by_test_id("stChatMessage")).to_have_count(0, timeout=WAIT_MS)
    other.close()

    page.get_by_role("button", name="New conversation").click()
    expect(messages).to_have_count(0, timeout=WAIT_MS)
    expect(page).not_to_have_url(kept, timeout=WAIT_MS)
    page.reload()
    page.get_by_placeholder("Ask about your documents").wait_for()
    expect(messages).to_have_count(0, timeout=WAIT_MS)
    follow = _ask(page, "And how many jobs will it create?")
    expect(follow.get_by_test_id("stCaptionContainer").last).to_contain_text(" ms", timeout=WAIT_MS)
    expect(follow).not_to_contain_text(
        "searched:", timeout=WAIT_MS
    )  # no earlier question to follow up on


def test_ctrl_c_stops_both(qa_up) -> None:
    proc: subprocess.Popen = qa_up["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, qa_up["log"].read_text(errors="replace")[-3000:]
    assert all(port_free(port) for port in qa_up["ports"])
    assert "qa is up" in qa_up["log"].read_text()
