"""Uploaded files: names checked, saved into INDEX_DIR/uploads, indexed one job at a time.

A request checks each file on its own: a bad one (empty, too large, a type that cannot be
indexed, a name that cannot be stored) is reported failed in the job with its reason, and the
others go on. The good ones are staged (INDEX_DIR/uploads/.incoming/JOB/) and the job's record
is written (INDEX_DIR/uploads/.jobs/JOB.json) before the request is answered, so an accepted
upload survives a crash: at its next start the service resumes every unfinished job, or fails
it with the reason. A single worker thread parses each file, copies the good ones into
INDEX_DIR/uploads/ (the document id is the file name, so a new upload of a name replaces the old
document) and indexes them; the staged copies go when the job has ended. A file that cannot be
parsed is reported in its job and never replaces what was stored before.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from qa import indexing
from qa.config import Settings
from qa.encoders.embedding import Embedder
from qa.errors import Busy, InvalidInput, NotFound
from qa.records import Document
from qa.serving.job_records import JobRecords, fsync_dir, write_file
from qa.serving.schemas import FileOutcome, Job
from qa.sources import ingest
from qa.sources.chunking import ChunkingParams
from qa.store.interface import IndexStore
from qa.store.opening import open_store

log = logging.getLogger(__name__)

UPLOADS = "uploads"
INCOMING = ".incoming"
MAX_FILES = 20  # per request
MAX_NAME_BYTES = 255  # what Linux file systems allow
KEEP_JOBS = 200  # finished jobs remembered for GET /jobs/{id}
BUSY_RETRIES = 60  # seconds to wait for another writer (`qa index`) before a job fails
LOST = "its saved copy was lost when the service stopped; upload it again"


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
        raise InvalidInput("the file has no name; send each file with a file name like notes.txt")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidInput("its name holds control characters (NUL, newline); rename it")
    if "/" in name or "\\" in name:
        raise InvalidInput(
            "its name holds a path; send the bare file name, e.g. "
            f"{name.replace(chr(92), '/').rsplit('/', 1)[-1] or 'notes.txt'!r}"
        )
    if name.startswith("."):
        raise InvalidInput("its name is hidden (starts with a dot); rename it")
    if name != name.strip():
        raise InvalidInput("its name starts or ends with spaces; rename it")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("its name is not valid text; rename it") from None
    if size > MAX_NAME_BYTES:
        raise InvalidInput(f"its name is over {MAX_NAME_BYTES} bytes; shorten it")
    suffix = Path(name).suffix.lower()
    if suffix not in ingest.SUPPORTED:
        kinds = ", ".join(ingest.SUPPORTED)
        raise UnsupportedType(f"unsupported file type {suffix or '(none)'}; upload one of {kinds}")
    return name


def check_file(upload: Upload, limit_mb: float) -> str:
    """The file's name as a document id, or the InvalidInput that keeps it out of the index."""
    name = check_filename(upload.filename)
    size = _size(upload)
    if size > int(limit_mb * 1e6):
        raise TooLarge(
            f"it is {size / 1e6:.1f} MB, over the upload limit of {limit_mb:g} MB per file "
            "(QA_MAX_UPLOAD_MB)"
        )
    if size == 0:
        raise InvalidInput("the file is empty; upload a file with some text in it")
    return name


