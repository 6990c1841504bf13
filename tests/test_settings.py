"""Every setting in the README's table does what it says, set the way a user sets it (a QA_
environment variable) and seen through the interface a user uses: the `qa` command or HTTP.

QA_API_URL is the UI's: tests/test_ui_app.py points the Streamlit app at a service with it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qa.cli import app
from qa.config import Settings, get_settings, setting_fields
from qa.llm.prompt import count_tokens
from qa.serving.app import create_app
from tests.conftest import ROOT, FakeEmbedder
from tests.llm_stub import LOAN_Q, TRUE, stub_server

OFF_TOPIC = "What is the capital of Mongolia?"


@pytest.fixture
def setenv(monkeypatch):
    """Set QA_ variables as a user's shell would, before the command reads them."""

    def set_(**variables: object) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()

    return set_


def qa(*args: str) -> tuple[int, str, str]:
    """Run the `qa` command in this process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def ask_json(*args: str) -> dict:
    code, out, err = qa("ask", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_the_readme_tables_list_every_setting_of_every_group_with_its_default():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    tables = re.findall(r"^### (.+)\n\n((?:\|.*\n)+)", section, flags=re.M)
    assert [title for title, _ in tables] == [g.title for g in Settings.groups.values()]
    for (_, table), group in zip(tables, Settings.groups.values(), strict=True):
        rows = re.findall(r"^\| `(QA_\w+)` \| (.+?) \|", table, flags=re.M)
        assert [name for name, _ in rows] == [group.env_name(f) for f in group.model_fields]
        for (name, shown), field in zip(rows, group.model_fields.values(), strict=True):
            default = field.get_default(call_default_factory=True)
            if default is None:
                assert shown.startswith("unset"), name
            else:
                assert shown.strip("`") == str(default), name


# A value for every setting that differs from its default and passes its checks.
NOT_DEFAULT = {
    "QA_CHUNK_TOKENS": ("100", 100),
    "QA_CHUNK_OVERLAP_SENTENCES": ("2", 2),
    "QA_MAX_FILE_MB": ("7.5", 7.5),
    "QA_EMBED_BATCH_SIZE": ("8", 8),
    "QA_EMBED_BACKEND": ("onnx-int8", "onnx-int8"),
    "QA_CPU": ("avx2", "avx2"),
    "QA_MODEL_CACHE_DIR": ("/tmp/qa-models", Path("/tmp/qa-models")),
    "QA_INDEX_DIR": ("ix/other", Path("ix/other")),
    "QA_VECTOR_INDEX": ("hnsw", "hnsw"),
    "QA_STORE": ("milvus", "milvus"),
    "QA_MILVUS_URI": ("http://milvus:19530", "http://milvus:19530"),
    "QA_MILVUS_COLLECTION": ("docs", "docs"),
    "QA_TOP_K": ("7", 7),
    "QA_MAX_QUESTION_CHARS": ("300", 300),
    "QA_MIN_COVERAGE": ("0.5", 0.5),
    "QA_READER": ("off", "off"),
    "QA_READER_MODEL": ("models/other", Path("models/other")),
    "QA_LLM_URL": ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
    "QA_LLM_MODEL": ("m2", "m2"),
    "QA_LLM_API_KEY": ("k2", "k2"),
    "QA_LLM_TIMEOUT_S": ("9.5", 9.5),
    "QA_LLM_MAX_PROMPT_TOKENS": ("700", 700),
    "QA_LLM_MAX_ANSWER_TOKENS": ("40", 40),
    "QA_API_KEY": ("s3", "s3"),
    "QA_CORS_ORIGINS": ('["http://ui.example"]', ["http://ui.example"]),
    "QA_MAX_UPLOAD_MB": ("3", 3.0),
    "QA_QUERY_BATCH_SIZE": ("4", 4),
    "QA_QUERY_BATCH_WAIT_MS": ("5", 5.0),
    "QA_API_URL": ("http://qa.example:8000", "http://qa.example:8000"),
}


def test_every_setting_of_every_group_is_documented_and_read_from_its_variable(
    tmp_path, monkeypatch
):
    """Each group's every field has a description, reads its QA_ variable from the environment
    and from a .env file, and `Settings(name=...)` sets it by the variable's name."""
    fields = list(setting_fields())
    assert {f"QA_{name.upper()}" for *_, name, _ in fields} == NOT_DEFAULT.keys()
    for _, _, name, info in fields:
        assert info.description and len(info.description) > 15, name
    defaults = Settings(_env_file=None)
    for name, (text, _) in NOT_DEFAULT.items():
        monkeypatch.setenv(name, text)
    from_env = Settings(_env_file=None)
    for name in NOT_DEFAULT:
        monkeypatch.delenv(name)
    (tmp_path / ".env").write_text("".join(f"{k}='{v}'\n" for k, (v, _) in NOT_DEFAULT.items()))
    from_file = Settings(_env_file=tmp_path / ".env")
    by_name = Settings(_env_file=None, **{k[3:].lower(): v for k, (_, v) in NOT_DEFAULT.items()})
    for group, field, name, _ in fields:
        want = NOT_DEFAULT[f"QA_{name.upper()}"][1]
        assert getattr(getattr(defaults, group), field) != want, name
        for settings in (from_env, from_file, by_name):
            assert getattr(getattr(settings, group), field) == want, name


