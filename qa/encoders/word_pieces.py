"""The bundled model's word pieces through the Rust `tokenizers` library alone.

transformers' `AutoTokenizer` imports PyTorch (~220 MB resident) even where ONNX Runtime runs
the model; the tokenizer it wraps reads the same `tokenizer.json` and gives the same ids
(tested against it). Each one made here is configured once and never changed after, so threads
may share it: changing a shared one while another thread encodes fails ("Already borrowed").
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer


def word_pieces(
    model_dir: Path,
    max_tokens: int | None = None,
    pad: bool = False,
    strategy: str = "longest_first",
) -> Tokenizer:
    """The tokenizer in `model_dir`; truncating to `max_tokens` (by `strategy` for pairs) and
    padding each batch to its longest, or neither (`tokenizer.json` may carry its own)."""
    tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if max_tokens is not None:
        tokenizer.enable_truncation(max_tokens, strategy=strategy)
    if pad:
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    return tokenizer
