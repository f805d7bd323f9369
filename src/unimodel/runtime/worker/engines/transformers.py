"""The transformers engine (PyTorch on the CPU): a Hugging Face model folder (or a cached Hugging Face id).

- chat, text-generation: a causal LM; chat renders the tokenizer's chat template.
- text2text-generation, summarization, translation: a sequence-to-sequence LM (a T5-style task prefix from
  the model config's `task_specific_params` is added when the model has one).
- feature-extraction, sentence-similarity: a sentence-transformers folder through sentence-transformers
  (normalized); any other encoder mean-pooled over the attention mask and normalized.
- text-classification, token-classification, zero-shot-classification, fill-mask: `transformers.pipeline`.
- question-answering: an extractive QA head, best span over the context (transformers 5 has no QA pipeline).

Generation streams through `TextIteratorStreamer`, with `generate` in its own thread and a stopping criterion
that ends it when the consumer stops reading. `engine_args`: `dtype` (float32, bfloat16, float16),
`threads` (torch intra-op threads), `trust_remote_code` (false unless set).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import LoadError, WorkerError, invalid_request
from ..params import Generation, Spec, pick, validate
from .base import DEFAULT_MAX_NEW_TOKENS, EMBEDDING_TASKS, Engine, Outcome

_CAUSAL = frozenset({"chat", "text-generation"})
_SEQ2SEQ = frozenset({"text2text-generation", "summarization", "translation"})
_PIPELINES = frozenset({"text-classification", "token-classification", "zero-shot-classification", "fill-mask"})
_ENGINE_ARGS = {"dtype", "threads", "trust_remote_code"}
_HF_DEFAULT_MAX_LENGTH = 20  # GenerationConfig's library default: a model that sets nothing gets our default

_TASK_SPECS: dict[str, dict[str, Spec]] = {
    "text-classification": {
        "top_k": Spec("int", ge=1),
        "function_to_apply": Spec("str", choices=("sigmoid", "softmax", "none")),
    },
    "token-classification": {
        "aggregation_strategy": Spec("str", choices=("none", "simple", "first", "average", "max")),
        "ignore_labels": Spec("strs"),
    },
    "zero-shot-classification": {"multi_label": Spec("bool"), "hypothesis_template": Spec("str")},
    "fill-mask": {"top_k": Spec("int", ge=1), "targets": Spec("strs")},
    "question-answering": {
        "max_answer_len": Spec("int", ge=1),
        "max_seq_len": Spec("int", ge=16),
        "doc_stride": Spec("int", ge=0),
        "handle_impossible_answer": Spec("bool"),
    },
}


class TransformersEngine(Engine):
    name = "transformers"
    thread_safe = False
    tasks = _CAUSAL | _SEQ2SEQ | EMBEDDING_TASKS | _PIPELINES | {"question-answering"}
    generate_specs = pick(
        "max_new_tokens min_new_tokens max_length temperature top_k top_p min_p typical_p do_sample num_beams"
        " repetition_penalty no_repeat_ngram_size length_penalty early_stopping stop seed return_full_text"
    )
    generate_reasons = {
        "presence_penalty": "transformers' generate has none; use repetition_penalty",
        "frequency_penalty": "transformers' generate has none; use repetition_penalty",
    }

    def load(self) -> None:
        path = self.spec.local_path()
        source = str(path) if path is not None else self.spec.model_id
        unknown = sorted(set(self.spec.engine_args) - _ENGINE_ARGS)
        if unknown:
            raise LoadError(
                f"unknown transformers engine_args: {', '.join(unknown)} (known: {', '.join(sorted(_ENGINE_ARGS))})"
            )
        try:
            import torch
            import transformers
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise LoadError(f"transformers or torch is not installed ({exc}); run `make install`") from exc
        transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        args = self.spec.engine_args
        if "threads" in args:
            torch.set_num_threads(int(args["threads"]))
        kwargs: dict[str, Any] = {"trust_remote_code": bool(args.get("trust_remote_code", False))}
        if "dtype" in args:
            kwargs["dtype"] = getattr(torch, str(args["dtype"]))
        try:
            self._load(source, path, kwargs)
        except (OSError, ValueError, KeyError, RuntimeError, ImportError, AttributeError, TypeError) as exc:
            raise LoadError(f"transformers cannot load {source}: {exc}") from exc

    def _load(self, source: str, path: Path | None, kwargs: dict[str, Any]) -> None:
        import transformers as tf

        task = self.spec.task
        self._st: Any = None
        if task in EMBEDDING_TASKS and path is not None and (path / "modules.json").is_file():
            from sentence_transformers import SentenceTransformer

            self._st = SentenceTransformer(source, device="cpu", trust_remote_code=kwargs["trust_remote_code"])
            self.tokenizer = self._st.tokenizer
            return
        if task in _PIPELINES:
            make_pipeline: Any = tf.pipeline  # typed per literal task name; ours is a variable
            model_kwargs = {k: v for k, v in kwargs.items() if k != "trust_remote_code"}
            self._pipe = make_pipeline(
                task,
                model=source,
                device="cpu",
                trust_remote_code=kwargs["trust_remote_code"],
                model_kwargs=model_kwargs,
            )
            self.tokenizer = self._pipe.tokenizer
            return
        self.tokenizer = tf.AutoTokenizer.from_pretrained(source, trust_remote_code=kwargs["trust_remote_code"])
        auto = {
            **dict.fromkeys(_CAUSAL, tf.AutoModelForCausalLM),
            **dict.fromkeys(_SEQ2SEQ, tf.AutoModelForSeq2SeqLM),
            **dict.fromkeys(EMBEDDING_TASKS, tf.AutoModel),
            "question-answering": tf.AutoModelForQuestionAnswering,
        }[task]
        self.model = auto.from_pretrained(source, **kwargs).eval()

    # --- generation ---------------------------------------------------------------------------------

    def chat(self, messages: list[dict[str, str]], gen: Generation, outcome: Outcome) -> Iterator[str]:
        if self.spec.task not in _CAUSAL:
            return super().chat(messages, gen, outcome)
        if not getattr(self.tokenizer, "chat_template", None):
            raise WorkerError(
                400, "unsupported_task", "This model's tokenizer has no chat template; use /v1/completions.", "messages"
            )
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        return self._generate(inputs, gen, outcome, "messages")

    def complete(self, prompt: str, gen: Generation, outcome: Outcome) -> Iterator[str]:
        if self.spec.task in _SEQ2SEQ:
            prefix = self._task_prefix()
            inputs = self.tokenizer(prefix + prompt, return_tensors="pt", truncation=True)
        else:
            inputs = self.tokenizer(prompt, return_tensors="pt")
        return self._generate(inputs, gen, outcome, "prompt")

    def _task_prefix(self) -> str:
        params = getattr(self.model.config, "task_specific_params", None) or {}
        task = self.spec.task
        matches = [v for k, v in params.items() if k == task or (task == "translation" and k.startswith("translation"))]
        return str(matches[0].get("prefix", "")) if len(matches) == 1 else ""

    def _generate_kwargs(self, gen: Generation) -> dict[str, Any]:
        config = self.model.generation_config
        kw: dict[str, Any] = {}
        if gen.max_new_tokens is not None:
            kw["max_new_tokens"] = gen.max_new_tokens
        elif gen.max_length is not None:
            kw["max_length"] = gen.max_length
        elif config.max_new_tokens is None and config.max_length == _HF_DEFAULT_MAX_LENGTH:
            kw["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
        sampling = ("temperature", "top_k", "top_p", "min_p", "typical_p")
        if gen.greedy:
            kw["do_sample"] = False
        elif gen.do_sample or any(getattr(gen, name) is not None for name in sampling):
            kw["do_sample"] = True
            kw.update({name: getattr(gen, name) for name in sampling if getattr(gen, name) is not None})
        for name in (
            "min_new_tokens",
            "num_beams",
            "repetition_penalty",
            "no_repeat_ngram_size",
            "length_penalty",
            "early_stopping",
        ):
            if getattr(gen, name) is not None:
                kw[name] = getattr(gen, name)
        if config.pad_token_id is None and self.tokenizer.pad_token_id is None:
            eos = config.eos_token_id
            kw["pad_token_id"] = eos[0] if isinstance(eos, list) else eos
        return kw

    def _generate(self, inputs: Any, gen: Generation, outcome: Outcome, field: str) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        prompt_len = int(inputs["input_ids"].shape[1])
        decoder_only = self.spec.task in _CAUSAL
        limit = _max_positions(self.model.config)
        if decoder_only and limit is not None and prompt_len >= limit:
            raise WorkerError(
                400,
                "context_length_exceeded",
                f"The input is {prompt_len} tokens; this model takes fewer than {limit}.",
                field,
            )
        kwargs = self._generate_kwargs(gen)
        stop = threading.Event()

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        beams = (gen.num_beams or 1) > 1  # beam search cannot stream: one piece at the end
        streamer = None if beams else TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                if gen.seed is not None:
                    torch.manual_seed(gen.seed)
                with torch.inference_mode():
                    result["out"] = self.model.generate(
                        **inputs, **kwargs, streamer=streamer, stopping_criteria=StoppingCriteriaList([_Cancel()])
                    )
            except BaseException as exc:
                result["error"] = exc
                if streamer is not None:
                    streamer.end()  # type: ignore[no-untyped-call]

        def pieces() -> Iterator[str]:
            thread = threading.Thread(target=run, name="generate", daemon=True)
            thread.start()
            try:
                if streamer is not None:
                    for text in streamer:
                        if text:
                            yield text
                thread.join()
                if "error" in result:
                    raise _generate_error(result["error"], field)
                if streamer is None:
                    yield self._decode_new(result["out"][0], prompt_len, decoder_only)
            finally:
                stop.set()
                thread.join()
                self._account(result.get("out"), prompt_len, decoder_only, kwargs, outcome)

        return pieces()

    def _decode_new(self, sequence: Any, prompt_len: int, decoder_only: bool) -> str:
        new = sequence[prompt_len:] if decoder_only else sequence
        return str(self.tokenizer.decode(new, skip_special_tokens=True))

    def _account(self, out: Any, prompt_len: int, decoder_only: bool, kwargs: dict[str, Any], outcome: Outcome) -> None:
        outcome.prompt_tokens = prompt_len
        if out is None:
            return
        sequence = out[0].tolist()
        new = sequence[prompt_len:] if decoder_only else sequence[1:]  # seq2seq: after the decoder start token
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        pad = self.model.generation_config.pad_token_id
        while new and new[-1] == pad and pad not in eos_ids:
            new.pop()
        ended = bool(new) and new[-1] in eos_ids
        outcome.completion_tokens = len(new) - (1 if ended else 0)
        limit = kwargs.get("max_new_tokens")
        if limit is None and "max_length" in kwargs:
            limit = kwargs["max_length"] - (prompt_len if decoder_only else 0)
        outcome.finish_reason = "length" if not ended and limit is not None and len(new) >= limit else "stop"

    # --- embeddings -----------------------------------------------------------------------------------

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        if self.spec.task not in EMBEDDING_TASKS:
            return super().embed(texts)
        import torch

        if self._st is not None:
            vectors = self._st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
            limit = getattr(self._st, "max_seq_length", None)
            counted = self.tokenizer(texts, truncation=limit is not None, max_length=limit)
            return vectors.tolist(), sum(len(ids) for ids in counted["input_ids"])
        batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.tolist(), int(batch["attention_mask"].sum())

    # --- other tasks ------------------------------------------------------------------------------------

    def task_specs(self) -> Mapping[str, Spec]:
        return _TASK_SPECS.get(self.spec.task, {})

    def run(self, task_input: dict[str, Any], params: Any) -> Any:
        task = self.spec.task
        options = validate(
            params, self.task_specs(), self.name, {n: f"not a {task} parameter" for n in self.generate_specs}
        )
        if task == "question-answering":
            return self._answer(_text(task_input, "question"), _text(task_input, "context"), options)
        text = _text(task_input, "text")
        if task == "zero-shot-classification":
            labels = _labels(task_input.get("candidate_labels"))
            return _plain(self._pipe(text, candidate_labels=labels, **options))
        if task == "fill-mask":
            mask = self.tokenizer.mask_token
            if mask and mask != "<mask>":
                text = text.replace("<mask>", mask)
            if not mask or mask not in text:
                raise invalid_request(f"'text' must hold the mask token <mask> (this model's: {mask}).", "text")
        if task == "text-classification":
            options.setdefault("top_k", None)  # every label, best first
        if task in _PIPELINES:
            if "ignore_labels" in options:
                options["ignore_labels"] = list(options["ignore_labels"])
            if "targets" in options:
                options["targets"] = list(options["targets"])
            return _plain(self._pipe(text, **options))
        return super().run(task_input, params)

    def _answer(self, question: str, context: str, options: dict[str, Any]) -> dict[str, Any]:
        """The best answer span in `context`, scored as Hugging Face's QA pipeline scores it."""
        import torch

        max_answer = int(options.get("max_answer_len", 15))
        max_len = min(int(options.get("max_seq_len", 384)), _max_positions(self.model.config) or 512)
        stride = min(int(options.get("doc_stride", 128)), max_len // 2)
        enc = self.tokenizer(
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
            out = self.model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
        best: dict[str, Any] = {"score": 0.0, "start": 0, "end": 0, "answer": ""}
        null_score = 0.0
        for window in range(enc["input_ids"].shape[0]):
            in_context = [sid == 1 for sid in enc.sequence_ids(window)]
            start_logits = out.start_logits[window].tolist()
            end_logits = out.end_logits[window].tolist()
            start_p = _softmax_masked(start_logits, in_context, keep=0)
            end_p = _softmax_masked(end_logits, in_context, keep=0)
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


def _max_positions(config: Any) -> int | None:
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _generate_error(exc: BaseException, field: str) -> BaseException:
    text = str(exc)
    if isinstance(exc, IndexError | RuntimeError) and ("index out of range" in text or "size of tensor" in text):
        return WorkerError(
            400, "context_length_exceeded", f"The input plus the output is too long for this model: {exc}", field
        )
    return exc


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise invalid_request(f"'{name}' must be a non-empty string.", name)
    return value


def _labels(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise invalid_request("'candidate_labels' must be a non-empty array of strings.", "candidate_labels")
    return list(value)


def _plain(value: Any) -> Any:
    """Pipeline output as JSON: numpy scalars to Python numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, str | int | float):
        return item()
    return value
