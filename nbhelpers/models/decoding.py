"""Batched greedy and beam-search decoding for the encoder-decoder models.

A model decodes through four methods (nbhelpers/models/seq2seq.py implements them for each):

    encode(source_ids, source_mask) -> state     run the encoder once; the state holds what the
                                                  decoder needs (memory, cached cross-attention keys)
    step(tokens, state) -> (logits, state)       one decoder step for the last tokens (N,), with
                                                  the cache of the previous steps (keys/values or
                                                  recurrent state); logits (N, vocab)
    reorder_state(state, index, beams_only=False) -> state
                                                  keep/duplicate rows of the state (finished
                                                  sentences leave; beam search follows its beams).
                                                  beams_only=True promises that every row moves
                                                  within its own sentence, so what depends only on
                                                  the source (encoder memory, cross-attention keys)
                                                  may stay where it is: copying it every step
                                                  would cost more than the step

A hypothesis never contains <pad> or <s>; it ends with </s>, forced at its maximum length,
`max_target_lengths()` from its source length. Scores are sums of log-probabilities (log-softmax
over the whole vocabulary). Beam search ranks finished hypotheses by score / length**alpha
(length counts the </s>; alpha is the length penalty, 0 = raw log-probability).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NEG_INF = float("-inf")


def index_state(state: Any, index: torch.Tensor, skip: frozenset[str] = frozenset()) -> Any:
    """`state` with every tensor's rows (dim 0) taken at `index`; other values, and the entries
    of a dict whose keys are in `skip`, as they are."""
    if torch.is_tensor(state):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {key: value if key in skip else index_state(value, index) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(index_state(value, index) for value in state)
    return state


def max_target_lengths(source_mask: torch.Tensor, a: float, b: int, cap: int | None = None) -> torch.Tensor:
    """Per sentence, the most tokens a hypothesis may have (</s> included): a * source + b, capped."""
    lengths = torch.floor(source_mask.sum(dim=1).float() * a).long() + int(b)
    if cap is not None:
        lengths = lengths.clamp(max=int(cap))
    return lengths.clamp(min=1)


def _next_log_probs(model: nn.Module, tokens: torch.Tensor, state: Any, *, banned: list[int], eos_id: int,
                    force_eos: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """Log-probabilities of the next token, with <pad>/<s> banned and </s> forced where asked."""
    logits, state = model.step(tokens, state)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    log_probs[:, banned] = NEG_INF
    if bool(force_eos.any()):
        eos = log_probs[force_eos, eos_id].clone()
        log_probs[force_eos] = NEG_INF
        log_probs[force_eos, eos_id] = eos
    return log_probs, state


@torch.no_grad()
def greedy_decode(model: nn.Module, source_ids: torch.Tensor, source_mask: torch.Tensor, *, bos_id: int,
                  eos_id: int, pad_id: int, max_lengths: torch.Tensor) -> torch.Tensor:
    """The most likely next token at every step, for a batch of sources.

    Returns (B, L) token ids: each row a hypothesis ending in </s>, padded with <pad>.
    Sentences that have finished leave the batch, so a long one does not keep the others running.
    """
    batch = source_ids.shape[0]
    device = source_ids.device
    state = model.encode(source_ids, source_mask)
    longest = int(max_lengths.max())
    out = torch.full((batch, longest), pad_id, dtype=torch.long, device=device)
    active = torch.arange(batch, device=device)
    tokens = torch.full((batch,), bos_id, dtype=torch.long, device=device)
    banned = sorted({bos_id, pad_id} - {eos_id})
    for t in range(longest):
        log_probs, state = _next_log_probs(model, tokens, state, banned=banned, eos_id=eos_id,
                                           force_eos=t + 1 >= max_lengths[active])
        tokens = log_probs.argmax(dim=-1)
        out[active, t] = tokens
        going = tokens != eos_id
        if not bool(going.all()):
            keep = going.nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            active, tokens, state = active[keep], tokens[keep], model.reorder_state(state, keep)
    return out


@torch.no_grad()
def beam_search(model: nn.Module, source_ids: torch.Tensor, source_mask: torch.Tensor, *, beam_size: int,
                bos_id: int, eos_id: int, pad_id: int, max_lengths: torch.Tensor,
                length_penalty: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search over a batch of sources; the best hypothesis of each and its score.

    Each sentence keeps `beam_size` live hypotheses. At every step, every live hypothesis
    extended by </s> is a finished candidate (kept if its score / length**alpha beats the
    sentence's best so far); the `beam_size` best extensions by any other token are the next
    live hypotheses. A sentence stops when no live hypothesis can still beat its best finished
    one: log-probabilities only fall as a hypothesis grows, so the best a live one can reach is
    its score / max_length**alpha. With a beam as wide as the number of possible prefixes this
    is an exhaustive search (tests/test_seq2seq_models.py checks it against brute force).

    Returns ((B, L) token ids ending in </s> and padded, (B,) normalized scores).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    batch, k = source_ids.shape[0], beam_size
    device = source_ids.device
    state = model.encode(source_ids, source_mask)
    longest = int(max_lengths.max())
    best_tokens = torch.full((batch, longest), pad_id, dtype=torch.long, device=device)
    best_scores = torch.full((batch,), NEG_INF, device=device)
    active = torch.arange(batch, device=device)            # sentences still searching
    # The first step has one live hypothesis per sentence (<s>): it runs on the batch as it
    # is, and its k best continuations then spread the state over k rows per sentence.
    width = 1
    scores = torch.zeros((batch, 1), device=device)
    prefixes = torch.zeros((batch, 0), dtype=torch.long, device=device)
    tokens = torch.full((batch,), bos_id, dtype=torch.long, device=device)
    banned = sorted({bos_id, pad_id} - {eos_id})
    for t in range(longest):
        n = active.numel()
        limits = max_lengths[active]
        log_probs, state = _next_log_probs(model, tokens, state, banned=banned, eos_id=eos_id,
                                           force_eos=(t + 1 >= limits).repeat_interleave(width))
        vocab = log_probs.shape[-1]
        candidates = scores.unsqueeze(-1) + log_probs.view(n, width, vocab)      # (n, width, V)
        # Finished candidates: every live hypothesis followed by </s>.
        finished = candidates[:, :, eos_id] / float(t + 1) ** length_penalty     # (n, width)
        top_finished, which = finished.max(dim=1)
        better = top_finished > best_scores[active]
        if bool(better.any()):
            winners = better.nonzero().squeeze(1)
            rows = winners * width + which[winners]
            sentences = active[winners]
            best_scores[sentences] = top_finished[winners]
            best_tokens[sentences] = pad_id
            best_tokens[sentences, :t] = prefixes[rows]
            best_tokens[sentences, t] = eos_id
        # Live hypotheses: the k best extensions by any token but </s>.
        candidates[:, :, eos_id] = NEG_INF
        scores, flat = candidates.view(n, width * vocab).topk(min(k, width * vocab), dim=1)
        if scores.shape[1] < k:  # a beam wider than the first step's choices: dead rows fill it up
            scores = F.pad(scores, (0, k - scores.shape[1]), value=NEG_INF)
            flat = F.pad(flat, (0, k - flat.shape[1]), value=0)
        beams, tokens = flat // vocab, flat % vocab
        rows = (torch.arange(n, device=device).unsqueeze(1) * width + beams).view(-1)
        tokens = tokens.view(-1)
        prefixes = torch.cat([prefixes[rows], tokens.unsqueeze(1)], dim=1)
        # After the first step every row moves within its sentence: the source side stays put.
        state = model.reorder_state(state, rows, beams_only=width == k)
        width = k
        # Stop a sentence when its best live hypothesis cannot catch up with its best finished one.
        reachable = scores[:, 0] / limits.float() ** length_penalty if length_penalty else scores[:, 0]
        going = (reachable > best_scores[active]) & (t + 1 < limits) & torch.isfinite(scores[:, 0])
        if not bool(going.all()):
            keep = going.nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            rows = (keep.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            active, scores = active[keep], scores[keep]
            prefixes, tokens, state = prefixes[rows], tokens[rows], model.reorder_state(state, rows)
    return best_tokens, best_scores


def sequence_log_prob(model: nn.Module, source_ids: torch.Tensor, source_mask: torch.Tensor,
                      hypotheses: torch.Tensor, *, bos_id: int, pad_id: int) -> torch.Tensor:
    """Sum of log-probabilities of each hypothesis (B, L; ending in </s>, padded) under teacher forcing.

    The reference that decoding is tested against: the model's full forward pass, not its
    incremental one.
    """
    bos = torch.full((hypotheses.shape[0], 1), bos_id, dtype=torch.long, device=hypotheses.device)
    target_in = torch.cat([bos, hypotheses[:, :-1]], dim=1)
    log_probs = torch.log_softmax(model(source_ids, source_mask, target_in).float(), dim=-1)
    picked = log_probs.gather(-1, hypotheses.unsqueeze(-1)).squeeze(-1)
    return picked.masked_fill(hypotheses == pad_id, 0.0).sum(dim=1)


def hypothesis_lengths(hypotheses: torch.Tensor, pad_id: int) -> torch.Tensor:
    return (hypotheses != pad_id).sum(dim=1)


def normalized(score: float, length: int, length_penalty: float) -> float:
    """score / length**alpha, the ranking beam search uses."""
    return score / math.pow(length, length_penalty)
