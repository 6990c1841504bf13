"""Conversations of the chat page, kept in the UI process by id, so a reload keeps its own.

The page names its conversation in the URL (`?c=ID`): reloading the tab brings it back with its
messages and the uploads it follows; another tab, or "New conversation", starts a fresh one.
Kept in memory while the UI runs (the oldest are forgotten past MAX_KEPT); nothing is written.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_KEPT = 500
_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Conversation:
    """What one tab shows: its messages, and the upload jobs it follows (newest last)."""

    id: str
    messages: list[dict] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)


class Conversations:
    """Conversations by id, shared by every session of the UI process."""

    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self._kept: OrderedDict[str, Conversation] = OrderedDict()
        self._lock = threading.Lock()
        self.max_kept = max_kept

    def new(self) -> Conversation:
        return self.get(uuid.uuid4().hex)

    def get(self, conversation_id: str | None) -> Conversation:
        """The conversation with this id (a new, empty one for an id not seen, or not valid)."""
        if not conversation_id or not _ID.match(conversation_id):
            conversation_id = uuid.uuid4().hex
        with self._lock:
            found = self._kept.pop(conversation_id, None) or Conversation(conversation_id)
            self._kept[conversation_id] = found  # the most recently used last
            while len(self._kept) > self.max_kept:
                self._kept.popitem(last=False)
            return found
