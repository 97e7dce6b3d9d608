"""Sentiment models: lstm_sentiment (BiLSTM over word tokens) and distilbert_sentiment.

Each is registered in MODELS with task="sentiment_analysis" and built as

    builder(info=bundle.info, **model_kwargs)

where info comes from nbhelpers/data/sentiment.py. Both models take a batch's
`(input_ids, attention_mask)` and return logits (B x num_classes). Each builder first installs
its tokenizer in info with `use_tokenizer()`, so the loaders built after the model tokenize the
raw texts for it: lstm_sentiment the dataset's word tokenizer, distilbert_sentiment a WordPiece
tokenizer. transformers and tokenizers are imported only by distilbert_sentiment.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, Sequence

import torch
from torch import nn

from nbhelpers.data.sentiment import hub_unreachable_reason, use_tokenizer
from nbhelpers.errors import UserInputError
from nbhelpers.models.base import check_knobs, require
from nbhelpers.registry import MODELS

TASK = "sentiment_analysis"
CHECKPOINT = "distilbert-base-uncased"




def _need_text_info(name: str, info: dict, keys: Sequence[str]) -> None:
    missing = [key for key in keys if key not in info]
    if missing:
        raise UserInputError(f"model {name!r} needs a sentiment dataset, but the dataset's info "
                             f"lacks {', '.join(missing)}")


# --------------------------------------------------------------------------------------------
# lstm_sentiment
# --------------------------------------------------------------------------------------------

class LSTMSentiment(nn.Module):
    """Embedding -> BiLSTM -> pooling over the real tokens -> dropout -> linear.

    Sequences are packed by length, so the backward direction starts at each text's last real
    token and padding changes nothing; pooling ("max" or "mean") also ignores the padding.
    At defaults with a 20,000-word vocabulary: about 2.83M parameters, 2.56M of them in the
    embedding.
    """

    def __init__(self, *, vocab_size: int, num_classes: int = 2, pad_id: int = 0,
                 embed_dim: int = 128, hidden: int = 128, layers: int = 1, dropout: float = 0.5,
                 pooling: str = "max"):
        super().__init__()
        require(embed_dim >= 1 and hidden >= 1, "lstm_sentiment: embed_dim and hidden must be >= 1")
        require(layers >= 1, f"lstm_sentiment: layers must be >= 1, got {layers}")
        require(0 <= dropout < 1, f"lstm_sentiment: dropout must be in [0, 1), got {dropout}")
        require(pooling in ("max", "mean"),
                 f"lstm_sentiment: pooling must be 'max' or 'mean', got {pooling!r}")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        # Between stacked LSTM layers the same dropout as before the classifier.
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * hidden, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.bool()
        # Every text has at least one token (the collate function guarantees it).
        lengths = mask.sum(dim=1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(input_ids), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True,
                                                     total_length=input_ids.shape[1])
        valid = mask.unsqueeze(-1)
        if self.pooling == "max":
            pooled = states.masked_fill(~valid, torch.finfo(states.dtype).min).amax(dim=1)
        else:
            pooled = (states * valid).sum(dim=1) / lengths.unsqueeze(-1).to(states.dtype)
        return self.classifier(self.dropout(pooled))


@MODELS.register("lstm_sentiment", task=TASK,
                 description="embedding -> BiLSTM -> max pooling -> dropout 0.5 -> linear, ~1-5M")
def build_lstm_sentiment(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """lstm_sentiment over the dataset's word tokens; knobs: embed_dim, hidden, layers, dropout,
    pooling ("max" or "mean")."""
    check_knobs("lstm_sentiment", LSTMSentiment, model_kwargs, ("vocab_size", "num_classes", "pad_id"))
    _need_text_info("lstm_sentiment", info, ("word_tokenizer", "num_classes"))
    use_tokenizer(info, info["word_tokenizer"])
    return LSTMSentiment(vocab_size=info["vocab_size"], num_classes=int(info["num_classes"]),
                         pad_id=info["pad_id"], **model_kwargs)


# --------------------------------------------------------------------------------------------
# distilbert_sentiment
# --------------------------------------------------------------------------------------------

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(texts: Sequence[str], vocab_size: int = 30522, max_len: int = 512):
    """A WordPiece tokenizer (transformers' PreTrainedTokenizerFast) built from `texts`.

    Normalization and pre-tokenization are BERT's uncased ones. The vocabulary is the five
    special tokens, every character seen (word-initial and as a '##' continuation), then the most
    frequent words (ties alphabetical) up to `vocab_size`; words outside it are split greedily
    into the longest known pieces, as WordPiece does. The vocabulary is chosen here rather
    than by tokenizers' WordPieceTrainer because that trainer breaks ties between equally
    frequent merges differently from one process to the next, and a run must not depend on that.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    characters = sorted({char for word in counts for char in word})
    vocabulary = list(SPECIAL_TOKENS) + characters + [f"##{char}" for char in characters]
    room = max(0, vocab_size - len(vocabulary))
    known = set(vocabulary)
    ranked = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if w not in known]
    vocabulary += ranked[:room]
    tokenizer = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocabulary)},
                                           unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=max_len)


