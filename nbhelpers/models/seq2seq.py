"""Encoder-decoder models for machine translation and summarization.

    lstm_seq2seq              BiLSTM encoder, LSTM decoder with Luong attention (input feeding)
    transformer_seq2seq       Transformer encoder-decoder (post-LN, as Vaswani et al. and fairseq's
                              transformer_iwslt_de_en); `size` tiny | small (default) | base
    tiny_transformer_seq2seq  pre-LN Transformer, d_model 256, 3 + 3 layers, tied target embeddings
    bart_small                transformers' BartForConditionalGeneration at a small config

Every model runs on either task and is built as `builder(info=bundle.info, **model_kwargs)`
with info from nbhelpers/data/seq2seq_text.py (vocab_size, pad_id, bos_id, eos_id). They share
one interface:

    model(source_ids, source_mask, target_in) -> logits (B, T, vocab)      teacher forcing
    model.encode / model.step / model.reorder_state                         incremental decoding,
        used by nbhelpers/models/decoding.py (greedy and beam search): the encoder runs once,
        the decoder keeps its keys/values (Transformers) or recurrent state (LSTM) between steps.

Sizes are knobs; an unknown knob is a UserInputError that lists the accepted ones.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nbhelpers.errors import UserInputError
from nbhelpers.models.decoding import index_state
from nbhelpers.models.base import check_knobs, require
from nbhelpers.registry import MODELS

TASKS = ("machine_translation", "text_summarization")






def _token_facts(name: str, info: dict) -> dict[str, int]:
    missing = [key for key in ("vocab_size", "pad_id", "bos_id", "eos_id") if info.get(key) is None]
    if missing:
        raise UserInputError(f"model {name!r} needs a translation or summarization dataset, but the "
                             f"dataset's info lacks {', '.join(missing)}")
    return {"vocab_size": int(info["vocab_size"]), "pad_id": int(info["pad_id"])}


def _check_dropout(name: str, dropout: float) -> None:
    require(0 <= dropout < 1, f"{name}: dropout must be in [0, 1), got {dropout}")


# Decoding state with a shared source side. The entries named by `source` (encoder memory,
# cross-attention keys, the source mask) keep one row per sentence; the rest (cache, recurrent
# state) one row per hypothesis; state["sentence"] maps each hypothesis row to its sentence.
# Beam search's k rows of a sentence then read its source side once, as k queries of one
# attention, instead of each reading its own copy (copying it k times costs more than the
# step). nbhelpers/models/decoding.py keeps the rows of a sentence consecutive, so row r
# belongs to sentence r // k.

def reorder_shared(state: dict[str, Any], index: torch.Tensor, beams_only: bool, source: frozenset[str]) -> dict[str, Any]:
    """reorder_state for a state with a shared source side: hypothesis rows taken at `index`;
    sentences that no row uses any more are dropped from the source side (when they leave)."""
    sentence = state["sentence"].index_select(0, index)
    state = index_state(dict(state, sentence=sentence), index, source | {"sentence"})
    if beams_only:
        return state
    used = torch.unique(sentence)  # sorted
    if used.numel() < state["sentence_count"]:
        state = {key: index_state(value, used) if key in source else value for key, value in state.items()}
        state.update(sentence=torch.searchsorted(used, sentence), sentence_count=used.numel())
    return state


def grouped_rows(state: dict[str, Any], source: frozenset[str]) -> tuple[dict[str, Any], int]:
    """(state, group): the state with `group` consecutive rows per sentence, as the models'
    attention over the source wants. Greedy and beam search keep that layout by construction;
    any other order (a caller's own reorder) gets one copy of the source side per row: slower,
    still exact."""
    sentence, sentences = state["sentence"], state["sentence_count"]
    group = sentence.numel() // sentences
    if sentence.numel() == group * sentences and bool(
            (sentence == torch.arange(sentences, device=sentence.device).repeat_interleave(group)).all()):
        return state, group
    state = {key: index_state(value, sentence) if key in source else value for key, value in state.items()}
    state.update(sentence=torch.arange(sentence.numel(), device=sentence.device), sentence_count=sentence.numel())
    return state, 1


def _sentence_rows(batch: int, device: torch.device) -> dict[str, Any]:
    return {"sentence": torch.arange(batch, device=device), "sentence_count": batch}


# --------------------------------------------------------------------------------------------
# lstm_seq2seq
# --------------------------------------------------------------------------------------------

class LSTMSeq2Seq(nn.Module):
    """BiLSTM encoder -> LSTM decoder with Luong attention (the 'general' score) and input feeding.

    Luong, Pham & Manning (2015): at step t the decoder state h_t scores every encoder state
    m_s as h_t^T W_a m_s; the softmax of the scores weights the encoder states into a context
    c_t, and the attentional state h~_t = tanh(W_c [c_t; h_t]) predicts the next word and is
    fed to the next step's input (input feeding). The encoder's two directions (hidden/2 each)
    are concatenated; its last states, through a tanh layer, start the decoder.
    At defaults about 18M parameters at a 10k vocabulary.
    """

    SOURCE_SIDE = frozenset(("memory", "keys", "mask"))

    def __init__(self, *, vocab_size: int, pad_id: int, embed_dim: int = 256, hidden: int = 512,
                 layers: int = 2, dropout: float = 0.3):
        super().__init__()
        require(embed_dim >= 1 and hidden >= 2 and hidden % 2 == 0,
                 f"lstm_seq2seq: embed_dim must be >= 1 and hidden an even number >= 2, got {embed_dim}, {hidden}")
        require(layers >= 1, f"lstm_seq2seq: layers must be >= 1, got {layers}")
        _check_dropout("lstm_seq2seq", dropout)
        self.pad_id, self.hidden, self.layers = pad_id, hidden, layers
        between = dropout if layers > 1 else 0.0
        self.source_embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.target_embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.encoder = nn.LSTM(embed_dim, hidden // 2, num_layers=layers, batch_first=True,
                               bidirectional=True, dropout=between)
        self.bridge = nn.Linear(hidden, 2 * hidden)       # -> initial h and c of every decoder layer
        self.decoder = nn.LSTM(embed_dim + hidden, hidden, num_layers=layers, batch_first=True, dropout=between)
        self.attention = nn.Linear(hidden, hidden, bias=False)    # W_a
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)  # W_c
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, vocab_size)

    def encode(self, source_ids: torch.Tensor, source_mask: torch.Tensor) -> dict[str, Any]:
        lengths = source_mask.sum(dim=1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.dropout(self.source_embedding(source_ids)),
                                                   lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, (h, c) = self.encoder(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=source_ids.shape[1])
        batch = source_ids.shape[0]

        def both_directions(x: torch.Tensor) -> torch.Tensor:  # (layers*2, B, H/2) -> (B, layers, H)
            return x.view(self.layers, 2, batch, -1).permute(2, 0, 1, 3).reshape(batch, self.layers, -1)

        h0, c0 = torch.tanh(self.bridge(both_directions(h))).chunk(2, dim=-1)
        c0 = c0 + both_directions(c)  # keep the encoder's cell memory, as a residual
        return {"memory": memory, "keys": self.attention(memory), "mask": source_mask,
                "h": h0.contiguous(), "c": c0.contiguous(),
                "feed": memory.new_zeros(batch, self.hidden), **_sentence_rows(batch, source_ids.device)}

    def _decode(self, tokens: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """One step for tokens (N,): (attentional state (N, H), attention (N, S), new state)."""
        x = torch.cat([self.dropout(self.target_embedding(tokens)), state["feed"]], dim=-1).unsqueeze(1)
        hx = (state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous())
        out, (h, c) = self.decoder(x, hx)
        query = out.squeeze(1)                                                   # (N, H)
        # The N rows are `group` consecutive rows (beams) per sentence: (n, group, H) queries
        # against each sentence's n source states, read once per sentence.
        sentences = state["keys"].shape[0]
        grouped = query.view(sentences, -1, query.shape[-1])                     # (n, group, H)
        scores = torch.bmm(grouped, state["keys"].transpose(1, 2))               # (n, group, S)
        weights = torch.softmax(scores.masked_fill(~state["mask"].unsqueeze(1), float("-inf")), dim=-1)
        context = torch.bmm(weights, state["memory"]).view_as(query)            # (N, H)
        weights = weights.view(query.shape[0], -1)                               # (N, S)
        attentional = torch.tanh(self.combine(torch.cat([context, query], dim=-1)))
        new_state = dict(state, h=h.transpose(0, 1), c=c.transpose(0, 1), feed=attentional)
        return attentional, weights, new_state

    def step(self, tokens: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        state, _ = grouped_rows(state, self.SOURCE_SIDE)
        attentional, _, state = self._decode(tokens, state)
        return self.output(self.dropout(attentional)), state

    def reorder_state(self, state: dict[str, Any], index: torch.Tensor, beams_only: bool = False) -> dict[str, Any]:
        return reorder_shared(state, index, beams_only, self.SOURCE_SIDE)

    def forward(self, source_ids: torch.Tensor, source_mask: torch.Tensor, target_in: torch.Tensor,
                return_attention: bool = False):
        """Logits (B, T, V) under teacher forcing; with return_attention also the weights (B, T, S)."""
        state = self.encode(source_ids, source_mask)
        outputs, attention = [], []
        for t in range(target_in.shape[1]):  # input feeding makes each step wait for the last
            attentional, weights, state = self._decode(target_in[:, t], state)
            outputs.append(attentional)
            attention.append(weights)
        logits = self.output(self.dropout(torch.stack(outputs, dim=1)))
        return (logits, torch.stack(attention, dim=1)) if return_attention else logits


@MODELS.register("lstm_seq2seq", tasks=TASKS,
                 description="BiLSTM encoder, LSTM decoder with Luong attention and input feeding (~18M at 10k pieces)")
def build_lstm_seq2seq(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """lstm_seq2seq; knobs: embed_dim, hidden, layers, dropout."""
    check_knobs("lstm_seq2seq", LSTMSeq2Seq, model_kwargs, ("vocab_size", "pad_id"))
    return LSTMSeq2Seq(**_token_facts("lstm_seq2seq", info), **model_kwargs)


# --------------------------------------------------------------------------------------------
# Transformer encoder-decoder with a key/value cache
# --------------------------------------------------------------------------------------------

def sinusoidal_positions(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """Vaswani et al.'s fixed position encodings for integer positions (T,) -> (T, d_model)."""
    half = d_model // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=positions.device) / max(half - 1, 1))
    angles = positions.float().unsqueeze(1) * frequencies.unsqueeze(0)
    encoding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return F.pad(encoding, (0, d_model - 2 * half))


class Attention(nn.Module):
    """Multi-head attention over precomputed keys and values (so the decoder can cache them)."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def _split(self, x: torch.Tensor) -> torch.Tensor:       # (B, T, D) -> (B, H, T, D/H)
        return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key, value = self.key_value(x).chunk(2, dim=-1)
        return self._split(key), self._split(value)

    def forward(self, x: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        out = F.scaled_dot_product_attention(self._split(self.query(x)), key, value, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0, is_causal=causal)
        return self.out(out.transpose(1, 2).reshape(x.shape))


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, ff: int, dropout: float, activation: str):
        super().__init__(nn.Linear(d_model, ff), nn.GELU() if activation == "gelu" else nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(ff, d_model))


class _Residual(nn.Module):
    """x + dropout(f(norm(x))) for pre-LN; norm(x + dropout(f(x))) for post-LN."""

    def __init__(self, d_model: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm, self.dropout, self.pre_norm = nn.LayerNorm(d_model), nn.Dropout(dropout), pre_norm

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:
        if self.pre_norm:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int, dropout: float, pre_norm: bool, activation: str):
        super().__init__()
        self.attention = Attention(d_model, heads, dropout)
        self.feed_forward = FeedForward(d_model, ff, dropout, activation)
        self.r1, self.r2 = _Residual(d_model, dropout, pre_norm), _Residual(d_model, dropout, pre_norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.r1(x, lambda y: self.attention(y, *self.attention.keys_values(y), mask=mask))
        return self.r2(x, self.feed_forward)


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int, dropout: float, pre_norm: bool, activation: str):
        super().__init__()
        self.self_attention = Attention(d_model, heads, dropout)
        self.cross_attention = Attention(d_model, heads, dropout)
        self.feed_forward = FeedForward(d_model, ff, dropout, activation)
        self.r1, self.r2, self.r3 = (_Residual(d_model, dropout, pre_norm) for _ in range(3))

    def forward(self, x: torch.Tensor, cross: tuple[torch.Tensor, torch.Tensor], memory_mask: torch.Tensor,
                cache: tuple[torch.Tensor, torch.Tensor] | None = None):
        """With `cache` (keys, values of earlier positions) x is the newest position only; returns
        (output, the cache extended by x's keys and values)."""
        new_cache = None

        def attend_self(y: torch.Tensor) -> torch.Tensor:
            nonlocal new_cache
            key, value = self.self_attention.keys_values(y)
            if cache is None:  # the whole target at once: causal mask
                return self.self_attention(y, key, value, causal=True)
            new_cache = (torch.cat([cache[0], key], dim=2), torch.cat([cache[1], value], dim=2))
            return self.self_attention(y, *new_cache)

        def attend_source(y: torch.Tensor) -> torch.Tensor:
            sentences = cross[0].shape[0]
            if y.shape[0] == sentences:
                return self.cross_attention(y, cross[0], cross[1], mask=memory_mask)
            # Beam search: y holds `group` consecutive rows (beams) per sentence, one position
            # each. They become `group` queries of one attention over the sentence's keys,
            # which are read once instead of once per beam (and never copied per beam).
            group = y.shape[0] // sentences
            out = self.cross_attention(y.reshape(sentences, group, y.shape[-1]), cross[0], cross[1],
                                       mask=memory_mask)
            return out.reshape(y.shape)

        x = self.r1(x, attend_self)
        x = self.r2(x, attend_source)
        return self.r3(x, self.feed_forward), new_cache


class TransformerSeq2Seq(nn.Module):
    """Transformer encoder-decoder with sinusoidal positions and a key/value cache for decoding.

    `pre_norm` False is the original post-LN arrangement (normalise after each residual
    addition); True normalises before each sublayer and once more at the end of each stack,
    which trains more stably without warm-up. The output layer is always tied to the target
    embedding; `share_embeddings` also ties the source embedding to it (one vocabulary).
    """

    SOURCE_SIDE = frozenset(("memory_mask", "cross"))

    def __init__(self, *, name: str, vocab_size: int, pad_id: int, d_model: int, heads: int, ff: int,
                 layers: int, decoder_layers: int | None, dropout: float, pre_norm: bool,
                 share_embeddings: bool, activation: str = "relu"):
        super().__init__()
        decoder_layers = layers if decoder_layers is None else decoder_layers
        require(d_model >= 2 and heads >= 1 and d_model % heads == 0,
                 f"{name}: d_model ({d_model}) must be a multiple of heads ({heads})")
        require(ff >= 1 and layers >= 1 and decoder_layers >= 1,
                 f"{name}: ff, layers and decoder_layers must be >= 1")
        require(activation in ("relu", "gelu"), f"{name}: activation must be 'relu' or 'gelu', got {activation!r}")
        _check_dropout(name, dropout)
        self.d_model, self.pad_id, self.pre_norm = d_model, pad_id, pre_norm
        self.scale = math.sqrt(d_model)
        self.target_embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.source_embedding = (self.target_embedding if share_embeddings
                                 else nn.Embedding(vocab_size, d_model, padding_idx=pad_id))
        self.dropout = nn.Dropout(dropout)
        args = (d_model, heads, ff, dropout, pre_norm, activation)
        self.encoder_layers = nn.ModuleList(EncoderLayer(*args) for _ in range(layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(*args) for _ in range(decoder_layers))
        self.encoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        # fairseq's: Xavier-uniform linear layers, N(0, d^-1/2) embeddings (the sqrt(d) scale
        # then gives them unit variance), padding rows zero.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for embedding in {id(e): e for e in (self.source_embedding, self.target_embedding)}.values():
            nn.init.normal_(embedding.weight, mean=0.0, std=self.d_model ** -0.5)
            with torch.no_grad():
                embedding.weight[self.pad_id].zero_()

    def _embed(self, embedding: nn.Embedding, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = embedding(ids) * self.scale + sinusoidal_positions(positions, self.d_model).to(embedding.weight.dtype)
        return self.dropout(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.decoder_norm(x), self.target_embedding.weight)

    def encode(self, source_ids: torch.Tensor, source_mask: torch.Tensor) -> dict[str, Any]:
        mask = source_mask[:, None, None, :]  # (B, 1, 1, S): True where a key may be attended to
        x = self._embed(self.source_embedding, source_ids)
        for layer in self.encoder_layers:
            x = layer(x, mask)
        memory = self.encoder_norm(x)
        # Cross-attention keys and values are computed once; "self" fills up step by step.
        # The source side (memory_mask, cross) is shared by a sentence's beams (reorder_shared).
        return {"memory_mask": mask, "position": 0,
                "cross": [layer.cross_attention.keys_values(memory) for layer in self.decoder_layers],
                "self": [None for _ in self.decoder_layers], **_sentence_rows(source_ids.shape[0], source_ids.device)}

    def step(self, tokens: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        state, _ = grouped_rows(state, self.SOURCE_SIDE)
        x = self._embed(self.target_embedding, tokens.unsqueeze(1), start=state["position"])
        caches = []
        for layer, cross, cache in zip(self.decoder_layers, state["cross"], state["self"]):
            if cache is None:  # first step: an empty cache of the right shape
                key = cross[0][:, :, :0].repeat_interleave(x.shape[0] // cross[0].shape[0], dim=0)
                cache = (key, key)
            x, cache = layer(x, cross, state["memory_mask"], cache)
            caches.append(cache)
        new_state = dict(state, position=state["position"] + 1, self=caches)
        return self._logits(x[:, -1]), new_state

    def reorder_state(self, state: dict[str, Any], index: torch.Tensor, beams_only: bool = False) -> dict[str, Any]:
        return reorder_shared(state, index, beams_only, self.SOURCE_SIDE)

    def forward(self, source_ids: torch.Tensor, source_mask: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        state = self.encode(source_ids, source_mask)
        x = self._embed(self.target_embedding, target_in)
        for layer, cross in zip(self.decoder_layers, state["cross"]):
            x, _ = layer(x, cross, state["memory_mask"])
        return self._logits(x)


TRANSFORMER_SIZES = {
    # fairseq's transformer_iwslt_de_en: about 37M parameters with a 10k shared vocabulary.
    "small": {"d_model": 512, "heads": 4, "ff": 1024, "layers": 6},
    "base": {"d_model": 512, "heads": 8, "ff": 2048, "layers": 6},   # Vaswani et al.'s base
    "tiny": {"d_model": 128, "heads": 4, "ff": 512, "layers": 2},    # for CPU runs on the toy sets
}


class TransformerSeq2SeqModel(TransformerSeq2Seq):
    """transformer_seq2seq: post-LN, all embeddings shared, dropout 0.3 (the seed's IWSLT preset)."""

    def __init__(self, *, vocab_size: int, pad_id: int, size: str = "small", d_model: int | None = None,
                 heads: int | None = None, ff: int | None = None, layers: int | None = None,
                 decoder_layers: int | None = None, dropout: float = 0.3, pre_norm: bool = False,
                 share_embeddings: bool = True):
        require(size in TRANSFORMER_SIZES,
                 f"transformer_seq2seq: size must be one of {', '.join(TRANSFORMER_SIZES)}, got {size!r}")
        preset = TRANSFORMER_SIZES[size]
        super().__init__(name="transformer_seq2seq", vocab_size=vocab_size, pad_id=pad_id,
                         d_model=d_model or preset["d_model"], heads=heads or preset["heads"],
                         ff=ff or preset["ff"], layers=layers or preset["layers"], decoder_layers=decoder_layers,
                         dropout=dropout, pre_norm=pre_norm, share_embeddings=share_embeddings)


class TinyTransformerSeq2Seq(TransformerSeq2Seq):
    """tiny_transformer_seq2seq: pre-LN, d_model 256, 3 + 3 layers, GELU, target embedding tied to the
    output layer (the source has its own): about 22M parameters at a 32k vocabulary, 5.8M at 1k."""

    def __init__(self, *, vocab_size: int, pad_id: int, d_model: int = 256, heads: int = 4, ff: int = 1024,
                 layers: int = 3, decoder_layers: int | None = None, dropout: float = 0.1,
                 share_embeddings: bool = False):
        super().__init__(name="tiny_transformer_seq2seq", vocab_size=vocab_size, pad_id=pad_id, d_model=d_model,
                         heads=heads, ff=ff, layers=layers, decoder_layers=decoder_layers, dropout=dropout,
                         pre_norm=True, share_embeddings=share_embeddings, activation="gelu")


@MODELS.register("transformer_seq2seq", tasks=TASKS,
                 description="Transformer encoder-decoder, post-LN, shared embeddings; size tiny/small/base "
                             "(small ~37M at 10k pieces)")
def build_transformer_seq2seq(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """transformer_seq2seq; knobs: size, d_model, heads, ff, layers, decoder_layers, dropout, pre_norm,
    share_embeddings."""
    check_knobs("transformer_seq2seq", TransformerSeq2SeqModel, model_kwargs, ("vocab_size", "pad_id"))
    return TransformerSeq2SeqModel(**_token_facts("transformer_seq2seq", info), **model_kwargs)


@MODELS.register("tiny_transformer_seq2seq", tasks=TASKS,
                 description="pre-LN Transformer encoder-decoder, d_model 256, 3 layers, tied target "
                             "embeddings (~22M at 32k pieces)")
def build_tiny_transformer_seq2seq(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """tiny_transformer_seq2seq; knobs: d_model, heads, ff, layers, decoder_layers, dropout, share_embeddings."""
    check_knobs("tiny_transformer_seq2seq", TinyTransformerSeq2Seq, model_kwargs, ("vocab_size", "pad_id"))
    return TinyTransformerSeq2Seq(**_token_facts("tiny_transformer_seq2seq", info), **model_kwargs)


# --------------------------------------------------------------------------------------------
# bart_small
# --------------------------------------------------------------------------------------------

BART_CHECKPOINT = "facebook/bart-base"


class BartSmall(nn.Module):
    """transformers' BartForConditionalGeneration behind the common seq2seq interface.

    `pretrained`: "auto" (default) loads `checkpoint`'s weights and tokenizer when they are in
    the local Hugging Face cache (or `checkpoint` is a saved folder), else builds BART from a
    small config with random weights and the dataset's BPE tokenizer, with a warning; True
    insists on the pretrained weights (downloading them if the hub answers); False always
    builds from the config. From the config: d_model 512, 3 + 3 layers, 8 heads, feed-forward
    2048, about 31M parameters at a 16k vocabulary. Decoding starts from <s>.
    """

    _cache_argument: str | None = None

    def __init__(self, *, info: dict, pretrained: bool | str = "auto", checkpoint: str = BART_CHECKPOINT,
                 d_model: int = 512, layers: int = 3, heads: int = 8, ff: int = 2048, dropout: float = 0.1,
                 max_positions: int | None = None):
        super().__init__()
        require(pretrained in (True, False, "auto"),
                 f"bart_small: pretrained must be true, false or 'auto', got {pretrained!r}")
        require(d_model % heads == 0, f"bart_small: d_model ({d_model}) must be a multiple of heads ({heads})")
        require(layers >= 1 and ff >= 1, "bart_small: layers and ff must be >= 1")
        _check_dropout("bart_small", dropout)
        self.pretrained = False
        loaded = self._load_pretrained(checkpoint, download=pretrained is True) if pretrained else None
        if loaded is not None:
            from nbhelpers.data.seq2seq_text import HFTokenizerAdapter, use_tokenizer
            self.net, tokenizer = loaded
            self.pretrained = True
            use_tokenizer(info, HFTokenizerAdapter(tokenizer))
            return
        if pretrained is True:
            raise UserInputError(f"bart_small: the pretrained {checkpoint!r} is neither in the local Hugging "
                                 "Face cache nor downloadable; use pretrained=auto or false")
        facts = _token_facts("bart_small", info)
        longest = max(int(info.get("max_source_len", 0)), int(info.get("max_target_len", 0)))
        positions = max_positions or max(512, longest + 2)
        require(positions >= longest, f"bart_small: max_positions={positions} is shorter than the "
                 f"dataset's longest sequence ({longest})")
        from transformers import BartConfig, BartForConditionalGeneration
        config = BartConfig(
            vocab_size=facts["vocab_size"], d_model=d_model, encoder_layers=layers, decoder_layers=layers,
            encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ff,
            decoder_ffn_dim=ff, dropout=dropout, attention_dropout=dropout, activation_dropout=0.0,
            max_position_embeddings=positions, pad_token_id=facts["pad_id"], bos_token_id=int(info["bos_id"]),
            eos_token_id=int(info["eos_id"]), decoder_start_token_id=int(info["bos_id"]),
            forced_eos_token_id=None, scale_embedding=False)
        self.net = BartForConditionalGeneration(config)
        if pretrained == "auto":
            warnings.warn(
                f"bart_small: no pretrained {checkpoint!r} in the local Hugging Face cache; building BART "
                f"from a small config (d_model {d_model}, {layers}+{layers} layers, "
                f"{sum(p.numel() for p in self.parameters()) / 1e6:.1f}M parameters) with random weights "
                f"and the dataset's BPE tokenizer ({facts['vocab_size']:,} pieces).", stacklevel=3)

    @staticmethod
    def _load_pretrained(checkpoint: str, download: bool):
        """(model, tokenizer) from the local cache or a saved folder (the hub too if `download`)."""
        from transformers import AutoTokenizer, BartForConditionalGeneration
        from transformers.utils import logging as hf_logging

        from nbhelpers.data.sentiment import hub_unreachable_reason

        attempts = [True] + ([False] if download and hub_unreachable_reason() is None else [])
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            for local_only in attempts:
                try:
                    tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=local_only)
                    model = BartForConditionalGeneration.from_pretrained(checkpoint, local_files_only=local_only)
                    return model, tokenizer
                except (OSError, ValueError):  # not cached / not a checkpoint
                    continue
        finally:
            hf_logging.set_verbosity(verbosity)
        return None

    def forward(self, source_ids: torch.Tensor, source_mask: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=source_ids, attention_mask=source_mask.long(),
                        decoder_input_ids=target_in, use_cache=False).logits

    def encode(self, source_ids: torch.Tensor, source_mask: torch.Tensor) -> dict[str, Any]:
        memory = self.net.get_encoder()(input_ids=source_ids, attention_mask=source_mask.long()).last_hidden_state
        return {"memory": memory, "mask": source_mask.long(), "cache": None}

    def step(self, tokens: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        from transformers.modeling_outputs import BaseModelOutput
        # transformers 5 renamed past_key_values to cache; accept both versions.
        if self._cache_argument is None:
            parameters = inspect.signature(self.net.forward).parameters
            type(self)._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        out = self.net(encoder_outputs=BaseModelOutput(last_hidden_state=state["memory"]),
                       attention_mask=state["mask"], decoder_input_ids=tokens.unsqueeze(1),
                       use_cache=True, **{self._cache_argument: state["cache"]})
        return out.logits[:, -1], dict(state, cache=getattr(out, self._cache_argument))

    def reorder_state(self, state: dict[str, Any], index: torch.Tensor, beams_only: bool = False) -> dict[str, Any]:
        cache = state["cache"]
        if beams_only:  # the source side (memory, cross-attention keys/values) is the same for every beam
            if cache is not None:
                cache.self_attention_cache.reorder_cache(index)
            return dict(state, cache=cache)
        if cache is not None:
            cache.reorder_cache(index)  # in place, self- and cross-attention keys/values
        return {"memory": state["memory"].index_select(0, index), "mask": state["mask"].index_select(0, index),
                "cache": cache}


@MODELS.register("bart_small", tasks=TASKS,
                 description="transformers' BART (BartForConditionalGeneration) at a small config, ~31M at 16k "
                             "pieces; pretrained weights when cached")
def build_bart_small(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """bart_small; knobs: pretrained, checkpoint, d_model, layers, heads, ff, dropout, max_positions."""
    check_knobs("bart_small", BartSmall, model_kwargs, ("info",))
    return BartSmall(info=info, **model_kwargs)
