"""The four encoder-decoder models and the decoders: sizes, teacher forcing = incremental steps,
padding, and greedy/beam search checked against a brute-force search over every hypothesis."""

from __future__ import annotations

import itertools
import warnings

import pytest

from nbhelpers.config import models_for
from nbhelpers.registry import tasks_of
import torch

from nbhelpers.config import RunConfig, validate_config
from nbhelpers.errors import UserInputError
from nbhelpers.models.decoding import beam_search, greedy_decode, max_target_lengths, sequence_log_prob
from nbhelpers.models.seq2seq import (build_bart_small, build_lstm_seq2seq, build_tiny_transformer_seq2seq,
                                      build_transformer_seq2seq)
from nbhelpers.registry import MODELS

PAD, BOS, EOS = 0, 1, 2
V = 6  # three real tokens: brute force stays small


def _info(vocab_size=V, **extra):
    return {"vocab_size": vocab_size, "pad_id": PAD, "bos_id": BOS, "eos_id": EOS, "max_source_len": 16,
            "max_target_len": 16, **extra}


def _bart(info, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_bart_small(info=info, pretrained=False, **kwargs)


TINY = {
    "lstm_seq2seq": lambda info: build_lstm_seq2seq(info=info, embed_dim=8, hidden=8, layers=2, dropout=0.1),
    "transformer_seq2seq": lambda info: build_transformer_seq2seq(info=info, size="tiny", d_model=16, layers=2,
                                                                  dropout=0.1),
    "tiny_transformer_seq2seq": lambda info: build_tiny_transformer_seq2seq(info=info, d_model=16, heads=2, ff=32,
                                                                            layers=2),
    "bart_small": lambda info: _bart(info, d_model=16, heads=2, ff=32, layers=2),
}


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _sources():
    source = torch.tensor([[3, 4, 5, 4, 2, 0], [5, 3, 2, 0, 0, 0], [4, 4, 4, 5, 3, 2]])
    return source, source != PAD


@pytest.fixture(params=list(TINY))
def tiny_model(request):
    torch.manual_seed(0)
    return request.param, TINY[request.param](_info()).eval()


# ---------------------------------------------------------------------------------------------
# Registry and sizes
# ---------------------------------------------------------------------------------------------

def test_every_model_serves_both_tasks():
    for name in TINY:
        entry = MODELS.get(name)
        assert entry.meta["tasks"] == ("machine_translation", "text_summarization")
        assert tasks_of(entry) == ("machine_translation", "text_summarization")
        for task in entry.meta["tasks"]:
            validate_config(RunConfig(task=task, model=name))
        assert name in models_for("text_summarization") and name in models_for("machine_translation")
    with pytest.raises(UserInputError, match="does not belong"):
        validate_config(RunConfig(task="machine_translation", model="lstm_sentiment"))
    with pytest.raises(UserInputError, match="does not belong"):
        validate_config(RunConfig(task="sentiment_analysis", model="lstm_seq2seq"))


def test_parameter_counts_at_the_defaults():
    millions = lambda model: _count(model) / 1e6  # noqa: E731
    assert 10 <= millions(build_lstm_seq2seq(info=_info(10_000))) <= 40
    assert 25 <= millions(_bart(_info(16_000))) <= 35
    with torch.device("meta"):  # shapes only: the Transformers' initialization is skipped
        assert 30 <= millions(build_transformer_seq2seq(info=_info(10_000))) <= 60
        assert 20 <= millions(build_tiny_transformer_seq2seq(info=_info(32_000))) <= 30
        small = build_transformer_seq2seq(info=_info(1000))
        tiny = build_transformer_seq2seq(info=_info(1000), size="tiny")
        assert _count(tiny) < _count(small) < _count(build_transformer_seq2seq(info=_info(1000), size="base"))


def test_embeddings_are_tied_as_documented():
    tiny = build_tiny_transformer_seq2seq(info=_info(300), d_model=16, heads=2, ff=32, layers=1)
    assert tiny.source_embedding is not tiny.target_embedding and tiny.pre_norm
    shared = build_transformer_seq2seq(info=_info(300), size="tiny")
    assert shared.source_embedding is shared.target_embedding and not shared.pre_norm
    # The output layer reads the target embedding: one table, counted once.
    assert _count(shared) == sum(p.numel() for n, p in shared.named_parameters() if "embedding" not in n) \
        + 300 * shared.d_model


def test_bad_knobs_are_user_errors():
    with pytest.raises(UserInputError, match="accepted model_kwargs"):
        build_lstm_seq2seq(info=_info(), width=3)
    with pytest.raises(UserInputError, match="multiple of heads"):
        build_tiny_transformer_seq2seq(info=_info(), d_model=30, heads=4)
    with pytest.raises(UserInputError, match="size"):
        build_transformer_seq2seq(info=_info(), size="huge")
    with pytest.raises(UserInputError, match="translation or summarization dataset"):
        build_transformer_seq2seq(info={"vocab_size": 10, "pad_id": 0})


# ---------------------------------------------------------------------------------------------
# Teacher forcing, incremental steps, padding
# ---------------------------------------------------------------------------------------------

def test_incremental_steps_give_the_teacher_forced_logits(tiny_model):
    name, model = tiny_model
    source, mask = _sources()
    target_in = torch.tensor([[BOS, 3, 4, 5, 3], [BOS, 5, 5, 3, 4], [BOS, 4, 3, 3, 5]])
    with torch.no_grad():
        full = model(source, mask, target_in)
        state, steps = model.encode(source, mask), []
        for t in range(target_in.shape[1]):
            logits, state = model.step(target_in[:, t], state)
            steps.append(logits)
    assert full.shape == (3, 5, V)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-4)


