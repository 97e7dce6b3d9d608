"""Datasets, one module per task family; importing this package registers them all.

Each module registers its builders in nbhelpers.registry.DATASETS (the contract they share
is in nbhelpers/data/base.py). Add a task family by adding its module's import below.
"""

from nbhelpers.data import images  # noqa: F401  (digits, mnist, cifar10)
from nbhelpers.data import sentiment  # noqa: F401  (sst2, imdb, lexicon_sentiment)
from nbhelpers.data import text_generation  # noqa: F401  (wikitext2, ptb_text_only, grammar_lm)
from nbhelpers.data import ner  # noqa: F401  (conll2003, wikiann_en, gazetteer_ner)
from nbhelpers.data import translation  # noqa: F401  (iwslt14_en_de, europarl_bilingual, toy_translation)
from nbhelpers.data import summarization  # noqa: F401  (cnn_dailymail, aeslc, toy_summaries)
