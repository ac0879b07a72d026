"""A byte-level BPE tokenizer trained on the world's corpus (GPT-2's recipe, tiny vocab).

Byte-level means every string maps to bytes first, so any text (unicode included)
round-trips through encode/decode and no token is ever "unknown".
"""

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"  # GPT-2's document separator; also our bos and unk
PAD = "<|pad|>"  # a separate pad token so padding is never mistaken for an eos

# Renders chats exactly like `minirlhf.world.format_prompt`: "User: {prompt}\nAssistant:".
# A finished assistant turn is " {answer}<|endoftext|>", as the corpus' documents end.
CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'user' -%}"
    "{{- 'User: ' + (m['content'] | trim) + '\n' -}}"
    "{%- elif m['role'] == 'assistant' -%}"
    "{{- 'Assistant: ' + (m['content'] | trim) + eos_token -}}"
    "{%- else -%}"
    "{{- raise_exception('only user and assistant roles are supported') -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 2048, model_max_length: int = 256
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts`; deterministic for the same texts.

    Ids 0 and 1 are `<|endoftext|>` and `<|pad|>`, then the 256 byte symbols, then merges.
    Padding is on the left so that batched generation continues right after each prompt.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: no unknowns
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=PAD,
        padding_side="left",
        model_max_length=model_max_length,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf
