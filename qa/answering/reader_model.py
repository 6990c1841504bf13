"""The reader's PyTorch side: the model itself, for training, for exporting it to ONNX, and for
reading with QA_EMBED_BACKEND=torch.

Kept apart from `qa/answering/reader.py` so that a process reading on ONNX Runtime (the service, by
default) never imports PyTorch: importing it alone holds ~220 MB resident.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qa.answering.reader_format import CONFIG, ONNX_INPUTS, WEIGHTS, base_model_dir

SPAN_LOSS_WEIGHT = 0.3  # the span loss (~2.5 at the start) would drown answerability's (~0.7)
_NEG = -1e4  # masked logit (safe in bf16/fp16)


class ReaderModel(nn.Module):
    """A BERT-style encoder with an answerability head on its mean token and a span head.

    With `null_span`, the span head may also point at [CLS] (position 0): the "no answer here"
    span SQuAD 2.0 readers learn, trained on the negative pairs."""

    def __init__(self, encoder: nn.Module, null_span: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.null_span = null_span
        hidden = encoder.config.hidden_size
        self.answerable = nn.Linear(hidden, 1)
        self.span = nn.Linear(hidden, 2)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        span_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        # mean of the tokens, as the base model was trained to pool (its [CLS] never was)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        logit = self.answerable(pooled).squeeze(-1).float()
        start, end = self.span(hidden).float().unbind(-1)
        keep = span_mask.bool()
        if self.null_span:
            keep = torch.cat([torch.ones_like(keep[:, :1]), keep[:, 1:]], dim=1)
        start = start.masked_fill(~keep, _NEG)
        end = end.masked_fill(~keep, _NEG)
        out = {"logits": logit, "start_logits": start, "end_logits": end}
        if labels is not None:
            loss = nn.functional.binary_cross_entropy_with_logits(logit, labels.float())
            if start_positions is not None and bool((start_positions >= 0).any()):
                ce = nn.CrossEntropyLoss(ignore_index=-100)
                span_loss = ce(start, start_positions) + ce(end, end_positions)
                loss = loss + SPAN_LOSS_WEIGHT * span_loss
            out["loss"] = loss
        return out


def load_model(model_dir: Path) -> ReaderModel:
    """The bundled base with the weights in `model_dir` (errors are the caller's to word)."""
    from safetensors.torch import load_file
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the unused pooler of the base is not news
    # eager attention: what ONNX export traces faithfully (its outputs equal torch's)
    encoder = BertModel.from_pretrained(
        str(base_model_dir()), add_pooling_layer=False, attn_implementation="eager"
    )
    meta = json.loads((Path(model_dir) / CONFIG).read_text())
    model = ReaderModel(encoder, null_span=bool(meta.get("null_span", False)))
    state = {k: v.float() for k, v in load_file(str(Path(model_dir) / WEIGHTS)).items()}
    unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    if unexpected or not state:
        raise ValueError(f"weights do not fit the model: {unexpected[:3]}")
    return model.eval()


def read(
    model: ReaderModel, enc: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(answer probabilities, start and end log-probabilities) of encoded pairs."""
    inputs = {k: torch.from_numpy(v) for k, v in enc.items()}
    with torch.inference_mode():
        out = model(**inputs)
    probs = torch.sigmoid(out["logits"]).numpy()
    start = torch.log_softmax(out["start_logits"], -1).numpy()
    end = torch.log_softmax(out["end_logits"], -1).numpy()
    return probs, start, end


class _Heads(nn.Module):
    """The reader's outputs as a tuple of tensors, as ONNX export wants them."""

    def __init__(self, model: ReaderModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        span_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(input_ids, attention_mask, token_type_ids, span_mask)
        return out["logits"], out["start_logits"], out["end_logits"]


def export_onnx(model: ReaderModel, sample: dict, out: Path) -> None:
    """`model` as an ONNX file at `out`, traced on the encoded pairs `sample`."""
    axes = {name: {0: "batch", 1: "tokens"} for name in ONNX_INPUTS}
    with torch.no_grad():
        torch.onnx.export(
            _Heads(model),
            tuple(torch.from_numpy(sample[name]) for name in ONNX_INPUTS),
            str(out),
            input_names=list(ONNX_INPUTS),
            output_names=["logits", "start_logits", "end_logits"],
            dynamic_axes=axes
            | {"logits": {0: "batch"}}
            | {n: {0: "batch", 1: "tokens"} for n in ("start_logits", "end_logits")},
            opset_version=17,
            dynamo=False,
        )
