"""The transformers engine (PyTorch on the CPU): a Hugging Face model folder (or a cached Hugging Face id).

- chat, text-generation: a causal LM; chat renders the tokenizer's chat template.
- image-text-to-text: a vision-language model (AutoModelForImageTextToText) and its processor, whose chat
  template places the messages' images; it streams like chat.
- text2text-generation, summarization, translation: a sequence-to-sequence LM (a T5-style task prefix from
  the model config's `task_specific_params` is added when the model has one).
- feature-extraction, sentence-similarity: a sentence-transformers folder through sentence-transformers
  (normalized); any other encoder mean-pooled over the attention mask and normalized.
- every other task: one entry of the task table (task_table.py: the text pipelines; extractive_qa.py;
  vision_tasks.py: image in; audio_tasks.py: audio in; generation_tasks.py: speech out), each loaded once and
  called per request with its validated `params`.

Generation streams through `TextIteratorStreamer`, with `generate` in its own thread and a stopping criterion
that ends it when the consumer stops reading. `engine_args`: `dtype` (float32, bfloat16, float16),
`threads` (torch intra-op threads), `trust_remote_code` (false unless set).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import LoadError, WorkerError
from ..params import Generation, Spec, pick, validate
from .audio_tasks import AUDIO_TASKS
from .base import DEFAULT_MAX_NEW_TOKENS, EMBEDDING_TASKS, VISION_CHAT_TASKS, ChatMessages, Engine, Outcome
from .extractive_qa import QA_TASKS
from .generation_tasks import GENERATION_TASKS
from .task_table import TEXT_TASKS, Task, max_positions
from .vision_tasks import VISION_TASKS

_CAUSAL = frozenset({"chat", "text-generation"}) | VISION_CHAT_TASKS  # decoder-only generation
_SEQ2SEQ = frozenset({"text2text-generation", "summarization", "translation"})
_ENGINE_ARGS = {"dtype", "threads", "trust_remote_code"}
_HF_DEFAULT_MAX_LENGTH = 20  # GenerationConfig's library default: a model that sets nothing gets our default
TASKS: dict[str, Task] = {**TEXT_TASKS, **QA_TASKS, **VISION_TASKS, **AUDIO_TASKS, **GENERATION_TASKS}


class TransformersEngine(Engine):
    name = "transformers"
    thread_safe = False
    tasks = _CAUSAL | _SEQ2SEQ | EMBEDDING_TASKS | frozenset(TASKS)
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
        entry = TASKS.get(task)
        if entry is not None:
            self._handle = self._load_task(entry, source, kwargs)
            return
        if task in VISION_CHAT_TASKS:
            remote = kwargs["trust_remote_code"]
            self.processor = tf.AutoProcessor.from_pretrained(source, trust_remote_code=remote)  # type: ignore[no-untyped-call]
            self.tokenizer = self.processor.tokenizer
            vlm: Any = tf.AutoModelForImageTextToText.from_pretrained(source, **kwargs)
            self.model = vlm.eval()
            return
        self.tokenizer = tf.AutoTokenizer.from_pretrained(source, trust_remote_code=kwargs["trust_remote_code"])
        auto = {
            **dict.fromkeys(_CAUSAL, tf.AutoModelForCausalLM),
            **dict.fromkeys(_SEQ2SEQ, tf.AutoModelForSeq2SeqLM),
            **dict.fromkeys(EMBEDDING_TASKS, tf.AutoModel),
        }[task]
        self.model = auto.from_pretrained(source, **kwargs).eval()

    @staticmethod
    def _load_task(entry: Task, source: str, kwargs: dict[str, Any]) -> Any:
        if entry.load is not None:
            return entry.load(source, kwargs)
        import transformers as tf

        make_pipeline: Any = tf.pipeline  # typed per literal task name; ours is a variable
        return make_pipeline(
            entry.pipeline,
            model=source,
            device="cpu",
            trust_remote_code=kwargs["trust_remote_code"],
            model_kwargs={k: v for k, v in kwargs.items() if k != "trust_remote_code"},
        )

    # --- generation ---------------------------------------------------------------------------------

    def chat(self, messages: ChatMessages, gen: Generation, outcome: Outcome) -> Iterator[str]:
        if self.spec.task not in _CAUSAL:
            return super().chat(messages, gen, outcome)
        if self.spec.task in VISION_CHAT_TASKS:
            inputs = self.processor.apply_chat_template(
                [_parts(m) for m in messages],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
            )
            return self._generate(inputs, gen, outcome, "messages")
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
        limit = max_positions(self.model.config.get_text_config())
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
        entry = TASKS.get(self.spec.task)
        return entry.specs if entry is not None else {}

    def run(self, task_input: dict[str, Any], params: Any) -> Any:
        entry = TASKS.get(self.spec.task)
        if entry is None:
            return super().run(task_input, params)
        refused = {n: f"not a {self.spec.task} parameter" for n in self.generate_specs}
        options = validate(params, entry.specs, self.name, refused)
        return entry.call(self._handle, task_input, options)


def _parts(message: dict[str, Any]) -> dict[str, Any]:
    """A message with its content as parts, as processors' chat templates take it."""
    content = message["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    return {"role": message["role"], "content": content}


def _generate_error(exc: BaseException, field: str) -> BaseException:
    text = str(exc)
    if isinstance(exc, IndexError | RuntimeError) and ("index out of range" in text or "size of tensor" in text):
        return WorkerError(
            400, "context_length_exceeded", f"The input plus the output is too long for this model: {exc}", field
        )
    return exc
