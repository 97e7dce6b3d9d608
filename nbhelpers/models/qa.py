"""Extractive QA models: transformer_qa and bilstm_attention_qa.

Each is registered in MODELS with task="question_answering" and built as

    builder(info=bundle.info, **model_kwargs)

where info comes from nbhelpers/data/qa.py (vocab_size, pad_id, max_context_len,
max_question_len). Both read a batch's question and context windows separately and return
`(start_logits, end_logits)`, each (batch, context positions): how likely the answer starts and
ends at each position. Position 0 is the window's [NULL] slot ("the answer is not in this
window"); positions outside `context_mask` (padding) get the lowest finite value of the dtype,
so neither the loss nor decoding can pick them. model_kwargs are the knobs; an unknown knob is
a UserInputError that lists the accepted ones.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from nbhelpers.models.base import check_knobs, facts_from_info, require
from nbhelpers.registry import MODELS

TASK = "question_answering"




def _build(name: str, model_class: type[nn.Module], info: dict, model_kwargs: dict,
           from_info: dict[str, str]) -> nn.Module:
    """model_class(**facts from info, **model_kwargs), checking the knob names first."""
    check_knobs(name, model_class, model_kwargs, exclude=from_info)
    facts = facts_from_info(name, info, from_info, needs="a question-answering dataset")
    return model_class(**facts, **model_kwargs)


def _mask_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Padding positions get the dtype's lowest value (finite, so fp16 stays NaN-free)."""
    return logits.masked_fill(~mask, torch.finfo(logits.dtype).min)


# --------------------------------------------------------------------------------------------
# transformer_qa
# --------------------------------------------------------------------------------------------

