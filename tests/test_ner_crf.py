"""The CRF against brute force (every tag sequence enumerated), and the two NER models."""

from __future__ import annotations

import itertools

import pytest
import torch

from nbhelpers.errors import UserInputError
from nbhelpers.models.crf import CRF, iob2_constraints
from nbhelpers.models.ner import BiLSTMCRF, build_bilstm_crf_charcnn_ner, build_lstm_crf_ner
from nbhelpers.registry import MODELS

TAGS5 = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def _random_crf(num_tags: int, seed: int, constrained: bool = False) -> CRF:
    torch.manual_seed(seed)
    allowed, start = iob2_constraints(TAGS5[:num_tags]) if constrained else (None, None)
    crf = CRF(num_tags=num_tags, allowed=allowed, allowed_start=start)
    with torch.no_grad():  # scores of order 1, so no single path dominates the sums
        for p in (crf.transitions, crf.start_transitions, crf.end_transitions):
            p.normal_()
    return crf


def _brute_force(crf: CRF, emissions: torch.Tensor, length: int) -> dict[tuple[int, ...], torch.Tensor]:
    """score(y) of every tag sequence y of `length` tags, straight from the definition."""
    transitions, start, end = (x.detach() for x in crf.scores())
    emissions = emissions.detach()
    scores = {}
    for tags in itertools.product(range(crf.num_tags), repeat=length):
        s = start[tags[0]] + emissions[0, tags[0]]
        for t in range(1, length):
            s = s + transitions[tags[t - 1], tags[t]] + emissions[t, tags[t]]
        scores[tags] = s + end[tags[-1]]
    return scores


def _batch(seed: int, lengths: list[int], num_tags: int):
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    emissions = torch.randn(len(lengths), width, num_tags, generator=generator) * 2
    tags = torch.randint(0, num_tags, (len(lengths), width), generator=generator)
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return emissions, tags, mask


@pytest.mark.parametrize("num_tags, constrained", [(3, False), (5, False), (5, True)])
def test_nll_and_viterbi_match_brute_force_enumeration(num_tags, constrained):
    crf = _random_crf(num_tags, seed=num_tags, constrained=constrained)
    lengths = [4, 3, 1, 2]
    emissions, tags, mask = _batch(1, lengths, num_tags)
    if constrained:  # gold tags must be a valid IOB2 sequence for a finite likelihood
        tags = torch.tensor([[1, 2, 0, 3], [3, 4, 4, 0], [0, 0, 0, 0], [1, 3, 0, 0]])
    nll = crf(emissions, tags, mask)
    log_z = crf.log_partition(emissions, mask)
    best, best_scores = crf.decode(emissions, mask)
    for row, n in enumerate(lengths):
        scores = _brute_force(crf, emissions[row], n)
        brute_log_z = torch.logsumexp(torch.stack(list(scores.values())), dim=0)
        gold = tuple(tags[row, :n].tolist())
        torch.testing.assert_close(log_z[row], brute_log_z)
        torch.testing.assert_close(nll[row], brute_log_z - scores[gold])
        torch.testing.assert_close(crf.score(emissions, tags, mask)[row], scores[gold])
        argmax = max(scores, key=lambda y: float(scores[y]))
        assert tuple(best[row, :n].tolist()) == argmax
        torch.testing.assert_close(best_scores[row], scores[argmax])
        assert best[row, n:].eq(0).all()  # padding comes back as 0


def test_gradient_of_log_z_is_the_brute_force_tag_marginals():
    crf = _random_crf(3, seed=7)
    emissions, _, mask = _batch(2, [4], 3)
    emissions.requires_grad_(True)
    crf.log_partition(emissions, mask).sum().backward()
    scores = _brute_force(crf, emissions[0].detach(), 4)
    log_z = torch.logsumexp(torch.stack(list(scores.values())), dim=0)
    marginals = torch.zeros(4, 3)
    for tags, s in scores.items():
        for t, y in enumerate(tags):
            marginals[t, y] += torch.exp(s - log_z)
    torch.testing.assert_close(emissions.grad[0], marginals.detach(), atol=1e-5, rtol=1e-4)


def test_padding_never_scores():
    crf = _random_crf(5, seed=3)
    lengths = [5, 2, 3]
    emissions, tags, mask = _batch(4, lengths, 5)
    nll, (best, _) = crf(emissions, tags, mask), crf.decode(emissions, mask)
    # Whatever sits in the padding (emissions, tags) changes nothing...
    noisy_emissions, noisy_tags = emissions.clone(), tags.clone()
    noisy_emissions[~mask] = 100.0
    noisy_tags[~mask] = 4
    torch.testing.assert_close(crf(noisy_emissions, noisy_tags, mask), nll)
    assert torch.equal(crf.decode(noisy_emissions, mask)[0], best)
    # ...and each sentence scores as it does alone, without padding.
    for row, n in enumerate(lengths):
        alone = crf(emissions[row:row + 1, :n], tags[row:row + 1, :n], mask[row:row + 1, :n])
        torch.testing.assert_close(alone[0], nll[row])
        assert crf.decode(emissions[row:row + 1, :n], mask[row:row + 1, :n])[0][0].tolist() == best[row, :n].tolist()


def test_iob2_constraints_forbid_exactly_the_invalid_moves():
    allowed, start = iob2_constraints(TAGS5)
    index = {t: i for i, t in enumerate(TAGS5)}
    assert start.tolist() == [True, True, False, True, False]  # no I-X first
    for frm, to in itertools.product(TAGS5, TAGS5):
        valid = not to.startswith("I-") or frm in (f"B-{to[2:]}", f"I-{to[2:]}")
        assert bool(allowed[index[frm], index[to]]) is valid, (frm, to)