def test_groups_name_their_settings_by_stage():
    s = Settings(_env_file=None, store="milvus", llm_url="http://x/v1", top_k=3, reader=False)
    assert (s.store.kind, s.llm.url, s.retrieval.top_k, s.answering.reader) == (
        "milvus",
        "http://x/v1",
        3,
        "off",
    )
    changed = s.replace(index_dir=Path("elsewhere"), llm_max_answer_tokens=20)
    assert changed.store.index_dir == Path("elsewhere") and changed.llm.max_answer_tokens == 20
    assert s.store.index_dir == Path("index/default") and s.llm.max_answer_tokens == 300
    with pytest.raises(TypeError, match="unknown setting 'topk'"):
        Settings(_env_file=None, topk=3)
    with pytest.raises(TypeError, match="unknown setting 'llm.url'"):
        s.replace(**{"llm.url": "http://y"})


def test_bad_settings_of_several_groups_are_named_in_one_line(setenv):
    from qa.errors import InvalidInput

    setenv(QA_TOP_K=0, QA_LLM_TIMEOUT_S=-1, QA_STORE="nope")
    with pytest.raises(InvalidInput) as caught:
        get_settings()
    assert str(caught.value) == (
        "bad setting: QA_STORE='nope': Input should be 'folder' or 'milvus'; "
        "QA_TOP_K='0': Input should be greater than or equal to 1; "
        "QA_LLM_TIMEOUT_S='-1': Input should be greater than 0 (fix or unset it)"
    )


# Indexing: `qa index`, with a fake model that records its batches (the model is not the point).


class BatchRecorder(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def embed_batch(self, texts):
        self.batches.append(len(texts))
        return super().embed_batch(texts)


@pytest.fixture
def recorder(monkeypatch) -> BatchRecorder:
    fake = BatchRecorder()
    monkeypatch.setattr("qa.encoders.embedding.default_embedder", lambda: fake)
    return fake


def corpus(folder: Path) -> Path:
    folder.mkdir()
    for d in range(3):
        sentences = (
            f"Item {d}.{j} of the ledger lists one more crate of apples." for j in range(40)
        )
        (folder / f"ledger{d}.txt").write_text(" ".join(sentences))
    return folder


def test_index_settings_shape_the_index(tmp_path, setenv, recorder):
    from qa.store import folder as store

    index_dir = tmp_path / "ix"
    setenv(
        QA_INDEX_DIR=index_dir,
        QA_CHUNK_TOKENS=40,
        QA_CHUNK_OVERLAP_SENTENCES=0,
        QA_EMBED_BATCH_SIZE=3,
    )
    code, out, err = qa("index", str(corpus(tmp_path / "docs")))
    assert code == 0, err
    assert out.startswith(str(index_dir))  # QA_INDEX_DIR: where it went

    snap = store.open_snapshot(index_dir)
    assert snap.manifest["chunking"] == {"max_tokens": 40, "overlap_sentences": 0}
    chunks = [c for _, c in snap.doc_chunks("ledger0.txt")]
    assert len(chunks) > 5
    assert all(len(c.text.split()) <= 40 for c in chunks)  # the fake counts words
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))  # no overlap
    assert max(recorder.batches) == 3 and sum(recorder.batches) == snap.n_chunks
    snap.close()

    setenv(QA_CHUNK_OVERLAP_SENTENCES=1)  # and the default overlap shares a sentence
    assert qa("index", str(tmp_path / "docs"))[0] == 0
    snap = store.open_snapshot(index_dir)
    chunks = [c for _, c in snap.doc_chunks("ledger0.txt")]
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:], strict=False))
    snap.close()


def test_max_file_mb_refuses_larger_files(tmp_path, setenv, recorder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "small.txt").write_text("A short note about apples.")
    (docs / "big.txt").write_text("A longer note about pears. " * 40)  # 1,080 bytes
    setenv(QA_INDEX_DIR=tmp_path / "ix", QA_MAX_FILE_MB=0.001)
    code, out, err = qa("index", str(docs))
    assert code == 1
    assert "big.txt" in err and "small.txt" not in err
    assert "added 1," in out and "failed 1;" in out


# Answers: `qa ask` and the HTTP service over the tests' corpus, with the real model.