class TransformerQA(nn.Module):
    """Two Transformer encoders (context, question), fusion with the pooled question, span heads.

    Shared token embedding plus a learned position embedding per input; a pre-LN encoder of
    `context_layers` layers reads the context window, a separate one of `question_layers` reads
    the question. The question's encoding is mean-pooled over its real tokens into one vector q,
    and every context position c becomes Linear([c, q, c * q]) (the product lets a position
    score its match with the question); `fusion_layers` more encoder layers let the fused
    positions see each other, and two linear heads give the start and end logits.

    At defaults (d_model 256, 4 + 2 + 1 layers of 4 heads, feed-forward 1024) and a
    30,000-token vocabulary: 13.5M parameters, 7.7M of them in the embedding.
    """

    def __init__(self, *, vocab_size: int, pad_id: int = 0, max_context_len: int = 256,
                 max_question_len: int = 64, d_model: int = 256, heads: int = 4, ff: int = 1024,
                 context_layers: int = 4, question_layers: int = 2, fusion_layers: int = 1,
                 dropout: float = 0.1):
        super().__init__()
        require(vocab_size >= 2, f"transformer_qa: vocab_size must be >= 2, got {vocab_size}")
        require(d_model >= 1 and heads >= 1 and d_model % heads == 0,
                 f"transformer_qa: d_model ({d_model}) must be a positive multiple of heads ({heads})")
        require(ff >= 1, f"transformer_qa: ff must be >= 1, got {ff}")
        require(context_layers >= 1 and question_layers >= 1 and fusion_layers >= 0,
                 "transformer_qa: context_layers and question_layers must be >= 1, fusion_layers >= 0")
        require(0 <= dropout < 1, f"transformer_qa: dropout must be in [0, 1), got {dropout}")
        self.max_context_len, self.max_question_len = max_context_len, max_question_len
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        # +1: the [NULL] slot in front of every window.
        self.context_positions = nn.Embedding(max_context_len + 1, d_model)
        self.question_positions = nn.Embedding(max_question_len, d_model)
        self.dropout = nn.Dropout(dropout)

        def encoder(layers: int) -> nn.TransformerEncoder | None:
            if layers == 0:
                return None
            layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=ff, dropout=dropout,
                                               activation="gelu", batch_first=True, norm_first=True)
            # enable_nested_tensor only pays off for inference and warns with norm_first.
            return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)

        self.context_encoder = encoder(context_layers)
        self.question_encoder = encoder(question_layers)
        self.fuse = nn.Sequential(nn.Linear(3 * d_model, d_model), nn.GELU(), nn.Dropout(dropout))
        self.fusion_encoder = encoder(fusion_layers)
        self.start_head = nn.Linear(d_model, 1)
        self.end_head = nn.Linear(d_model, 1)
        for name, parameter in self.named_parameters():
            if parameter.ndim >= 2 and "norm" not in name:
                nn.init.normal_(parameter, std=0.02)

    def _encode(self, ids: torch.Tensor, mask: torch.Tensor, positions: nn.Embedding,
                encoder: nn.TransformerEncoder) -> torch.Tensor:
        length = ids.shape[1]
        if length > positions.num_embeddings:
            raise ValueError(f"transformer_qa: {length} positions exceed the {positions.num_embeddings} "
                             "it was built for (max_context_len/max_question_len)")
        x = self.embedding(ids) + positions(torch.arange(length, device=ids.device))
        return encoder(self.dropout(x), src_key_padding_mask=~mask)

    def forward(self, question_ids: torch.Tensor, question_mask: torch.Tensor, context_ids: torch.Tensor,
                context_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        question_mask, context_mask = question_mask.bool(), context_mask.bool()
        c = self._encode(context_ids, context_mask, self.context_positions, self.context_encoder)
        q = self._encode(question_ids, question_mask, self.question_positions, self.question_encoder)
        weights = question_mask.unsqueeze(-1).to(q.dtype)
        pooled = (q * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)      # (B, d)
        pooled = pooled.unsqueeze(1).expand_as(c)
        h = self.fuse(torch.cat([c, pooled, c * pooled], dim=-1))
        if self.fusion_encoder is not None:
            h = self.fusion_encoder(h, src_key_padding_mask=~context_mask)
        start = self.start_head(h).squeeze(-1)
        end = self.end_head(h).squeeze(-1)
        return _mask_logits(start, context_mask), _mask_logits(end, context_mask)


@MODELS.register("transformer_qa", task=TASK,
                 description="separate Transformer encoders for context and question, pooled-question "
                             "fusion, start/end heads (~13.5M params at 30k tokens)")
def build_transformer_qa(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """transformer_qa; knobs: d_model, heads, ff, context_layers, question_layers, fusion_layers, dropout."""
    return _build("transformer_qa", TransformerQA, info, model_kwargs,
                  {"vocab_size": "vocab_size", "pad_id": "pad_id", "max_context_len": "max_context_len",
                   "max_question_len": "max_question_len"})


# --------------------------------------------------------------------------------------------
# bilstm_attention_qa
# --------------------------------------------------------------------------------------------

def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a batch-first tensor within its length; padding stays at the end."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)          # (1, T)
    last = (lengths.to(x.device) - 1).unsqueeze(1)                           # (B, 1)
    index = torch.where(steps <= last, last - steps, steps)                  # (B, T)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class MaskedBiLSTM(nn.Module):
    """A stacked bidirectional LSTM that never reads padding, without packed sequences.

    The forward direction reads the padded batch as it is (a real position only sees the real
    positions before it); the backward direction reads each sequence reversed within its length,
    so it starts at the sequence's last real token, not at the padding. On the CPU this is about
    2.5x faster than nn.LSTM on a PackedSequence, whose per-step input projections and weight
    gradients dominate a small model's step. Outputs at padding positions are garbage; callers
    mask them. Parameters are those of nn.LSTM(bidirectional=True) with the same sizes.
    """

    def __init__(self, input_size: int, hidden: int, *, layers: int = 1, dropout: float = 0.0):
        super().__init__()
        sizes = [input_size] + [2 * hidden] * (layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(size, hidden, batch_first=True) for size in sizes)
        self.backward_lstms = nn.ModuleList(nn.LSTM(size, hidden, batch_first=True) for size in sizes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1).clamp(min=1)
        for layer, (forward_lstm, backward_lstm) in enumerate(zip(self.forward_lstms, self.backward_lstms)):
            if layer > 0:
                x = self.dropout(x)
            ahead, _ = forward_lstm(x)
            behind, _ = backward_lstm(reverse_padded(x, lengths))
            x = torch.cat([ahead, reverse_padded(behind, lengths)], dim=-1)
        return x


def exact_match_feature(question_ids: torch.Tensor, question_mask: torch.Tensor,
                        context_ids: torch.Tensor) -> torch.Tensor:
    """(B, Tc, 1): 1 where a context token id occurs among the question's real tokens."""
    same = context_ids.unsqueeze(2) == question_ids.unsqueeze(1)                 # (B, Tc, Tq)
    return (same & question_mask.unsqueeze(1)).any(dim=2, keepdim=True)


class BiLSTMAttentionQA(nn.Module):
    """BiLSTM encoders, dot attention over the question for each context token, fusion, span heads.

    A shared embedding feeds two BiLSTMs, one over the context window and one over the question;
    with `exact_match` (DrQA's feature, Chen et al. 2017) each context token's input also says
    whether the same token occurs in the question, which makes names easy to find. Each context
    position i attends to the question: a_ij = softmax_j(c_i . q_j / sqrt(2 hidden))
    over the question's real tokens, giving a summary of the question made for that position,
    u_i = sum_j a_ij q_j. The fusion layer maps [c_i, u_i, c_i * u_i] to 2 * hidden features
    (ReLU): the product is where a position and the question agree. `modeling_layers` more
    BiLSTM layers let the fused positions read each other (is this year in the sentence about the
    person asked for?), and a linear head on them gives the start logits, another the end logits.

    At defaults (embedding 128, hidden 128 per direction, 2 modeling layers) and a 30,000-token
    vocabulary: 5.3M parameters, 3.8M of them in the embedding.
    """

    def __init__(self, *, vocab_size: int, pad_id: int = 0, embed_dim: int = 128, hidden: int = 128,
                 modeling_layers: int = 2, dropout: float = 0.2, exact_match: bool = True):
        super().__init__()
        require(vocab_size >= 2, f"bilstm_attention_qa: vocab_size must be >= 2, got {vocab_size}")
        require(embed_dim >= 1 and hidden >= 1, "bilstm_attention_qa: embed_dim and hidden must be >= 1")
        require(modeling_layers >= 1, f"bilstm_attention_qa: modeling_layers must be >= 1, got {modeling_layers}")
        require(0 <= dropout < 1, f"bilstm_attention_qa: dropout must be in [0, 1), got {dropout}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.exact_match = bool(exact_match)
        self.context_lstm = MaskedBiLSTM(embed_dim + int(self.exact_match), hidden)
        self.question_lstm = MaskedBiLSTM(embed_dim, hidden)
        self.scale = 1.0 / math.sqrt(2 * hidden)
        # Fusing down to 2 * hidden before the modeling LSTM keeps its input small: on the CPU
        # the LSTMs' matrix products are most of a step's time.
        self.fuse = nn.Sequential(nn.Linear(6 * hidden, 2 * hidden), nn.ReLU())
        self.modeling_lstm = MaskedBiLSTM(2 * hidden, hidden, layers=modeling_layers, dropout=dropout)
        self.start_head = nn.Linear(2 * hidden, 1)
        self.end_head = nn.Linear(2 * hidden, 1)

    def forward(self, question_ids: torch.Tensor, question_mask: torch.Tensor, context_ids: torch.Tensor,
                context_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        question_mask, context_mask = question_mask.bool(), context_mask.bool()
        x = self.dropout(self.embedding(context_ids))
        if self.exact_match:
            x = torch.cat([x, exact_match_feature(question_ids, question_mask, context_ids).to(x.dtype)], dim=-1)
        c = self.context_lstm(x, context_mask)
        q = self.question_lstm(self.dropout(self.embedding(question_ids)), question_mask)
        scores = torch.bmm(c, q.transpose(1, 2)) * self.scale                     # (B, Tc, Tq)
        scores = scores.masked_fill(~question_mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        attended = torch.bmm(torch.softmax(scores, dim=-1), q)                      # (B, Tc, 2h)
        fused = self.fuse(self.dropout(torch.cat([c, attended, c * attended], dim=-1)))
        m = self.dropout(self.modeling_lstm(fused, context_mask))
        start = self.start_head(m).squeeze(-1)
        end = self.end_head(m).squeeze(-1)
        return _mask_logits(start, context_mask), _mask_logits(end, context_mask)


@MODELS.register("bilstm_attention_qa", task=TASK,
                 description="BiLSTM encoders, dot attention over the question per context token, "
                             "fusion, modeling BiLSTM, start/end heads (~5.3M params at 30k tokens)")
def build_bilstm_attention_qa(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """bilstm_attention_qa; knobs: embed_dim, hidden, modeling_layers, dropout, exact_match."""
    return _build("bilstm_attention_qa", BiLSTMAttentionQA, info, model_kwargs,
                  {"vocab_size": "vocab_size", "pad_id": "pad_id"})


__all__ = ["BiLSTMAttentionQA", "TransformerQA", "build_bilstm_attention_qa", "build_transformer_qa"]
