"""The chat page: ask your documents, read answers made of quotes, open each quote in its source.

A thin client of the qa HTTP service (QA_API_URL): `streamlit run ui/app.py`, or `qa up` for both.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts only ui/ on the path
    sys.path.insert(0, str(ROOT))

from qa.config import Settings  # noqa: E402
from qa.serving.schemas import MAX_HISTORY, AskResponse, CitationOut, Health, Job, PassageOut  # noqa: E402
from qa.sources.ingest import SUPPORTED  # noqa: E402
from ui import render  # noqa: E402
from ui.client import Client, ServiceError  # noqa: E402
from ui.conversations import Conversation, Conversations  # noqa: E402

DOCS_SHOWN = 50
POLL_S = 1.0  # how often the sidebar asks the service how a running upload is going
JOBS_SHOWN = 3  # the latest uploads of a conversation shown in the sidebar

st.set_page_config(page_title="qa: answers with sources", page_icon=":material/menu_book:")


def settings() -> Settings:
    # Read on every run (not the cached get_settings) so a changed QA_API_URL takes effect.
    return Settings()


def client() -> Client:
    s = settings()
    return Client(s.serving.api_url, s.serving.api_key)


@st.cache_resource
def conversations() -> Conversations:
    """Every tab's conversation, by the id in its URL (`?c=`), for as long as the UI runs."""
    return Conversations()


def state_defaults() -> None:
    """This tab's conversation (the one its URL names, so a reload keeps it) and widget state."""
    conversation = conversations().get(st.query_params.get("c"))
    if st.query_params.get("c") != conversation.id:
        st.query_params["c"] = conversation.id
    st.session_state.conversation = conversation
    st.session_state.messages = conversation.messages
    st.session_state.setdefault("uploader_key", 0)
    st.session_state.setdefault("confirm_delete", None)


def new_conversation() -> None:
    """A fresh conversation for this tab; the uploads it followed are still shown."""
    conversation = conversations().new()
    conversation.jobs = list(following())
    st.query_params["c"] = conversation.id
    st.session_state.conversation = conversation
    st.session_state.messages = conversation.messages


def following() -> list[dict]:
    """The upload jobs this conversation follows (Job dicts, oldest first)."""
    conversation: Conversation = st.session_state.conversation
    return conversation.jobs


# The conversation


def history(messages: list[dict]) -> list[dict]:
    """The turns to send as `history`: questions and answers, not error messages."""
    turns = [{"role": m["role"], "content": m["content"]} for m in messages if not m.get("error")]
    return turns[-MAX_HISTORY:]


def show_message(i: int, message: dict) -> None:
    with st.chat_message(message["role"]):
        show_body(i, message)


def show_body(i: int, message: dict) -> None:
    if message.get("error"):
        st.error(message["content"], icon=":material/error:")
    elif message.get("response"):
        if message.get("indexing"):
            st.info(render.indexing_note(message["indexing"]), icon=":material/hourglass_top:")
        show_answer(i, message["question"], AskResponse.model_validate(message["response"]))
    else:
        st.markdown(render.escape_markdown(message["content"]))


def show_draft(slot: DeltaGenerator, text: str) -> None:
    """The model's raw words while they arrive, marked as unverified; the answer replaces them."""
    with slot.container(), st.chat_message("assistant"):
        st.caption(render.DRAFT_CAPTION)
        st.markdown(render.draft_markdown(text))