def test_top_k_sets_the_passages_of_qa_ask(corpus_index, setenv):
    default = Settings(_env_file=None).retrieval.top_k
    assert len(ask_json(LOAN_Q, "--index", str(corpus_index))["passages"]) == default == 5
    setenv(QA_TOP_K=1, QA_INDEX_DIR=corpus_index)  # the index from the environment too
    assert len(ask_json(LOAN_Q)["passages"]) == 1
    assert len(ask_json(LOAN_Q, "--top-k", "2")["passages"]) == 2  # the option still wins


def test_top_k_sets_the_passages_of_ask_and_search_over_http(corpus_index, setenv):
    setenv(QA_TOP_K=1, QA_INDEX_DIR=corpus_index)
    with TestClient(create_app()) as c:
        assert len(c.post("/ask", json={"question": LOAN_Q}).json()["passages"]) == 1
        assert len(c.post("/search", json={"query": LOAN_Q}).json()["passages"]) == 1
        asked = c.post("/ask", json={"question": LOAN_Q, "top_k": 2}).json()
        assert len(asked["passages"]) == 2


def test_max_question_chars_is_the_limit_over_http_and_the_cli(corpus_index, setenv):
    long_question = LOAN_Q + " Please answer." * 160  # 2,460 characters
    setenv(QA_INDEX_DIR=corpus_index, QA_MAX_QUESTION_CHARS=3000)
    with TestClient(create_app()) as c:
        assert c.post("/ask", json={"question": long_question}).status_code == 200
        assert c.post("/search", json={"query": long_question}).status_code == 200
    setenv(QA_MAX_QUESTION_CHARS=2000)
    with TestClient(create_app()) as c:
        r = c.post("/ask", json={"question": long_question})
        assert r.status_code == 422 and "the limit is 2000" in r.json()["message"]
    setenv(QA_MAX_QUESTION_CHARS=20)
    code, _, err = qa("ask", LOAN_Q)
    assert code == 1 and "the limit is 20" in err


def test_min_coverage_makes_qa_ask_abstain(corpus_index, setenv):
    setenv(QA_INDEX_DIR=corpus_index, QA_READER="false")  # the rules' threshold
    assert not ask_json(LOAN_Q)["abstained"]
    setenv(QA_MIN_COVERAGE=1.0)
    assert ask_json(LOAN_Q)["abstained"]


def test_qa_reader_chooses_who_gives_the_short_answer(corpus_index, setenv, tmp_path):
    setenv(QA_INDEX_DIR=corpus_index, QA_READER="off")
    rules = ask_json(LOAN_Q)
    setenv(QA_READER="short")
    short = ask_json(LOAN_Q)
    # The same sentences and citations; the short answer is the reader's span in the cited quote.
    assert short["answer"] == rules["answer"] and short["citations"] == rules["citations"]
    assert short["short_answer"] and short["short_answer"] in short["citations"][0]["quote"]
    assert "840 million" in short["short_answer"]
    setenv(QA_READER="sometimes")
    code, _, err = qa("ask", LOAN_Q)
    assert code != 0 and "QA_READER='sometimes'" in err and "'off' or 'short'" in err


REMOVED = {
    "QA_RERANK": "true",
    "QA_READER_VETO_PROB": "0.1",
    "QA_READER_MIN_PROB": "0.2",
    "QA_READER": "full",
}


@pytest.mark.parametrize("name", REMOVED)
def test_a_removed_setting_stops_qa_with_one_line_naming_it(corpus_index, setenv, name):
    """The settings of reader experiments that lost (docs/reader.md) are not silently
    ignored: set, `qa` stops and says which one to unset."""
    setenv(QA_INDEX_DIR=corpus_index)
    setenv(**{name: REMOVED[name]})
    code, out, err = qa("ask", LOAN_Q)
    assert code == 2 and not out
    (line,) = err.strip().splitlines()
    assert line.startswith("error: bad setting: ") and "was removed" in line
    assert "docs/reader.md" in line
    if name == "QA_READER":
        assert "QA_READER=full" in line and "use short (the default) or off" in line
    else:
        assert name in line and line.endswith("unset it")


def test_removed_settings_are_refused_from_a_dotenv_file_and_the_environment(tmp_path, monkeypatch):
    from qa.config import RemovedSetting

    (tmp_path / ".env").write_text("QA_TOP_K=3\nQA_RERANK=false\n")
    with pytest.raises(RemovedSetting, match="QA_RERANK was removed"):
        Settings(_env_file=tmp_path / ".env")
    (tmp_path / ".env").write_text("QA_TOP_K=3\n")
    assert Settings(_env_file=tmp_path / ".env").retrieval.top_k == 3
    monkeypatch.setenv("qa_reader_veto_prob", "0")  # names are case-insensitive
    with pytest.raises(RemovedSetting, match="QA_READER_VETO_PROB was removed"):
        Settings()
    monkeypatch.delenv("qa_reader_veto_prob")
    for full in ("full", "true", "YES", "1"):  # true meant full
        monkeypatch.setenv("QA_READER", full)
        with pytest.raises(RemovedSetting, match="QA_READER=.*was removed"):
            Settings()
    for off in ("off", "false", "0", "no"):
        monkeypatch.setenv("QA_READER", off)
        assert Settings().answering.reader == "off"
    with pytest.raises(RemovedSetting, match="QA_READER=full was removed"):
        Settings(reader="full")


# Generated answers: `qa ask` against a stub OpenAI-compatible server that records requests.


def test_llm_settings_reach_the_model(corpus_index, setenv, embedder):
    from qa.retrieval import search as retrieval
    from qa.store import folder as store

    snap = store.open_snapshot(corpus_index, embedder.name, embedder.dim)
    passages = retrieval.search(snap, embedder, LOAN_Q, 5)
    n = next(i for i, p in enumerate(passages, start=1) if "approved an €840 million" in p.text)
    snap.close()
    with stub_server() as (root, requests):
        setenv(
            QA_INDEX_DIR=corpus_index,
            QA_LLM_URL=f"{root}/reply-{quote(f'{TRUE} [{n}].')}/v1",
            QA_LLM_MODEL="m1",
            QA_LLM_API_KEY="k",
            QA_LLM_MAX_ANSWER_TOKENS=77,
        )
        body = ask_json(LOAN_Q)
        assert body["mode"] == "llm" and TRUE in body["answer"]
        assert body["notes"][0].startswith("Generated by m1")
        _, sent, headers = requests[-1]
        assert sent["model"] == "m1" and sent["max_tokens"] == 77
        assert headers["Authorization"] == "Bearer k"
        full_prompt = sum(count_tokens(m["content"]) for m in sent["messages"])
        assert full_prompt > 600

        setenv(QA_LLM_MAX_PROMPT_TOKENS=600)
        ask_json(LOAN_Q)
        assert sum(count_tokens(m["content"]) for m in requests[-1][1]["messages"]) <= 600

        setenv(QA_LLM_URL=f"{root}/slow/v1", QA_LLM_TIMEOUT_S=0.5)
        body = ask_json(LOAN_Q)
        assert body["mode"] == "extractive"
        assert any("within 0.5 s" in note for note in body["notes"]), body["notes"]


def test_without_llm_url_answers_are_extractive(corpus_index, setenv):
    setenv(QA_INDEX_DIR=corpus_index)
    assert ask_json(LOAN_Q)["mode"] == "extractive"


# The HTTP service's own settings.


def test_api_key_guards_every_endpoint_but_health(tmp_path, setenv):
    setenv(QA_INDEX_DIR=tmp_path / "none-yet", QA_API_KEY="s3cret")
    with TestClient(create_app()) as c:
        assert c.get("/health").status_code == 200
        assert c.post("/ask", json={"question": OFF_TOPIC}).status_code == 401
        assert c.get("/documents").status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert c.get("/documents", headers=ok).status_code == 200


def test_cors_origins_are_allowed_and_no_others(tmp_path, setenv):
    setenv(QA_INDEX_DIR=tmp_path / "none-yet", QA_CORS_ORIGINS='["http://ui.example"]')
    with TestClient(create_app()) as c:
        preflight = {"Access-Control-Request-Method": "POST"}
        r = c.options("/ask", headers={"Origin": "http://ui.example", **preflight})
        assert r.headers["access-control-allow-origin"] == "http://ui.example"
        r = c.options("/ask", headers={"Origin": "http://elsewhere.example", **preflight})
        assert "access-control-allow-origin" not in r.headers


def test_max_upload_mb_refuses_larger_uploads(tmp_path, setenv):
    setenv(QA_INDEX_DIR=tmp_path / "ix", QA_MAX_UPLOAD_MB=0.001)
    with TestClient(create_app()) as c:
        big = [("files", ("big.txt", b"x" * 3000, "text/plain"))]
        r = c.post("/documents", files=big)
        assert r.status_code == 413 and "QA_MAX_UPLOAD_MB" in r.json()["message"]
        small = [("files", ("small.txt", b"A short note.", "text/plain"))]
        assert c.post("/documents", files=small).status_code == 202


# The tests themselves: the developer's environment never leaks in (see tests/conftest.py).


def test_a_dotenv_in_the_working_folder_is_not_read_by_tests(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("QA_TOP_K=1\nQA_LLM_URL=http://127.0.0.1:9/v1\n")
    monkeypatch.chdir(tmp_path)
    assert get_settings().retrieval.top_k == 5 and get_settings().llm.url is None
    # ... while the feature itself works: a .env is read when one is given
    assert Settings(_env_file=tmp_path / ".env").retrieval.top_k == 1
