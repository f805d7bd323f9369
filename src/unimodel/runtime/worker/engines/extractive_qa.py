"""question-answering: an extractive QA head, best span over the context, scored as Hugging Face's QA pipeline
scores it (transformers 5 has no QA pipeline)."""

from __future__ import annotations

import math
from typing import Any

from ..params import Spec
from .task_table import Task, max_positions, text


def _load(source: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    import transformers as tf

    remote = bool(kwargs.get("trust_remote_code", False))
    tokenizer = tf.AutoTokenizer.from_pretrained(source, trust_remote_code=remote)
    return tokenizer, tf.AutoModelForQuestionAnswering.from_pretrained(source, **kwargs).eval()


def _answer(handle: tuple[Any, Any], fields: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    import torch

    tokenizer, model = handle
    question, context = text(fields, "question"), text(fields, "context")
    max_answer = int(options.get("max_answer_len", 15))
    max_len = min(int(options.get("max_seq_len", 384)), max_positions(model.config) or 512)
    stride = min(int(options.get("doc_stride", 128)), max_len // 2)
    enc = tokenizer(
        question,
        context,
        truncation="only_second",
        max_length=max_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=True,
        return_tensors="pt",
    )
    offsets = enc.pop("offset_mapping")
    enc.pop("overflow_to_sample_mapping", None)
    with torch.inference_mode():
        out = model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    best: dict[str, Any] = {"score": 0.0, "start": 0, "end": 0, "answer": ""}
    null_score = 0.0
    for window in range(enc["input_ids"].shape[0]):
        in_context = [sid == 1 for sid in enc.sequence_ids(window)]
        start_p = _softmax_masked(out.start_logits[window].tolist(), in_context, keep=0)
        end_p = _softmax_masked(out.end_logits[window].tolist(), in_context, keep=0)
        null_score = max(null_score, start_p[0] * end_p[0])
        for s, ps in enumerate(start_p):
            if not in_context[s]:
                continue
            for e in range(s, min(s + max_answer, len(end_p))):
                if in_context[e] and ps * end_p[e] > best["score"]:
                    char_start, char_end = int(offsets[window][s][0]), int(offsets[window][e][1])
                    best = {
                        "score": ps * end_p[e],
                        "start": char_start,
                        "end": char_end,
                        "answer": context[char_start:char_end],
                    }
    if options.get("handle_impossible_answer") and null_score > float(best["score"]):
        return {"score": null_score, "start": 0, "end": 0, "answer": ""}
    return best


def _softmax_masked(logits: list[float], allowed: list[bool], keep: int) -> list[float]:
    """Softmax over the context tokens (and the CLS token at `keep`, the "no answer" position)."""
    picked = [x if ok or i == keep else -math.inf for i, (x, ok) in enumerate(zip(logits, allowed, strict=True))]
    top = max(picked)
    exps = [math.exp(x - top) if x != -math.inf else 0.0 for x in picked]
    total = sum(exps) or 1.0
    return [x / total for x in exps]


QA_TASKS = {
    "question-answering": Task(
        {
            "max_answer_len": Spec("int", ge=1),
            "max_seq_len": Spec("int", ge=16),
            "doc_stride": Spec("int", ge=0),
            "handle_impossible_answer": Spec("bool"),
        },
        _answer,
        load=_load,
    ),
}