def show_answer(i: int, question: str, answer: AskResponse) -> None:
    if answer.query.strip() != question.strip():
        st.caption(f"searched: {render.escape_markdown(answer.query)}")
    if answer.abstained:
        st.warning(render.escape_markdown(answer.answer), icon=":material/search_off:")
        if answer.passages:
            st.markdown("**Related reading**: the closest passages, which do not answer it.")
            for j, p in enumerate(answer.passages):
                related_card(i, j, p)
    else:
        if answer.tier == "best_guess":  # no tick and no short answer: a guess looks like one
            st.info(render.best_guess_note(answer.confidence), icon=":material/help:")
        elif answer.short_answer:
            short = render.escape_markdown(answer.short_answer)
            st.success(f"Short answer: **{short}**", icon=":material/check_circle:")
        st.markdown(render.answer_markdown(answer.answer))
        for c in answer.citations:
            source_card(i, c, answer.passages)
    details = [answer.mode, f"{answer.timings_ms.get('total', 0):.0f} ms"]
    if answer.confidence is not None:
        details.insert(0, render.confidence_label(answer.confidence, answer.confident))
    notes = render.answer_notes(answer.notes, answer.removed_sentences)
    st.caption(" · ".join(details + [render.escape_markdown(n) for n in notes]))


def source_card(i: int, c: CitationOut, passages: list[PassageOut]) -> None:
    """A citation: its quote marked inside the passage it came from, and the document's details."""
    with st.expander(render.card_label(c, c.n), icon=":material/format_quote:"):
        st.caption(render.source_line(c.date, c.source, c.start, c.end))
        st.html(render.quote_in_passage(c, render.passage_for(c, passages)))
        if st.button("Open the whole document", key=f"doc-{i}-{c.n}", icon=":material/article:"):
            document_dialog(c.doc_id, c.start, c.end)


def related_card(i: int, j: int, p: PassageOut) -> None:
    with st.expander(render.card_label(p), icon=":material/description:"):
        st.caption(render.source_line(p.date, p.source, p.start, p.end))
        st.html(render.plain(p.text))
        if st.button("Open the whole document", key=f"rel-{i}-{j}", icon=":material/article:"):
            document_dialog(p.doc_id, p.start, p.end)


@st.dialog("Source document", width="large")
def document_dialog(doc_id: str, start: int, end: int) -> None:
    """The full text of a document with the cited span highlighted and scrolled into view."""
    try:
        with client() as c:
            doc = c.document(doc_id)
    except ServiceError as exc:
        st.error(exc.message)
        return
    st.markdown(f"**{render.escape_markdown(doc.title)}**")
    st.caption(render.source_line(doc.date, doc.source, start, end))
    if not 0 <= start <= end <= len(doc.text):
        st.warning("The document changed since this answer; ask again to get fresh quotes.")
        start = end = 0
    st.html(render.quote_in_document(doc.text, start, end), unsafe_allow_javascript=True)


def ask(question: str, turns: list[dict], top_k: int, slot: DeltaGenerator) -> dict:
    """Send the question with the conversation before it; the message to store and show.

    The answer streams: while the model writes (LLM mode), its raw words show in `slot` as an
    unverified draft; the verified answer that ends the stream replaces them (the caller shows
    it). Without a model the page looks as it always did: a spinner, then the answer.
    """
    indexing = still_indexing()  # as the question goes: its answer cannot know these files
    draft: list[str] = []
    with ExitStack() as waiting:
        waiting.enter_context(st.spinner("Searching the documents…"))

        def on_token(text: str) -> None:
            waiting.close()  # the draft shows the progress from here on
            draft.append(text)
            show_draft(slot, "".join(draft))

        try:
            with client() as c:
                c.on_token = on_token
                answer = c.ask(question, turns, top_k)
        except ServiceError as exc:
            return {"role": "assistant", "content": exc.message, "error": True}
    return {
        "role": "assistant",
        "content": answer.answer,
        "question": question,
        "response": answer.model_dump(),
        "indexing": indexing,
    }


def still_indexing() -> list[str]:
    """The files of this conversation's uploads that are not indexed yet."""
    names: list[str] = []
    try:
        with client() as c:
            for job in refreshed(c):
                if job.status in ("queued", "running"):
                    names += [f.filename for f in job.files if f.status == "pending"]
    except ServiceError:
        pass  # the answer came; the sidebar says what is wrong with the service
    return names