def test_constrained_viterbi_never_emits_a_forbidden_sequence():
    crf = _random_crf(5, seed=5, constrained=True)
    emissions, _, mask = _batch(6, [6, 6, 6], 5)
    emissions[:, :, 2] += 8.0  # I-PER everywhere looks best to the emissions alone
    best, _ = crf.decode(emissions, mask)
    allowed, start = iob2_constraints(TAGS5)
    for row in best.tolist():
        assert start[row[0]] and all(allowed[a, b] for a, b in zip(row, row[1:]))
    assert crf.constrained and not _random_crf(5, seed=5).constrained
    # Forbidden entries get no gradient: the pinned -1e4 is a constant.
    crf(emissions, torch.tensor([[1, 2, 2, 0, 3, 4]] * 3), mask).sum().backward()
    assert crf.transitions.grad[~crf.allowed].abs().sum() == 0


def test_bad_masks_and_shapes_are_refused():
    crf = CRF(num_tags=3)
    emissions = torch.zeros(2, 3, 3)
    with pytest.raises(ValueError, match="at least one token"):
        crf.decode(emissions, torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, T, K\)"):
        crf.log_partition(emissions[0], torch.ones(2, 3, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

def _info(vocab_size: int = 40) -> dict:
    tags = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    return {"tag_names": tags, "vocab_size": vocab_size, "pad_id": 0, "unk_id": 1, "char_vocab_size": 30}


def _inputs(batch=3, width=6, chars=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    word_ids = torch.randint(2, 40, (batch, width), generator=generator)
    char_ids = torch.randint(2, 30, (batch, width, chars), generator=generator)
    mask = torch.ones(batch, width, dtype=torch.bool)
    mask[1, 4:] = False
    word_ids[~mask], char_ids[~mask] = 0, 0
    return word_ids, mask, char_ids


def test_registry_and_alias():
    assert MODELS.get("lstm_crf_charcnn_ner").name == "bilstm_crf_charcnn_ner"
    for name in ("lstm_crf_ner", "bilstm_crf_charcnn_ner"):
        assert MODELS.get(name).meta["task"] == "ner"


def test_parameter_counts_at_a_conll_sized_vocabulary():
    info = _info(vocab_size=17_000)  # CoNLL-2003 at --max-samples 8000 has about this many words
    plain = sum(p.numel() for p in build_lstm_crf_ner(info=info).parameters())
    chars = sum(p.numel() for p in build_bilstm_crf_charcnn_ner(info=info).parameters())
    assert 1_000_000 <= plain <= 3_000_000
    assert 100_000 <= chars - plain <= 500_000


def test_emissions_shape_and_padding_does_not_leak():
    model = build_bilstm_crf_charcnn_ner(info=_info(), hidden=16, embed_dim=8, char_filters=8).eval()
    word_ids, mask, char_ids = _inputs()
    emissions = model(word_ids, mask, char_ids)
    assert emissions.shape == (3, 6, 9)
    alone = model(word_ids[1:2, :4], mask[1:2, :4], char_ids[1:2, :4])
    torch.testing.assert_close(alone[0], emissions[1, :4])


def test_character_features_see_inside_unknown_words():
    word_ids, mask, char_ids = _inputs()
    word_ids[0, 2] = 1  # an unknown word
    other_chars = char_ids.clone()
    other_chars[0, 2] = (other_chars[0, 2] + 3) % 28 + 2  # spelled differently
    for builder, sees_spelling in ((build_bilstm_crf_charcnn_ner, True), (build_lstm_crf_ner, False)):
        torch.manual_seed(0)
        model = builder(info=_info(), hidden=8, embed_dim=8).eval()
        a, b = model(word_ids, mask, char_ids), model(word_ids, mask, other_chars)
        assert (not torch.allclose(a[0, 2], b[0, 2])) is sees_spelling


def test_word_dropout_only_in_training():
    torch.manual_seed(0)
    model = BiLSTMCRF(vocab_size=40, tag_names=_info()["tag_names"], hidden=8, embed_dim=8, dropout=0.0,
                      word_dropout=0.5)
    word_ids, mask, _ = _inputs()
    model.eval()
    torch.testing.assert_close(model(word_ids, mask), model(word_ids, mask))
    model.train()
    torch.manual_seed(1)
    first = model(word_ids, mask)
    torch.manual_seed(2)
    assert not torch.allclose(first, model(word_ids, mask))
    with torch.no_grad():  # with every word dropped, only <unk>'s embedding is read
        model.word_dropout = 0.999999
        model.embedding.weight[1] = 0.0
        all_unk = model(word_ids, mask)
        model.word_dropout = 0.0
        torch.testing.assert_close(all_unk, model(torch.where(mask, 1, 0), mask))


def test_knobs_and_missing_facts_are_user_errors():
    with pytest.raises(UserInputError, match="accepted model_kwargs"):
        build_lstm_crf_ner(info=_info(), char_filters=10)  # a char knob on the word-only model
    with pytest.raises(UserInputError, match="needs an NER dataset"):
        build_lstm_crf_ner(info={"vocab_size": 10})
    with pytest.raises(UserInputError, match="word_dropout"):
        build_lstm_crf_ner(info=_info(), word_dropout=1.0)
    assert not build_lstm_crf_ner(info=_info(), constrain_transitions=False).crf.constrained
    assert build_bilstm_crf_charcnn_ner(info=_info()).crf.constrained
