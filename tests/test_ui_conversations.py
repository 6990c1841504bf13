"""Conversations kept by id, so that a reloaded tab finds its own."""

from __future__ import annotations

from ui.conversations import Conversations


def test_an_id_brings_back_its_conversation() -> None:
    kept = Conversations()
    first = kept.new()
    first.messages.append({"role": "user", "content": "Hello?"})
    assert kept.get(first.id) is first
    assert kept.get(kept.new().id).messages == []


def test_a_bad_or_missing_id_gets_a_fresh_conversation() -> None:
    kept = Conversations()
    for given in (None, "", "../etc", "x" * 32, "A" * 32):
        fresh = kept.get(given)
        assert fresh.id != given and len(fresh.id) == 32 and fresh.messages == []
    unknown = "0123456789abcdef0123456789abcdef"  # a UI restarted since: same id, empty
    assert kept.get(unknown).id == unknown


def test_the_least_recently_used_are_forgotten() -> None:
    kept = Conversations(max_kept=2)
    a, b = kept.new(), kept.new()
    a.messages.append({"role": "user", "content": "kept"})
    kept.get(a.id)  # used again: b is now the oldest
    kept.new()
    assert kept.get(a.id) is a
    assert kept.get(b.id) is not b