class DistilBertSentiment(nn.Module):
    """transformers' DistilBertForSequenceClassification, returning logits for (ids, mask).

    `pretrained`: "auto" loads distilbert-base-uncased's weights and tokenizer from the local
    Hugging Face cache, else from the hub when it answers, else builds the same architecture
    from its config with random weights and a WordPiece tokenizer built from the training
    split (with a warning); True insists on the pretrained weights; False always builds from
    the config. Setting any architecture knob (dim, n_layers, n_heads, hidden_dim) builds from
    the config. ~67M parameters at the pretrained size. The tokenizer is `self.tokenizer`.
    """

    def __init__(self, *, info: dict, pretrained: bool | str = "auto", checkpoint: str = CHECKPOINT,
                 dim: int | None = None, n_layers: int | None = None, n_heads: int | None = None,
                 hidden_dim: int | None = None, vocab_size: int = 30522, dropout: float = 0.1,
                 seq_classif_dropout: float = 0.2):
        super().__init__()
        require(pretrained in (True, False, "auto"),
                 f"distilbert_sentiment: pretrained must be true, false or 'auto', got {pretrained!r}")
        require(0 <= dropout < 1 and 0 <= seq_classif_dropout < 1,
                 "distilbert_sentiment: dropouts must be in [0, 1)")
        shape = {key: value for key, value in (("dim", dim), ("n_layers", n_layers),
                                               ("n_heads", n_heads), ("hidden_dim", hidden_dim))
                 if value is not None}
        if shape and pretrained is True:
            raise UserInputError(
                f"distilbert_sentiment: pretrained=True cannot change the architecture "
                f"({', '.join(shape)}); drop those knobs or set pretrained=false")
        dropouts = {"dropout": dropout, "attention_dropout": dropout,
                    "seq_classif_dropout": seq_classif_dropout}
        num_labels = int(info["num_classes"])
        loaded = None
        if pretrained is not False and not shape:
            loaded = self._load_pretrained(checkpoint, num_labels, dropouts)
        self.pretrained = loaded is not None
        if loaded is not None:
            self.net, self.tokenizer = loaded
            return
        if pretrained is True:
            raise UserInputError(
                f"distilbert_sentiment: the pretrained {checkpoint!r} is neither in the Hugging "
                f"Face cache nor downloadable ({hub_unreachable_reason() or 'download failed'}); "
                "use pretrained=auto or false")
        reason = ("pretrained=false or architecture knobs were given" if shape or pretrained is False
                  else f"{checkpoint!r} is not in the local Hugging Face cache and the hub is unreachable")
        _need_text_info("distilbert_sentiment", info, ("train_texts",))
        self.tokenizer = train_wordpiece(info["train_texts"], vocab_size)
        warnings.warn(
            f"distilbert_sentiment: {reason}; building DistilBERT from its config with random "
            f"weights and a WordPiece tokenizer ({len(self.tokenizer):,} tokens) built from the "
            "training split. Expect far lower accuracy than a fine-tuned pretrained model.",
            stacklevel=3)
        self.net = self._from_config(shape, num_labels, dropouts)

    def _from_config(self, shape: dict, num_labels: int, dropouts: dict) -> nn.Module:
        """DistilBERT with random weights: distilbert-base-uncased's config, resized by `shape`."""
        from transformers import DistilBertConfig, DistilBertForSequenceClassification

        base = DistilBertConfig()
        config = DistilBertConfig(
            vocab_size=len(self.tokenizer), pad_token_id=self.tokenizer.pad_token_id,
            num_labels=num_labels, dim=shape.get("dim", base.dim),
            n_layers=shape.get("n_layers", base.n_layers), n_heads=shape.get("n_heads", base.n_heads),
            hidden_dim=shape.get("hidden_dim", base.hidden_dim), **dropouts)
        require(config.dim % config.n_heads == 0,
                 f"distilbert_sentiment: dim {config.dim} is not a multiple of n_heads {config.n_heads}")
        return DistilBertForSequenceClassification(config)

    @staticmethod
    def _load_pretrained(checkpoint: str, num_labels: int, dropouts: dict):
        """(model, tokenizer) from the local cache, else the hub if it answers; None if neither."""
        from transformers import AutoTokenizer, DistilBertForSequenceClassification
        from transformers.utils import logging as hf_logging

        # The local cache first; the hub only when it answers (else from_pretrained would retry
        # for half a minute before failing).
        attempts = [True] if hub_unreachable_reason() is not None else [True, False]
        verbosity = hf_logging.get_verbosity()
        # "Some weights were newly initialized" is expected: the classifier head is new.
        hf_logging.set_verbosity_error()
        try:
            for local_only in attempts:
                try:
                    model = DistilBertForSequenceClassification.from_pretrained(
                        checkpoint, local_files_only=local_only, num_labels=num_labels, **dropouts)
                    tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=local_only)
                    return model, tokenizer
                except OSError:  # transformers' "not cached" and "cannot connect" errors
                    continue
                except Exception:  # an HTTP client's own error from a download that broke off
                    if local_only:
                        raise
                    continue
        finally:
            hf_logging.set_verbosity(verbosity)
        return None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=input_ids, attention_mask=attention_mask).logits


@MODELS.register("distilbert_sentiment", task=TASK,
                 description="DistilBERT (transformers) + classification head, pretrained "
                             "distilbert-base-uncased when available, ~67M")
def build_distilbert_sentiment(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """distilbert_sentiment; knobs: pretrained (true/false/auto), checkpoint, dim, n_layers,
    n_heads, hidden_dim, vocab_size (of a WordPiece vocabulary built from the data), dropout,
    seq_classif_dropout. Installs its tokenizer in info."""
    check_knobs("distilbert_sentiment", DistilBertSentiment, model_kwargs, ("info",))
    _need_text_info("distilbert_sentiment", info, ("num_classes",))
    model = DistilBertSentiment(info=info, **model_kwargs)
    use_tokenizer(info, model.tokenizer)
    return model
