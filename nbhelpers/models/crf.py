"""A batched, masked linear-chain CRF: negative log-likelihood and Viterbi decoding.

For a sentence of n tokens with emission scores e[t, y] (from the BiLSTM) and tags y_1..y_n,

    score(y) = start[y_1] + e[1, y_1] + sum_{t=2..n} (trans[y_{t-1}, y_t] + e[t, y_t]) + end[y_n]
    p(y)     = exp(score(y)) / Z,   Z = sum over all K^n tag sequences of exp(score(y')).

`CRF.forward` returns -log p(gold) per sentence, with log Z from the forward algorithm;
`CRF.decode` returns the highest-scoring sequence (Viterbi). Both run on a whole padded batch:
the mask says which positions are real, and a padded position never scores (it neither adds
a transition nor an emission, and the end transition is taken from each sentence's last real
tag). Masks must be left-aligned (real tokens first) with at least one real token per row.

Optional constraints (`allowed`, from `iob2_constraints`) forbid transitions a tagging scheme
rules out: their scores are pinned to -10,000, which makes such paths vanish from Z and from
Viterbi while keeping every number finite. Forbidden entries get no gradient.
Computations run in float32 whatever the emissions' dtype (autocast), for a stable log Z.
Checked against brute-force enumeration of every tag sequence in tests/test_ner_crf.py.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

FORBIDDEN = -1e4


def iob2_constraints(tag_names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(allowed transitions K x K [from, to], allowed first tags K) for IOB2 tags.

    IOB2 forbids an I-X anywhere but right after B-X or I-X: so no I-X first in a sentence,
    after O, or after B-Y / I-Y of another type Y. Everything else is allowed, including any
    last tag.
    """
    k = len(tag_names)
    allowed = torch.ones(k, k, dtype=torch.bool)
    start = torch.ones(k, dtype=torch.bool)
    for j, to in enumerate(tag_names):
        if not to.startswith("I-"):
            continue
        start[j] = False
        for i, frm in enumerate(tag_names):
            allowed[i, j] = frm[2:] == to[2:] and frm[:2] in ("B-", "I-")
    return allowed, start


class CRF(nn.Module):
    """Linear-chain CRF over `num_tags` tags with start and end transitions.

    `allowed` (K x K bool, [from, to]) and `allowed_start` (K bool) restrict the tag sequences
    the CRF can score; None allows everything.
    """

    def __init__(self, *, num_tags: int, allowed: torch.Tensor | None = None,
                 allowed_start: torch.Tensor | None = None):
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be at least 1, got {num_tags}")
        self.num_tags = num_tags
        # Small random scores, as in torchcrf: zeros would work but tie every path at first.
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        allowed = torch.ones(num_tags, num_tags, dtype=torch.bool) if allowed is None else allowed.bool()
        allowed_start = torch.ones(num_tags, dtype=torch.bool) if allowed_start is None else allowed_start.bool()
        if allowed.shape != (num_tags, num_tags) or allowed_start.shape != (num_tags,):
            raise ValueError("allowed must be K x K and allowed_start K long")
        self.register_buffer("allowed", allowed, persistent=False)
        self.register_buffer("allowed_start", allowed_start, persistent=False)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, constrained={self.constrained}"

    @property
    def constrained(self) -> bool:
        return not (bool(self.allowed.all()) and bool(self.allowed_start.all()))

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(transitions, start, end) as the CRF uses them: forbidden entries pinned to -10,000."""
        transitions = self.transitions.float().masked_fill(~self.allowed, FORBIDDEN)
        start = self.start_transitions.float().masked_fill(~self.allowed_start, FORBIDDEN)
        return transitions, start, self.end_transitions.float()

    @staticmethod
    def _check(emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if emissions.dim() != 3 or mask.shape != emissions.shape[:2]:
            raise ValueError(f"emissions must be (B, T, K) and mask (B, T); got {tuple(emissions.shape)} "
                             f"and {tuple(mask.shape)}")
        mask = mask.bool()
        if not bool(mask[:, 0].all()):
            raise ValueError("every sentence needs at least one token, first in its row")
        return mask

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """score(tags) per sentence (B,): the unnormalised log-probability of the given tags."""
        mask = self._check(emissions, mask)
        emissions = emissions.float()
        transitions, start, end = self.scores()
        tags = tags.masked_fill(~mask, 0)  # padding may hold anything; it is masked out below
        emitted = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)              # (B, T)
        moved = transitions[tags[:, :-1], tags[:, 1:]]                              # (B, T-1)
        total = start[tags[:, 0]] + emitted[:, 0]
        total = total + ((emitted[:, 1:] + moved) * mask[:, 1:]).sum(dim=1)
        last = tags.gather(1, (mask.sum(dim=1, keepdim=True) - 1)).squeeze(1)
        return total + end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per sentence (B,), by the forward algorithm."""
        mask = self._check(emissions, mask)
        emissions = emissions.float()
        transitions, start, end = self.scores()
        alpha = start + emissions[:, 0]                                            # (B, K)
        for t in range(1, emissions.shape[1]):
            # alpha'[b, j] = logsumexp_i (alpha[b, i] + trans[i, j]) + e[b, t, j]
            step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t:t + 1], step, alpha)  # a padded step changes nothing
        return torch.logsumexp(alpha + end, dim=1)

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of `tags` per sentence (B,): log Z - score(tags)."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Viterbi: (best tags (B, T), padding set to 0; their scores (B,))."""
        mask = self._check(emissions, mask)
        emissions = emissions.float()
        transitions, start, end = self.scores()
        batch, length, k = emissions.shape
        best = start + emissions[:, 0]                                              # (B, K)
        identity = torch.arange(k, device=emissions.device).expand(batch, k)
        pointers = []
        for t in range(1, length):
            candidates = best.unsqueeze(2) + transitions                           # (B, from, to)
            step, pointer = candidates.max(dim=1)
            real = mask[:, t:t + 1]
            best = torch.where(real, step + emissions[:, t], best)
            # On padding each tag points to itself, so backtracking walks through unchanged.
            pointers.append(torch.where(real, pointer, identity))
        final = best + end
        scores, tag = final.max(dim=1)
        path = [tag]
        for pointer in reversed(pointers):
            tag = pointer.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        tags = torch.stack(path[::-1], dim=1)
        return tags.masked_fill(~mask, 0), scores
