"""Questions to passages: hybrid dense + BM25 search, and follow-up questions made searchable."""