def chat(top_k: int) -> None:
    messages = st.session_state.messages
    if st.button(
        "New conversation",
        icon=":material/add_comment:",
        help="Start over: the next question is asked without this conversation. "
        "Reloading the page keeps the one shown.",
    ):
        new_conversation()
        st.rerun()
    if not messages:
        st.caption(
            "Ask a question about your documents. Every answer is made of quotes; "
            "open a numbered source to see the quote in its document."
        )
    for i, message in enumerate(messages):
        show_message(i, message)
    question = st.chat_input("Ask about your documents")
    if question and question.strip():
        turns = history(messages)
        messages.append({"role": "user", "content": question})
        show_message(len(messages) - 1, messages[-1])
        slot = st.empty()  # the draft while the model writes, then the verified answer
        reply = ask(question, turns, top_k, slot)
        messages.append(reply)
        with slot.container():
            show_message(len(messages) - 1, reply)


# The sidebar: index status, settings, uploads and the document list


def index_status(c: Client) -> tuple[Health | None, str | None]:
    """Show /health; (the Health record, None) or (None, what is wrong)."""
    try:
        health = c.health()
    except ServiceError as exc:
        st.error("Service unavailable; see the message on the page.", icon=":material/cloud_off:")
        return None, exc.message
    if not health.ok:
        st.warning(
            "No index yet. Upload documents below, or build one with "
            "`qa index FOLDER` (`make run` indexes the sample corpora)."
        )
        return health, None
    left, right = st.columns(2)
    left.metric("Documents", health.documents)
    right.metric("Chunks", health.chunks)
    st.caption(f"model {health.model} · index {health.version}")
    return health, None


def upload_section(c: Client) -> None:
    # No type filter here: the service says why a file cannot be indexed, next to its name.
    files = st.file_uploader(
        "Add documents",
        accept_multiple_files=True,
        key=f"uploader-{st.session_state.uploader_key}",
        max_upload_size=max(1, int(settings().serving.max_upload_mb)),
        help=f"{', '.join(SUPPORTED)}; indexed in the background, while you ask. "
        "A file with the same name replaces its document.",
    )
    if files and st.button(f"Index {len(files)} file(s)", type="primary", icon=":material/upload:"):
        try:
            job = c.upload([(f.name, f.getvalue(), f.type) for f in files])
        except ServiceError as exc:
            st.error(f"Upload refused: {exc.message}")
        else:
            following().append(job.model_dump())
            st.session_state.uploader_key += 1  # a fresh, empty uploader
            st.rerun()
    upload_jobs()


@st.fragment(run_every=POLL_S)
def upload_jobs() -> None:
    """The latest uploads with each file's outcome; follows the running ones (polling), and
    reruns the page when one ends, so the document count and list are fresh."""
    jobs = following()
    if not jobs:
        return
    try:
        with client() as c:
            current = refreshed(c)
    except ServiceError as exc:
        st.error(f"Cannot follow the upload: {exc.message}")
        return
    for job in reversed(current[-JOBS_SHOWN:]):
        show_job(job)
    if any(j.pop("ended", False) for j in jobs):
        st.cache_data.clear()
        st.rerun()  # the whole page: the document count and list change


def refreshed(c: Client) -> list[Job]:
    """This conversation's uploads, the unfinished ones asked anew."""
    jobs = following()
    for n, stored in enumerate(jobs):
        if stored["status"] in ("queued", "running"):
            try:
                jobs[n] = c.job(stored["id"]).model_dump()
            except ServiceError as exc:
                if exc.status != 404:
                    raise
                jobs[n] = {**stored, "status": "failed", "error": exc.message}
            # Seen ending here; the sidebar then reruns the page once (see upload_jobs).
            jobs[n]["ended"] = jobs[n]["status"] in ("done", "failed")
    return [Job.model_validate(j) for j in jobs]