def test_source_padding_changes_nothing(tiny_model):
    name, model = tiny_model
    source = torch.tensor([[3, 4, 5, 2]])
    padded = torch.tensor([[3, 4, 5, 2, 0, 0, 0]])
    target_in = torch.tensor([[BOS, 4, 3]])
    with torch.no_grad():
        alone = model(source, source != PAD, target_in)
        with_padding = model(padded, padded != PAD, target_in)
    torch.testing.assert_close(with_padding, alone, atol=1e-5, rtol=1e-4)


def test_lstm_attention_weights_cover_the_real_source_tokens():
    torch.manual_seed(0)
    model = TINY["lstm_seq2seq"](_info()).eval()
    source, mask = _sources()
    with torch.no_grad():
        logits, attention = model(source, mask, torch.tensor([[BOS, 3]] * 3), return_attention=True)
    assert attention.shape == (3, 2, 6) and logits.shape == (3, 2, V)
    torch.testing.assert_close(attention.sum(dim=-1), torch.ones(3, 2))
    assert (attention[~mask.unsqueeze(1).expand_as(attention)] == 0).all()


# ---------------------------------------------------------------------------------------------
# Decoding against brute force
# ---------------------------------------------------------------------------------------------

def _brute_force(model, source, mask, max_length, alpha):
    """The hypothesis with the best score / length**alpha among all that end in </s>."""
    every = [list(body) + [EOS] for length in range(1, max_length + 1)
             for body in itertools.product(range(3, V), repeat=length - 1)]
    hypotheses = torch.tensor([h + [PAD] * (max_length - len(h)) for h in every])
    n = len(every)  # scored in one teacher-forced batch
    scores = sequence_log_prob(model, source.expand(n, -1), mask.expand(n, -1), hypotheses, bos_id=BOS, pad_id=PAD)
    normalized = [float(s) / len(h) ** alpha for s, h in zip(scores, every)]
    best = max(range(n), key=normalized.__getitem__)
    return normalized[best], every[best]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_wide_beam_finds_the_best_hypothesis_of_a_brute_force_search(tiny_model, alpha):
    name, model = tiny_model
    source, mask = _sources()
    max_lengths = torch.tensor([4, 3, 4])
    wide = (V - 3) ** 4  # at least as many beams as there are prefixes: an exhaustive search
    with torch.no_grad():
        hypotheses, scores = beam_search(model, source, mask, beam_size=wide, bos_id=BOS, eos_id=EOS, pad_id=PAD,
                                         max_lengths=max_lengths, length_penalty=alpha)
        for row in range(3):
            best_score, best = _brute_force(model, source[row:row + 1], mask[row:row + 1], int(max_lengths[row]), alpha)
            assert [t for t in hypotheses[row].tolist() if t != PAD] == best
            assert float(scores[row]) == pytest.approx(best_score, abs=1e-4)


def test_greedy_takes_the_most_likely_token_at_each_step(tiny_model):
    name, model = tiny_model
    source, mask = _sources()
    max_lengths = torch.tensor([5, 2, 6])
    with torch.no_grad():
        hypotheses = greedy_decode(model, source, mask, bos_id=BOS, eos_id=EOS, pad_id=PAD, max_lengths=max_lengths)
        for row in range(3):
            prefix = [BOS]
            while True:  # the reference: full forward passes, no cache
                logits = model(source[row:row + 1], mask[row:row + 1], torch.tensor([prefix]))[0, -1]
                logits[[PAD, BOS]] = float("-inf")
                token = EOS if len(prefix) == int(max_lengths[row]) else int(logits.argmax())
                prefix.append(token)
                if token == EOS:
                    break
            assert [t for t in hypotheses[row].tolist() if t != PAD] == prefix[1:]


