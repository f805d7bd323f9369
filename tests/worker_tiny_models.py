"""Tiny random-weight Hugging Face models the worker tests save into a folder: no downloads.

Each is 2 layers of width 32 over a 60-word vocabulary, with a tokenizer built from that vocabulary. Their
outputs are noise; the tests pin the output's shape (PROTOCOL.md), not its sense.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = [
    "the",
    "a",
    "is",
    "of",
    "and",
    "to",
    "in",
    "on",
    "at",
    "it",
    "was",
    "who",
    "what",
    "where",
    "when",
    "which",
    "summarize",
    "translate",
    "english",
    "german",
    "cat",
    "dog",
    "sat",
    "mat",
    "paris",
    "france",
    "capital",
    "city",
    "john",
    "mary",
    "lives",
    "works",
    "london",
    "berlin",
    "river",
    "big",
    "small",
    "red",
    "blue",
    "green",
    "happy",
    "sad",
    "good",
    "bad",
    "day",
    "night",
    "book",
    "read",
    "write",
    "house",
    "car",
    "tree",
    "sun",
    "moon",
    "star",
    "sky",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} <eos> {% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)


def _bert_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(special + list(WORDS))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )


def _word_tokenizer(*, seq2seq: bool) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<bos>", "<eos>", "<unk>", "<user>", "<assistant>", "<system>"]
    vocab = {w: i for i, w in enumerate(special + list(WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if seq2seq:
        tok.post_processor = processors.TemplateProcessing(single="$A <eos>", special_tokens=[("<eos>", 2)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        model_max_length=128,
    )
    fast.add_special_tokens({"additional_special_tokens": ["<user>", "<assistant>", "<system>"]})
    return fast


def _bert_config(**extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
        pad_token_id=0,
        **extra,
    )


def _save(model: Any, tokenizer: Any, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_all(root: Path) -> dict[str, Path]:
    """Save one tiny model per task under `root`; the map is task → model folder."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    tf.logging.disable_progress_bar()
    bert = _bert_tokenizer()
    labels = {0: "NEGATIVE", 1: "POSITIVE"}
    nli = {0: "entailment", 1: "neutral", 2: "contradiction"}
    ner = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
    folders = {
        "text-classification": _save(
            tf.BertForSequenceClassification(_bert_config(id2label=labels, label2id={v: k for k, v in labels.items()})),
            bert,
            root / "text-classification",
        ),
        "token-classification": _save(
            tf.BertForTokenClassification(_bert_config(id2label=ner, label2id={v: k for k, v in ner.items()})),
            bert,
            root / "token-classification",
        ),
        "zero-shot-classification": _save(
            tf.BertForSequenceClassification(_bert_config(id2label=nli, label2id={v: k for k, v in nli.items()})),
            bert,
            root / "zero-shot-classification",
        ),
        "fill-mask": _save(tf.BertForMaskedLM(_bert_config()), bert, root / "fill-mask"),
        "question-answering": _save(tf.BertForQuestionAnswering(_bert_config()), bert, root / "question-answering"),
    }
    words = _word_tokenizer(seq2seq=False)
    words.chat_template = CHAT_TEMPLATE
    gpt2 = tf.GPT2LMHeadModel(
        tf.GPT2Config(
            vocab_size=len(words),
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_positions=128,
            bos_token_id=words.bos_token_id,
            eos_token_id=words.eos_token_id,
            pad_token_id=words.pad_token_id,
        )
    )
    folders["text-generation"] = _save(gpt2, words, root / "text-generation")
    s2s_words = _word_tokenizer(seq2seq=True)
    bart = tf.BartForConditionalGeneration(
        tf.BartConfig(
            vocab_size=len(s2s_words),
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=37,
            decoder_ffn_dim=37,
            max_position_embeddings=128,
            pad_token_id=s2s_words.pad_token_id,
            bos_token_id=s2s_words.bos_token_id,
            eos_token_id=s2s_words.eos_token_id,
            decoder_start_token_id=s2s_words.eos_token_id,
            forced_eos_token_id=None,
        )
    )
    bart.generation_config.max_length = 12  # the model's own default length, as a real summarizer has one
    folders["summarization"] = _save(bart, s2s_words, root / "seq2seq")
    return folders