def show_job(job: Job) -> None:
    """One upload: a progress bar while it runs, a summary when it ends, each file's line."""
    with st.container(border=True):
        if job.status in ("queued", "running"):
            fraction = min(job.done / job.total, 1.0) if job.total else 0.0
            text = render.job_progress(job.status, job.stage, job.done, job.total)
            st.progress(fraction, text=text)
        elif job.status == "failed":
            st.error(f"Indexing failed: {job.error or 'see the service log'}")
        else:
            failed = any(f.status == "failed" for f in job.files)
            (st.warning if failed else st.success)(f"Indexed: {render.job_summary(job.files)}.")
        for f in job.files:
            st.markdown(render.file_line(f.filename, f.status, f.error, job.status))


@st.cache_data(ttl=300, show_spinner=False)
def documents(api_url: str, api_key: str | None, version: str | None) -> list[dict]:
    """Every document's summary; cached per index version."""
    with Client(api_url, api_key) as c:
        return [d.model_dump() for d in c.all_documents().documents]


def documents_section(c: Client, version: str | None) -> None:
    s = settings()
    try:
        docs = documents(s.serving.api_url, s.serving.api_key, version)
    except ServiceError as exc:
        st.error(exc.message)
        return
    with st.expander(f"Documents ({len(docs)})", icon=":material/folder_open:"):
        confirm_delete(c, docs)
        needle = st.text_input("Filter", key="doc_filter", placeholder="title or file name")
        if needle:
            low = needle.lower()
            docs = [d for d in docs if low in d["title"].lower() or low in d["id"].lower()]
        for d in docs[:DOCS_SHOWN]:
            text, button = st.columns([6, 1], vertical_alignment="center")
            date = f" · {d['date']}" if d["date"] else ""
            with text:
                st.markdown(f"**{render.escape_markdown(d['title'])}**")
                st.caption(f"{render.escape_markdown(d['id'])}{date} · {d['n_chunks']} chunks")
            if button.button("", key=f"del-{d['id']}", icon=":material/delete:", help="Remove"):
                st.session_state.confirm_delete = d["id"]
                st.rerun()
        if len(docs) > DOCS_SHOWN:
            st.caption(f"Showing {DOCS_SHOWN} of {len(docs)}; type to filter.")


def confirm_delete(c: Client, docs: list[dict]) -> None:
    doc_id = st.session_state.confirm_delete
    if not doc_id:
        return
    title = next((d["title"] for d in docs if d["id"] == doc_id), doc_id)
    st.warning(
        f"Remove **{render.escape_markdown(doc_id)}** ({render.escape_markdown(title)}) "
        "from the index?"
    )
    yes, no = st.columns(2)
    if yes.button("Remove", type="primary", key="confirm-yes"):
        st.session_state.confirm_delete = None
        try:
            c.delete(doc_id)
        except ServiceError as exc:
            st.error(exc.message)
            return
        st.cache_data.clear()
        st.toast(f"Removed {doc_id}")
        st.rerun()
    if no.button("Cancel", key="confirm-no"):
        st.session_state.confirm_delete = None
        st.rerun()


def sidebar() -> tuple[int, str | None]:
    """The sidebar; (top_k, what is wrong with the service or None)."""
    with st.sidebar, client() as c:
        st.header("Index", divider="gray")
        health, problem = index_status(c)
        st.header("Settings", divider="gray")
        top_k = st.slider(
            "Passages per answer (top_k)", 1, 20, min(settings().retrieval.top_k, 20), key="top_k"
        )
        if health is not None:
            st.header("Documents", divider="gray")
            upload_section(c)
            documents_section(c, health.version)
    return top_k, problem


def main() -> None:
    state_defaults()
    st.title("Answers with sources")
    top_k, problem = sidebar()
    if problem:
        st.error(problem, icon=":material/cloud_off:")
    chat(top_k)


main()