def refusal(problems: Sequence[tuple[str, InvalidInput]]) -> InvalidInput:
    """One error for a request none of whose files can be indexed, naming each file's reason."""
    kinds = {type(exc) for _, exc in problems}
    kind = kinds.pop() if len(kinds) == 1 else InvalidInput
    return kind("; ".join(f"{name[:80]!r}: {exc}" for name, exc in problems))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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
        self.records = JobRecords(self.uploads)
        self.embedder = embedder
        self.settings = settings
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()  # guards self._jobs and the Job records in it
        self._writing = threading.Lock()  # one index writer in this process
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def start(self) -> None:
        """Resume the jobs an earlier run left unfinished, then take new ones."""
        self._recover()
        self._thread = threading.Thread(target=self._work, name="qa-index-jobs", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the running job; queued jobs stay on disk and resume at the next start."""
        self._closing.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, uploads: Sequence[Upload]) -> Job:
        """Check each file, stage the good ones and queue a job for them; the bad ones are
        reported failed in it. Nothing is written when no file can be indexed."""
        if not uploads:
            raise InvalidInput("no files; send one or more files in the form field `files`")
        if len(uploads) > MAX_FILES:
            raise InvalidInput(f"{len(uploads)} files in one request; send at most {MAX_FILES}")
        given = [u.filename for u in uploads]
        twice = sorted({n for n in given if n and given.count(n) > 1})
        if twice:
            raise InvalidInput(f"{', '.join(map(repr, twice))} given twice; send each file once")
        outcomes: list[FileOutcome] = []
        good: list[tuple[str, Upload]] = []
        problems: list[tuple[str, InvalidInput]] = []
        for upload in uploads:
            try:
                name = check_file(upload, self.settings.serving.max_upload_mb)
            except InvalidInput as exc:
                shown = upload.filename or ""
                problems.append((shown, exc))
                outcomes.append(FileOutcome(filename=shown, status="failed", error=str(exc)))
                continue
            good.append((name, upload))
            outcomes.append(FileOutcome(filename=name, status="pending"))
        if not good:
            raise refusal(problems)

        job = Job(
            id=uuid.uuid4().hex,
            status="queued",
            total=len(good),
            files=outcomes,
            created_at=_now(),
        )
        staging = self.uploads / INCOMING / job.id
        staging.mkdir(parents=True)
        try:
            for name, upload in good:
                upload.file.seek(0)
                with open(staging / name, "xb") as out:
                    shutil.copyfileobj(upload.file, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
            fsync_dir(staging)
            self.records.save(job)  # from here on the upload is accepted, crash or not
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with self._lock:
            self._jobs[job.id] = job
            forgotten = self._forget_old()
            queued = job.model_copy(deep=True)
        for old in forgotten:
            self.records.remove(old)
        self._queue.put(job.id)
        return queued

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFound(
                    f"no job with id {job_id!r}; the last {KEEP_JOBS} uploads are kept, "
                    "and POST /documents returns the id of a new one"
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

    def _recover(self) -> None:
        """Load the jobs of earlier runs; queue the unfinished ones again, or fail them (their
        files lost) with the reason; drop staged files no job owns."""
        self.records.clear_partial_writes()
        found, broken = self.records.load_all()
        for job_id in broken:
            found.append(
                Job(
                    id=job_id,
                    status="failed",
                    files=[],
                    error="its record could not be read after the service stopped; "
                    "upload the files again",
                    created_at=_now(),
                )
            )
            self.records.save(found[-1])
        resumed: list[str] = []
        for job in found:
            if job.status in ("queued", "running"):
                self._reset(job)
                if job.status == "queued":
                    resumed.append(job.id)
                else:
                    self.records.save(job)
        with self._lock:
            for job in found:
                self._jobs[job.id] = job
            forgotten = self._forget_old()
        for job_id in forgotten:
            self.records.remove(job_id)
        for partial in self.uploads.glob(".*"):  # copies cut short by a kill (see write_file)
            if partial.is_file():
                partial.unlink()
        incoming = self.uploads / INCOMING
        if incoming.is_dir():
            for staged in incoming.iterdir():
                if staged.name not in resumed:
                    shutil.rmtree(staged, ignore_errors=True)
        for job_id in resumed:
            log.info("resuming upload job %s, left unfinished when the service stopped", job_id)
            self._queue.put(job_id)

    def _reset(self, job: Job) -> None:
        """An unfinished job of an earlier run, queued again; a file whose staged copy is gone
        fails, and a job with no file left to index ends."""
        staging = self.uploads / INCOMING / job.id
        for outcome in job.files:
            if outcome.status == "pending" and not (staging / outcome.filename).is_file():
                outcome.status, outcome.error = "failed", LOST
        pending = [f for f in job.files if f.status == "pending"]
        if pending:
            job.status, job.stage, job.done, job.total = "queued", None, 0, len(pending)
            return
        ok = any(f.status not in ("failed", "pending") for f in job.files)
        job.status = "done" if ok else "failed"
        job.stage = "done" if ok else None
        job.error = None if ok else "no file could be indexed"

    def _forget_old(self) -> list[str]:
        """Forget the oldest finished jobs beyond KEEP_JOBS; their ids."""
        finished = [k for k, j in self._jobs.items() if j.status in ("done", "failed")]
        gone = finished[: max(0, len(self._jobs) - KEEP_JOBS)]
        for key in gone:
            del self._jobs[key]
        return gone

    def _update(self, job: Job | FileOutcome, **changes: object) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)

    def _save(self, job: Job) -> None:
        """Write the job's record (its status or a file's outcome changed)."""
        with self._lock:
            snapshot = job.model_copy(deep=True)
        self.records.save(snapshot)

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None and not self._closing.is_set():
            with self._lock:
                job = self._jobs.get(job_id)
            if job is None:
                continue
            staging = self.uploads / INCOMING / job_id
            try:
                end = self._run(job, staging)
            except Exception as exc:  # a job must never kill the worker
                log.exception("indexing job %s failed", job_id)
                end = {"status": "failed", "stage": None, "error": str(exc) or repr(exc)}
            # The end is recorded and the staged files are gone before GET /jobs tells it.
            with self._lock:
                ended = job.model_copy(deep=True, update=end)
            try:
                self.records.save(ended)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                self._update(job, **end)

    def _run(self, job: Job, staging: Path) -> dict:
        """Index the job's pending files; the job's final fields (status, error, ...)."""
        pending = [f for f in job.files if f.status == "pending"]
        self._update(job, status="running", stage="checking", done=0, total=len(pending))
        self._save(job)
        max_bytes = int(self.settings.sources.max_file_mb * 1e6)
        outcomes = {f.filename: f for f in pending}
        good: list[ingest.SourceFile] = []
        loaded: dict[str, Document] = {}
        for n, outcome in enumerate(pending):
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
                self._save(job)
                continue
            finally:
                self._update(job, stage="checking", done=n + 1, total=len(pending))
            # A copy, so that the staged file stays until the job ends: a job resumed after a
            # crash finds every file it has not indexed yet.
            target = self.uploads / outcome.filename
            write_file(target, (staging / outcome.filename).read_bytes())
            good.append(ingest.SourceFile(target, outcome.filename))
            loaded[outcome.filename] = replace(doc, source=str(target))
        if not good:
            return {"status": "failed", "stage": None, "error": "no file could be indexed"}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage == "writing":  # of the whole index; say it in this upload's files
                done = total = len(good)
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
        ok = any(f.status not in ("failed", "pending") for f in job.files)
        return {
            "status": "done" if ok else "failed",
            "stage": "done",
            "done": len(good),
            "total": len(good),
            "version": report.version,
            "error": None if ok else "no file could be indexed",
        }

    def _index(
        self,
        files: list[ingest.SourceFile],
        job: Job,
        on_progress: indexing.Progress,
        loaded: dict[str, Document],
    ) -> indexing.IndexReport:
        # A new index takes the configured chunking; an existing one keeps its own, so an
        # upload never re-embeds the whole collection because a setting changed.
        params = None
        if self.target.current_version() is None:
            params = ChunkingParams(
                self.settings.sources.chunk_tokens, self.settings.sources.chunk_overlap_sentences
            )
        for attempt in range(BUSY_RETRIES + 1):
            try:
                with self._writing:
                    return indexing.index_files(
                        files,
                        self.target,
                        self.embedder,
                        params,
                        batch_size=self.settings.encoders.embed_batch_size,
                        max_file_bytes=int(self.settings.sources.max_file_mb * 1e6),
                        on_progress=on_progress,
                        loaded=loaded,
                    )
            except Busy:  # `qa index` in another process holds the index
                if attempt == BUSY_RETRIES:
                    raise
                self._update(job, stage="waiting for another writer")
                time.sleep(1.0)
        raise AssertionError("unreachable")
