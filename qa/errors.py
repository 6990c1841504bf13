"""The library's errors; front ends map them to exit codes and HTTP statuses."""


class QAError(Exception):
    """Base class: the message says what went wrong and what to do."""


class InvalidInput(QAError):
    """The caller sent something unusable (empty question, bad path, unsupported file)."""


class NotFound(QAError):
    """A document, job or index that does not exist."""


class IndexMismatch(QAError):
    """An index built by another model, dimension or format version."""


class IndexMissing(NotFound):
    """No index has been built at the given folder yet."""


class Busy(QAError):
    """Another process holds the index's write lock."""


class MissingExtra(InvalidInput):
    """A feature asked for needs an optional extra that is not installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the {extra} extra: pip install 'qa[{extra}]'")
        self.extra = extra


class MissingData(InvalidInput):
    """Data read in place (an eval set's shared corpus or questions) is not where it should be."""


class StoreUnavailable(QAError):
    """The index's store (a Milvus server or Milvus Lite file) cannot be reached or opened."""
