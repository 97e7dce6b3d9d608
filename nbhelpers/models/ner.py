"""NER models: lstm_crf_ner and bilstm_crf_charcnn_ner (alias lstm_crf_charcnn_ner).

Both are `BiLSTMCRF`: word embeddings (optionally concatenated with character-CNN features of
each word) -> dropout -> BiLSTM -> dropout -> linear emissions -> CRF (nbhelpers/models/crf.py).
Registered in MODELS with task="ner" and built as `builder(info=bundle.info, **model_kwargs)`
from the info of nbhelpers/data/ner.py. The model's call gives emissions; the task computes
the loss with `model.crf(emissions, tags, mask)` (negative log-likelihood per sentence) and
decodes with `model.crf.decode(emissions, mask)` (Viterbi).

By default the CRF forbids the transitions IOB2 rules out (an I-X first in a sentence, after
O, or after B-Y/I-Y of another type); `constrain_transitions=False` lets it learn them instead.

Sizes at the defaults (embed_dim 100, hidden 200 per direction, 100 char filters): the BiLSTM
and emission layer hold about 0.49M parameters and the embedding 100 per word, so
lstm_crf_ner has 1-3M parameters on conll2003 and wikiann_en (10-20k-word vocabularies) and
about 0.85M on gazetteer_ner (3.6k words); the character CNN adds about 0.17M (its filters and
the wider LSTM input).
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import torch
from torch import nn

from nbhelpers.errors import UserInputError
from nbhelpers.models.crf import CRF, iob2_constraints
from nbhelpers.models.base import require
from nbhelpers.registry import MODELS

TASK = "ner"




class CharCNN(nn.Module):
    """Character embeddings -> 1-D convolution over each word -> max over its characters.

    Ma & Hovy (2016): a word's spelling (capitals, suffixes such as "-son" or "-burg")
    becomes a fixed-size vector, so a word outside the vocabulary still says something.
    """

    def __init__(self, *, char_vocab_size: int, char_embed_dim: int = 30, filters: int = 100,
                 kernel_size: int = 3, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(char_vocab_size, char_embed_dim, padding_idx=pad_id)
        self.conv = nn.Conv1d(char_embed_dim, filters, kernel_size, padding=kernel_size // 2)
        self.out_dim = filters

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        """(B, T, C) character ids -> (B, T, filters) features."""
        b, t, c = char_ids.shape
        flat = char_ids.reshape(b * t, c)
        features = self.conv(self.embedding(flat).transpose(1, 2))                 # (B*T, F, C)
        real = (flat != self.pad_id).unsqueeze(1)
        # Max over real characters only; a padding word (no characters) gets zeros.
        pooled = features.masked_fill(~real, torch.finfo(features.dtype).min).amax(dim=2)
        pooled = torch.where(real.any(dim=2), pooled, torch.zeros_like(pooled))
        return pooled.reshape(b, t, -1)


class BiLSTMCRF(nn.Module):
    """(word_ids, mask[, char_ids]) -> emissions (B, T, num_tags); `self.crf` scores and decodes.

    `word_dropout`: in training mode, each real word id becomes <unk> with this probability
    (the characters stay), so the model learns to tag names it has never seen.
    """

    def __init__(self, *, vocab_size: int, tag_names: Sequence[str], pad_id: int = 0, unk_id: int = 1,
                 embed_dim: int = 100, hidden: int = 200, layers: int = 1, dropout: float = 0.5,
                 word_dropout: float = 0.05, constrain_transitions: bool = True,
                 char_vocab_size: int | None = None, char_embed_dim: int = 30, char_filters: int = 100,
                 char_kernel: int = 3):
        super().__init__()
        require(embed_dim >= 1 and hidden >= 1, "ner model: embed_dim and hidden must be >= 1")
        require(layers >= 1, f"ner model: layers must be >= 1, got {layers}")
        require(0 <= dropout < 1, f"ner model: dropout must be in [0, 1), got {dropout}")
        require(0 <= word_dropout < 1, f"ner model: word_dropout must be in [0, 1), got {word_dropout}")
        require(char_kernel >= 1 and char_kernel % 2 == 1,
                 f"ner model: char_kernel must be an odd number >= 1, got {char_kernel}")
        self.tag_names = list(tag_names)
        self.pad_id, self.unk_id, self.word_dropout = pad_id, unk_id, word_dropout
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.chars = (CharCNN(char_vocab_size=char_vocab_size, char_embed_dim=char_embed_dim,
                              filters=char_filters, kernel_size=char_kernel)
                      if char_vocab_size is not None else None)
        width = embed_dim + (self.chars.out_dim if self.chars is not None else 0)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(width, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.emissions = nn.Linear(2 * hidden, len(self.tag_names))
        allowed, start = iob2_constraints(self.tag_names) if constrain_transitions else (None, None)
        self.crf = CRF(num_tags=len(self.tag_names), allowed=allowed, allowed_start=start)

    def forward(self, word_ids: torch.Tensor, mask: torch.Tensor,
                char_ids: torch.Tensor | None = None) -> torch.Tensor:
        mask = mask.bool()
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(word_ids.shape, device=word_ids.device) < self.word_dropout) & mask
            word_ids = word_ids.masked_fill(drop, self.unk_id)
        inputs = self.embedding(word_ids)
        if self.chars is not None:
            if char_ids is None:
                raise ValueError("this model reads characters: pass char_ids")
            inputs = torch.cat([inputs, self.chars(char_ids).to(inputs.dtype)], dim=-1)
        lengths = mask.sum(dim=1).clamp(min=1)
        # Packed by length: the backward direction starts at each sentence's last real word.
        packed = nn.utils.rnn.pack_padded_sequence(self.dropout(inputs), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=word_ids.shape[1])
        return self.emissions(self.dropout(states))


def _build(name: str, info: dict, model_kwargs: dict, *, chars: bool) -> BiLSTMCRF:
    exclude = {"vocab_size", "tag_names", "pad_id", "unk_id", "char_vocab_size"}
    if not chars:
        exclude |= {"char_embed_dim", "char_filters", "char_kernel"}
    knobs = [p.name for p in inspect.signature(BiLSTMCRF.__init__).parameters.values()
             if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in exclude]
    unknown = sorted(set(model_kwargs) - set(knobs))
    if unknown:
        raise UserInputError(f"model {name!r} does not accept {', '.join(map(repr, unknown))}; "
                             f"accepted model_kwargs: {', '.join(knobs)}")
    missing = [key for key in ("tag_names", "vocab_size", "char_vocab_size") if key not in info]
    if missing:
        raise UserInputError(f"model {name!r} needs an NER dataset (task ner), but the dataset's "
                             f"info lacks {', '.join(missing)}")
    return BiLSTMCRF(vocab_size=int(info["vocab_size"]), tag_names=info["tag_names"],
                     pad_id=int(info.get("pad_id", 0)), unk_id=int(info.get("unk_id", 1)),
                     char_vocab_size=int(info["char_vocab_size"]) if chars else None, **model_kwargs)


@MODELS.register("lstm_crf_ner", task=TASK,
                 description="word embedding -> BiLSTM -> linear emissions -> CRF (Viterbi), ~1-3M")
def build_lstm_crf_ner(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """lstm_crf_ner; knobs: embed_dim, hidden, layers, dropout, word_dropout, constrain_transitions."""
    return _build("lstm_crf_ner", info, model_kwargs, chars=False)


@MODELS.register("bilstm_crf_charcnn_ner", task=TASK, aliases=("lstm_crf_charcnn_ner",),
                 description="lstm_crf_ner with character-CNN word features concatenated to the "
                             "embeddings, +0.1-0.5M (alias lstm_crf_charcnn_ner)")
def build_bilstm_crf_charcnn_ner(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """bilstm_crf_charcnn_ner; knobs: those of lstm_crf_ner plus char_embed_dim, char_filters,
    char_kernel (odd)."""
    return _build("bilstm_crf_charcnn_ner", info, model_kwargs, chars=True)
