"""Upload jobs on disk: one JSON record per job in INDEX_DIR/uploads/.jobs/, written atomically.

A job's record is written after its files are staged and before POST /documents answers, and
again whenever its status or a file's outcome changes, so a service killed at any moment finds
every accepted job at its next start, and GET /jobs/{id} answers across restarts.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from qa.serving.schemas import Job
from qa.store.folder import fsync_dir

log = logging.getLogger(__name__)

FOLDER = ".jobs"
SUFFIX = ".json"


def write_file(path: Path, data: bytes) -> None:
    """Write `path` atomically: a reader (or a restart) sees the old content or the new, whole."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class JobRecords:
    """The job records of one uploads folder."""

    def __init__(self, uploads: Path) -> None:
        self.folder = Path(uploads) / FOLDER

    def path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}{SUFFIX}"

    def save(self, job: Job) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_file(self.path(job.id), job.model_dump_json(indent=1).encode())

    def load_all(self) -> tuple[list[Job], list[str]]:
        """Every readable record, oldest first, and the ids of records that cannot be read."""
        if not self.folder.is_dir():
            return [], []
        jobs: list[Job] = []
        broken: list[str] = []
        for path in self.folder.glob(f"*{SUFFIX}"):
            if path.name.startswith("."):
                continue  # a write cut short (its temporary file)
            try:
                jobs.append(Job.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError, ValueError) as exc:
                log.warning("upload job record %s cannot be read: %s", path, exc)
                broken.append(path.name.removesuffix(SUFFIX))
        jobs.sort(key=lambda j: (j.created_at or "", j.id))
        return jobs, broken

    def remove(self, job_id: str) -> None:
        self.path(job_id).unlink(missing_ok=True)

    def clear_partial_writes(self) -> None:
        """Temporary files of writes cut short by a kill."""
        if self.folder.is_dir():
            for tmp in self.folder.glob(".*"):
                tmp.unlink(missing_ok=True)
