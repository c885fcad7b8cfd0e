"""A small byte-level BPE chat tokenizer trained in the test, Llama-3 style: punctuation runs such as
the closing `."` of a quoted question are one pre-token, and the training text makes `."` one token."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] | trim }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL = ["<|pad|>", "<|begin|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
SENTENCES = [
    'What is the next 5 animals in the following text? Respond only with the next animals.',
    'Previously, you were asked the following question: "What is the next word? Respond with one word." '
    'What is the second character of the response you gave?',
    'She said: "The fox ran away." Then he asked: "Was it red?" "No, it was grey."',
    'Complete the sentence: "The river is wide." Answer in one sentence, please.',
    'deer cow fox hen panda rat shark duck turtle mouse bear frog owl gnu cat',
    "It's 5 o'clock, isn't it? Yes; it is. (Maybe!) Colors: red, blue, green...",
]


def build_bpe_tokenizer(vocab_size: int = 400):
    """A PreTrainedTokenizerFast over a byte-level BPE trained on quoted, punctuated text, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(SENTENCES * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin|>", eos_token="<|end|>", pad_token="<|pad|>",
        additional_special_tokens=SPECIAL[3:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_bpe_tokenizer(out: Path) -> Path:
    """Write the tokenizer to `out` (reloadable with AutoTokenizer)."""
    build_bpe_tokenizer().save_pretrained(out)
    return out
