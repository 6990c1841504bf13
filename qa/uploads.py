"""Uploaded files: names checked, saved into INDEX_DIR/uploads, indexed one job at a time.

A request only checks and stages its files (INDEX_DIR/uploads/.incoming/JOB/); a single worker
thread then parses each one, moves the good ones into INDEX_DIR/uploads/ (the document id is the
file name, so a new upload of a name replaces the old document) and indexes them. A file that
cannot be parsed is reported in its job and never replaces what was stored before.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from qa import indexing, ingest
from qa.chunking import ChunkingParams
from qa.config import Settings
from qa.embedding import Embedder
from qa.errors import Busy, InvalidInput, NotFound
from qa.index_store import IndexStore, open_store
from qa.models import Document
from qa.schemas import FileOutcome, Job

log = logging.getLogger(__name__)

UPLOADS = "uploads"
INCOMING = ".incoming"
MAX_FILES = 20  # per request
MAX_NAME_BYTES = 255  # what Linux file systems allow
KEEP_JOBS = 200  # finished jobs remembered for GET /jobs/{id}
BUSY_RETRIES = 60  # seconds to wait for another writer (`qa index`) before a job fails


class UnsupportedType(InvalidInput):
    """A file whose type cannot be indexed."""


class TooLarge(InvalidInput):
    """A file over the upload limit."""


@dataclass(frozen=True)
class Upload:
    """One file of a request: the name the client gave and its content."""

    filename: str | None
    file: BinaryIO
    size: int | None = None


def check_filename(name: str | None) -> str:
    """The name as a document id, or InvalidInput/UnsupportedType saying what to fix."""
    if name is None or not name.strip():
        raise InvalidInput("a file has no name; send each file with a file name like notes.txt")
    shown = repr(name[:80])
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidInput(f"file name {shown} holds control characters (NUL, newline); rename it")
    if "/" in name or "\\" in name:
        raise InvalidInput(
            f"file name {shown} holds a path; send the bare file name, e.g. "
            f"{name.replace(chr(92), '/').rsplit('/', 1)[-1] or 'notes.txt'!r}"
        )
    if name.startswith("."):
        raise InvalidInput(f"file name {shown} is hidden (starts with a dot); rename it")
    if name != name.strip():
        raise InvalidInput(f"file name {shown} starts or ends with spaces; rename it")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"file name {shown} is not valid text; rename it") from None
    if size > MAX_NAME_BYTES:
        raise InvalidInput(f"file name {shown}… is over {MAX_NAME_BYTES} bytes; shorten it")
    suffix = Path(name).suffix.lower()
    if suffix not in ingest.SUPPORTED:
        raise UnsupportedType(
            f"{name!r}: unsupported file type {suffix or '(none)'}; "
            f"upload one of {', '.join(ingest.SUPPORTED)}"
        )
    return name


def _size(upload: Upload) -> int:
    if upload.size is not None:
        return upload.size
    upload.file.seek(0, 2)
    size = upload.file.tell()
    upload.file.seek(0)
    return size


class Jobs:
    """The upload queue: stages files, runs indexing jobs one at a time, removes documents."""

    def __init__(
        self,
        index_dir: Path,
        embedder: Embedder,
        settings: Settings,
        target: IndexStore | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)  # uploaded files are kept in its uploads/ folder
        self.target: IndexStore = target or open_store(self.index_dir, settings)
        self.uploads = self.index_dir / UPLOADS
        self.embedder = embedder
        self.settings = settings
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()  # guards self._jobs and the Job records in it
        self._writing = threading.Lock()  # one index writer in this process
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="qa-index-jobs", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the running job; queued jobs are dropped (their staged files too)."""
        self._closing.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, uploads: Sequence[Upload]) -> Job:
        """Check every file, then stage them and queue a job; nothing is written on bad input."""
        if not uploads:
            raise InvalidInput("no files; send one or more files in the form field `files`")
        if len(uploads) > MAX_FILES:
            raise InvalidInput(f"{len(uploads)} files in one request; send at most {MAX_FILES}")
        names = [check_filename(u.filename) for u in uploads]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidInput(f"{', '.join(map(repr, twice))} given twice; send each file once")
        limit = int(self.settings.max_upload_mb * 1e6)
        for name, upload in zip(names, uploads, strict=True):
            size = _size(upload)
            if size > limit:
                raise TooLarge(
                    f"{name!r} is {size / 1e6:.1f} MB; the upload limit is "
                    f"{self.settings.max_upload_mb:g} MB per file (QA_MAX_UPLOAD_MB)"
                )
            if size == 0:
                raise InvalidInput(f"{name!r} is empty; upload a file with some text in it")

        job_id = uuid.uuid4().hex
        staging = self.uploads / INCOMING / job_id
        staging.mkdir(parents=True)
        try:
            for name, upload in zip(names, uploads, strict=True):
                upload.file.seek(0)
                with open(staging / name, "xb") as out:
                    shutil.copyfileobj(upload.file, out, 1 << 20)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        job = Job(
            id=job_id,
            status="queued",
            total=len(names),
            files=[FileOutcome(filename=n, status="pending") for n in names],
        )
        with self._lock:
            self._jobs[job_id] = job
            self._forget_old()
            queued = job.model_copy(deep=True)
        self._queue.put(job_id)
        return queued

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFound(
                    f"no job with id {job_id!r}; jobs are kept in memory until the service "
                    "restarts, and POST /documents returns the id of a new one"
                )
            return job.model_copy(deep=True)

    def remove(self, doc_id: str, source: str) -> str | None:
        """Drop a document from the index, and its file when it was uploaded; the new version."""
        if not self._writing.acquire(timeout=10):
            raise Busy("an upload is being indexed; try again when its job is done")
        try:
            report = indexing.index_files([], self.target, self.embedder, remove_ids=[doc_id])
        finally:
            self._writing.release()
        stored = Path(source)
        # Only files this service saved are deleted, never a user's own indexed folder.
        if stored.parent.resolve() == self.uploads.resolve() and stored.name == doc_id:
            stored.unlink(missing_ok=True)
        return report.version

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.status in ("done", "failed")]
        for key in finished[: max(0, len(self._jobs) - KEEP_JOBS)]:
            del self._jobs[key]

    def _update(self, job: Job, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None:
            with self._lock:
                job = self._jobs.get(job_id)
            staging = self.uploads / INCOMING / job_id
            try:
                if job is not None and self._closing.is_set():
                    self._update(job, status="failed", error="the service stopped; upload again")
                elif job is not None:
                    self._run(job, staging)
            except Exception as exc:  # a job must never kill the worker
                log.exception("indexing job %s failed", job_id)
                self._update(job, status="failed", stage=None, error=str(exc) or repr(exc))
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def _run(self, job: Job, staging: Path) -> None:
        self._update(job, status="running", stage="checking")
        max_bytes = int(self.settings.max_file_mb * 1e6)
        outcomes = {f.filename: f for f in job.files}
        good: list[ingest.SourceFile] = []
        loaded: dict[str, Document] = {}
        for n, outcome in enumerate(job.files):
            self._update(job, done=n)
            try:  # parse before replacing anything, so a bad file never displaces a good one
                doc = ingest.load(
                    staging / outcome.filename,
                    outcome.filename,
                    max_bytes=max_bytes,
                    on_page=lambda done, total: self._update(
                        job, stage="reading scanned pages", done=done, total=total
                    ),
                )
            except InvalidInput as exc:
                self._update(outcome, status="failed", error=str(exc))
                continue
            finally:
                self._update(job, stage="checking", done=n, total=len(job.files))
            target = self.uploads / outcome.filename
            (staging / outcome.filename).replace(target)
            good.append(ingest.SourceFile(target, outcome.filename))
            loaded[outcome.filename] = replace(doc, source=str(target))
        if not good:
            self._update(job, status="failed", stage=None, error="no file could be indexed")
            return

        def on_progress(stage: str, done: int, total: int) -> None:
            self._update(job, stage=stage, done=done, total=total)

        report = self._index(good, job, on_progress, loaded)
        for doc_id in report.added:
            self._update(outcomes[doc_id], status="added")
        for doc_id in report.updated:
            self._update(outcomes[doc_id], status="updated")
        for doc_id in report.unchanged:
            self._update(outcomes[doc_id], status="unchanged")
        by_path = {str(f.path): f.doc_id for f in good}
        for path, reason in report.failed:
            self._update(
                outcomes[by_path.get(path, Path(path).name)], status="failed", error=reason
            )
        ok = any(f.status != "failed" for f in job.files)
        self._update(
            job,
            status="done" if ok else "failed",
            stage="done",
            version=report.version,
            error=None if ok else "no file could be indexed",
        )

    def _index(
        self,
        files: list[ingest.SourceFile],
        job: Job,
        on_progress,
        loaded: dict[str, Document],
    ) -> indexing.IndexReport:
        # A new index takes the configured chunking; an existing one keeps its own, so an
        # upload never re-embeds the whole collection because a setting changed.
        params = None
        if self.target.current_version() is None:
            params = ChunkingParams(
                self.settings.chunk_tokens, self.settings.chunk_overlap_sentences
            )
        for attempt in range(BUSY_RETRIES + 1):
            try:
                with self._writing:
                    return indexing.index_files(
                        files,
                        self.target,
                        self.embedder,
                        params,
                        batch_size=self.settings.embed_batch_size,
                        max_file_bytes=int(self.settings.max_file_mb * 1e6),
                        on_progress=on_progress,
                        loaded=loaded,
                    )
            except Busy:  # `qa index` in another process holds the index
                if attempt == BUSY_RETRIES:
                    raise
                self._update(job, stage="waiting for another writer")
                time.sleep(1.0)
        raise AssertionError("unreachable")
