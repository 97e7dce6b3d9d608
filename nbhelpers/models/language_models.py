"""Language models: gpt_small (causal Transformer), gru_lm and lstm_lm (recurrent).

Each is registered in MODELS with task="text_generation" and built as

    builder(info=bundle.info, **model_kwargs)

where info supplies vocab_size (and bptt, which gpt_small's positions must cover; see
nbhelpers/data/text_generation.py). model_kwargs are the model's knobs; an unknown knob is a
UserInputError that lists the accepted ones. Every model maps token ids (batch, time) to
next-token logits (batch, time, vocab) and ties its output layer to its token embedding, so
the embedding table is counted once. Recurrent models start every chunk from a zero state.

`generate()` samples a continuation from any of them.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from nbhelpers.errors import UserInputError
from nbhelpers.models.base import check_knobs, require
from nbhelpers.registry import MODELS

TASK = "text_generation"




def _build(name: str, model_class: type[nn.Module], info: dict, model_kwargs: dict) -> nn.Module:
    """Construct `model_class(vocab_size=info["vocab_size"], **model_kwargs)`, checking knob names."""
    knobs = check_knobs(name, model_class, model_kwargs, exclude=("vocab_size",))
    if "vocab_size" not in info:
        raise UserInputError(f"model {name!r} needs a language-modelling dataset (its info has no vocab_size)")
    kwargs = dict(model_kwargs)
    if "max_len" in knobs and kwargs.get("max_len") is None:
        kwargs["max_len"] = max(GPTSmall.DEFAULT_MAX_LEN, int(info.get("bptt", 0)))
    model = model_class(vocab_size=int(info["vocab_size"]), **kwargs)
    bptt = int(info.get("bptt", 0))
    max_len = getattr(model, "max_len", None)
    require(max_len is None or bptt <= max_len,
             f"model {name!r}: max_len={max_len} is shorter than the dataset's chunks (bptt={bptt})")
    return model


def _check_common(name: str, *, vocab_size: int, d_model: int, layers: int, dropout: float) -> None:
    require(vocab_size >= 2, f"{name}: vocab_size must be >= 2, got {vocab_size}")
    require(d_model >= 1, f"{name}: d_model must be >= 1, got {d_model}")
    require(layers >= 1, f"{name}: layers must be >= 1, got {layers}")
    require(0 <= dropout < 1, f"{name}: dropout must be in [0, 1), got {dropout}")


# --------------------------------------------------------------------------------------------
# gpt_small
# --------------------------------------------------------------------------------------------

class GPTSmall(nn.Module):
    """Token + learned position embeddings -> pre-LN causal TransformerEncoder -> LayerNorm -> tied head.

    At defaults (d_model 256, 4 layers of 4 heads, feed-forward 1024) it has 3.19M parameters
    besides the embedding table: 5.75M for a 10,000-word vocabulary, 3.25M for grammar_lm's 253.
    Weights start as in GPT-2: N(0, 0.02), with the residual output projections scaled by
    1/sqrt(2 * layers) so the residual stream does not grow with depth.
    """

    DEFAULT_MAX_LEN = 128

    def __init__(self, *, vocab_size: int, d_model: int = 256, heads: int = 4, ff: int = 1024,
                 layers: int = 4, dropout: float = 0.1, max_len: int = DEFAULT_MAX_LEN):
        super().__init__()
        _check_common("gpt_small", vocab_size=vocab_size, d_model=d_model, layers=layers, dropout=dropout)
        require(heads >= 1 and d_model % heads == 0,
                 f"gpt_small: d_model ({d_model}) must be a multiple of heads ({heads})")
        require(ff >= 1, f"gpt_small: ff must be >= 1, got {ff}")
        require(max_len >= 1, f"gpt_small: max_len must be >= 1, got {max_len}")
        self.max_len = max_len
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(max_len, d_model)
        self.dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=ff, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        # enable_nested_tensor only helps with padding masks, and warns with norm_first.
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # tied
        self._init_weights(layers)

    def _init_weights(self, layers: int) -> None:
        for name, parameter in self.named_parameters():
            if parameter.ndim >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("out_proj.weight", "linear2.weight")) else 0.02
                nn.init.normal_(parameter, mean=0.0, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(parameter)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        if length > self.max_len:
            raise ValueError(f"gpt_small: a sequence of {length} tokens exceeds max_len={self.max_len}")
        positions = torch.arange(length, device=ids.device)
        x = self.dropout(self.token_embedding(ids) + self.position_embedding(positions))
        # Both the mask and is_causal: the mask is what attention applies, is_causal lets
        # PyTorch pick its fused causal kernel.
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device, dtype=x.dtype)
        x = self.blocks(x, mask=mask, is_causal=True)
        return self.head(self.norm(x))


@MODELS.register("gpt_small", task=TASK, aliases=("gpt1",),
                 description="causal pre-LN Transformer LM, tied embeddings (~5.8M params at 10k words)")
def build_gpt_small(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """gpt_small for the dataset described by `info`; knobs: d_model, heads, ff, layers, dropout, max_len."""
    return _build("gpt_small", GPTSmall, info, model_kwargs)


# --------------------------------------------------------------------------------------------
# gru_lm and lstm_lm
# --------------------------------------------------------------------------------------------

class RecurrentLM(nn.Module):
    """Embedding -> dropout -> stacked GRU/LSTM (dropout between layers) -> dropout -> tied head.

    Embedding and hidden size are both d_model, which lets the output layer share the
    embedding matrix. Every chunk starts from a zero state (chunks are shuffled).
    """

    max_len = None  # no limit on the context

    def __init__(self, *, cell: str, vocab_size: int, d_model: int, layers: int, dropout: float):
        super().__init__()
        _check_common(f"{cell}_lm", vocab_size=vocab_size, d_model=d_model, layers=layers, dropout=dropout)
        rnn_class = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.rnn = rnn_class(d_model, d_model, num_layers=layers, batch_first=True,
                             dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, vocab_size)
        self.head.weight = self.embedding.weight  # tied
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(ids))
        output, _ = self.rnn(x)
        return self.head(self.dropout(output))


class GRULM(RecurrentLM):
    """gru_lm: 2-layer GRU of width 320; 4.45M parameters at a 10,000-word vocabulary."""

    def __init__(self, *, vocab_size: int, d_model: int = 320, layers: int = 2, dropout: float = 0.2):
        super().__init__(cell="gru", vocab_size=vocab_size, d_model=d_model, layers=layers, dropout=dropout)


class LSTMLM(RecurrentLM):
    """lstm_lm (the 'lstm' of the PTB grid): LSTM of width 256; 3.6M parameters at 10k words, 2 layers."""

    def __init__(self, *, vocab_size: int, d_model: int = 256, layers: int = 2, dropout: float = 0.2):
        super().__init__(cell="lstm", vocab_size=vocab_size, d_model=d_model, layers=layers, dropout=dropout)


@MODELS.register("gru_lm", task=TASK,
                 description="embedding -> 2-layer GRU -> dropout -> tied head (~4.5M params at 10k words)")
def build_gru_lm(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """gru_lm for the dataset described by `info`; knobs: d_model, layers, dropout."""
    return _build("gru_lm", GRULM, info, model_kwargs)


@MODELS.register("lstm_lm", task=TASK, aliases=("lstm",),
                 description="embedding -> LSTM (layers knob) -> dropout -> tied head (~3.6M params at 10k words)")
def build_lstm_lm(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """lstm_lm for the dataset described by `info`; knobs: d_model, layers, dropout."""
    return _build("lstm_lm", LSTMLM, info, model_kwargs)


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def generate(model: nn.Module, prompt_ids: Sequence[int] | torch.Tensor, n: int, temperature: float = 1.0,
             *, top_k: int | None = None, generator: torch.Generator | None = None,
             banned_ids: Sequence[int] = ()) -> list[int]:
    """Continue `prompt_ids` by `n` tokens sampled from `model`; returns only the new ids.

    temperature 0 picks the most likely token (greedy); top_k keeps the k most likely;
    banned_ids (e.g. <unk>) are never drawn. The context is the whole text so far, cut to the
    model's max_len for a Transformer. The model is left in the mode it was in.
    """
    if n < 0 or temperature < 0:
        raise UserInputError(f"generate: n and temperature must be >= 0, got n={n}, temperature={temperature}")
    ids = torch.as_tensor(list(prompt_ids) if not torch.is_tensor(prompt_ids) else prompt_ids, dtype=torch.long)
    if ids.numel() == 0:
        raise UserInputError("generate: the prompt must hold at least one token (e.g. <eos>)")
    device = next(model.parameters()).device
    tokens = ids.flatten().tolist()
    limit = getattr(model, "max_len", None)
    was_training = model.training
    model.eval()
    try:
        for _ in range(n):
            context = tokens[-limit:] if limit else tokens
            logits = model(torch.tensor([context], device=device))[0, -1].float()
            if banned_ids:
                logits[list(banned_ids)] = -math.inf
            if temperature == 0:
                tokens.append(int(logits.argmax()))
                continue
            logits = logits / temperature
            if top_k is not None and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, -math.inf)
            probs = torch.softmax(logits, dim=-1).cpu()
            tokens.append(int(torch.multinomial(probs, 1, generator=generator)))
    finally:
        model.train(was_training)
    return tokens[ids.numel():]
