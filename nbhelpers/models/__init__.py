"""Models, one module per task family; importing this package registers them all.

Each module registers its builders in nbhelpers.registry.MODELS, called as
`builder(info=<DataBundle.info>, **model_kwargs)`. Add a task family by adding its
module's import below.
"""

# cnn_scratch, resnet18, mnist_tiny, vgg11, efficientnet_b0, vit
from nbhelpers.models import images  # noqa: F401
# lstm_sentiment, distilbert_sentiment
from nbhelpers.models import sentiment  # noqa: F401
# gpt_small, gru_lm, lstm_lm
from nbhelpers.models import language_models  # noqa: F401
# lstm_crf_ner, bilstm_crf_charcnn_ner (alias lstm_crf_charcnn_ner)
from nbhelpers.models import ner  # noqa: F401
# lstm_seq2seq, transformer_seq2seq, tiny_transformer_seq2seq, bart_small
from nbhelpers.models import seq2seq  # noqa: F401