def test_batched_decoding_equals_one_sentence_at_a_time(tiny_model):
    name, model = tiny_model
    source, mask = _sources()
    max_lengths = torch.tensor([6, 3, 5])
    kwargs = dict(bos_id=BOS, eos_id=EOS, pad_id=PAD)
    with torch.no_grad():
        batched, batched_scores = beam_search(model, source, mask, beam_size=3, max_lengths=max_lengths, **kwargs)
        greedy = greedy_decode(model, source, mask, max_lengths=max_lengths, **kwargs)
        for row in range(3):
            one, one_score = beam_search(model, source[row:row + 1], mask[row:row + 1], beam_size=3,
                                         max_lengths=max_lengths[row:row + 1], **kwargs)
            strip = lambda t: [x for x in t.tolist() if x != PAD]  # noqa: E731
            assert strip(one[0]) == strip(batched[row])
            assert float(one_score) == pytest.approx(float(batched_scores[row]), abs=1e-5)
            alone = greedy_decode(model, source[row:row + 1], mask[row:row + 1], max_lengths=max_lengths[row:row + 1],
                                  **kwargs)
            assert strip(alone[0]) == strip(greedy[row])
            assert len(strip(batched[row])) <= int(max_lengths[row])


@pytest.mark.parametrize("name", ["lstm_seq2seq", "transformer_seq2seq"])
def test_rows_in_any_order_share_the_source_side_exactly(name):
    """Beams share their sentence's encoder side instead of copying it; a reorder that breaks
    the rows-grouped-by-sentence layout (duplicates, shuffles, dropped sentences) still gives
    each row the logits of its own sentence."""
    torch.manual_seed(0)
    model = TINY[name](_info()).eval()
    source, mask = _sources()
    tokens = torch.tensor([3, 4, 5])
    with torch.no_grad():
        state = model.encode(source, mask)
        _, state = model.step(tokens, state)
        for index in (torch.tensor([2, 0, 0, 1]), torch.tensor([1, 1, 1, 2, 2, 2]), torch.tensor([2])):
            logits, _ = model.step(tokens[index], model.reorder_state(state, index))
            # The reference: each selected sentence encoded and stepped on its own.
            for row, sentence in enumerate(index.tolist()):
                alone = model.encode(source[sentence:sentence + 1], mask[sentence:sentence + 1])
                _, alone = model.step(tokens[sentence:sentence + 1], alone)
                expected, _ = model.step(tokens[sentence:sentence + 1], alone)
                torch.testing.assert_close(logits[row], expected[0], atol=1e-5, rtol=1e-4)


def test_max_target_lengths_follow_the_source():
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    assert max_target_lengths(mask, 1.5, 10).tolist() == [16, 13]
    assert max_target_lengths(mask, 1.5, 10, cap=14).tolist() == [14, 13]


# ---------------------------------------------------------------------------------------------
# bart_small: pretrained when cached, else from its config with a warning
# ---------------------------------------------------------------------------------------------

def test_bart_small_warns_and_builds_from_config_when_nothing_is_cached(tmp_path):
    with pytest.warns(UserWarning, match="random weights"):
        model = build_bart_small(info=_info(300), checkpoint=str(tmp_path / "nothing-here"), d_model=16, heads=2,
                                 ff=32, layers=1)
    assert not model.pretrained and model.net.config.vocab_size == 300
    assert model.net.config.decoder_start_token_id == BOS
    with pytest.raises(UserInputError, match="pretrained"):
        build_bart_small(info=_info(300), pretrained=True, checkpoint=str(tmp_path / "nothing-here"))


def test_bart_small_loads_a_saved_checkpoint_and_installs_its_tokenizer(tmp_path):
    from transformers import PreTrainedTokenizerFast

    from nbhelpers.data.seq2seq_text import BPETokenizer, Seq2SeqCollate

    bpe = BPETokenizer.train(["hello world", "good morning world"] * 5, 300)
    hf = PreTrainedTokenizerFast(tokenizer_object=bpe.backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                 unk_token="<unk>")
    saved = _bart(_info(len(bpe)), d_model=16, heads=2, ff=32, layers=1)
    saved.net.save_pretrained(tmp_path / "ckpt")
    hf.save_pretrained(tmp_path / "ckpt")
    collate = Seq2SeqCollate(None, max_source_len=8, max_target_len=8)
    info = _info(5, collate=collate)
    model = build_bart_small(info=info, checkpoint=str(tmp_path / "ckpt"))
    assert model.pretrained and info["vocab_size"] == len(bpe) and collate.tokenizer is info["tokenizer"]
    assert info["tokenizer"].decode(info["tokenizer"].encode("hello  world")) == "hello  world"
    torch.testing.assert_close(model.net.model.shared.weight, saved.net.model.shared.weight)
