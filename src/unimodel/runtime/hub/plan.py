"""From what the Hub says about a repo to what to pull and how to run it: a pure function, no I/O.

    plan_pull(info, revision="main", file=None, policy=PlanPolicy(...)) -> Plan

**GGUF repos** (a `gguf` field, or `.gguf` files) run on llama.cpp, from ONE file: the one `file` names, else the
first quantisation of `gguf_preference` the repo has (Q4_K_M, Q4_K_S, Q5_K_M, Q8_0 by default, matched as a
token of the file name; the smallest file when several match), else the smallest file. Vision projectors
(`mmproj`) are never chosen. A file split by llama.cpp (`name-00001-of-00003.gguf`) comes with all its parts
(llama.cpp opens the first and finds the others beside it); one whose parts are missing, or a file cut with
`split` (`.gguf.part1of2`), is refused. Task: `feature-extraction` when the repo's pipeline is an embedding
one, else `chat` when the GGUF carries a chat template (or the Hub tags the repo `conversational`), else
`text-generation`.

**sentence-transformers repos** (library `sentence-transformers`, or a `modules.json` /
`sentence_bert_config.json`) run `feature-extraction` on the transformers engine, with the module folders
(`1_Pooling/`, `2_Dense/`, …).

**diffusers repos** (a `model_index.json`) run on the diffusers engine, for the repo's `pipeline_tag` when the
engine serves it (text-to-image): `model_index.json`, and in each component folder (`unet/`, `vae/`,
`text_encoder/`, `tokenizer/`, `scheduler/` …) its configuration files and ONE weight format, as for transformers
(`diffusion_pytorch_model.safetensors` or `model.safetensors`, their shards, else the `.bin`); never the `.fp16`/
`.non_ema` variants, nor the root's single-file checkpoints.

**transformers repos** (library `transformers`, or none and a `config.json`) run on the transformers engine,
for the repo's `pipeline_tag` when the engine serves that task; without one, the task follows
`config.architectures` (`*ForCausalLM`/`*LMHeadModel` → text-generation, `*ForMaskedLM` → fill-mask,
`*ForSequenceClassification` → text-classification, `*ForTokenClassification` → token-classification,
`*ForQuestionAnswering` → question-answering, `*ForConditionalGeneration` of a seq2seq model type →
text2text-generation). `text-generation` becomes `chat` when the model has a chat template (in
`tokenizer_config`, a `chat_template.jinja`/`.json`, or the Hub's `conversational` tag), since the transformers
engine renders it; `sentence-similarity` becomes `feature-extraction`.

Only what the engine loads is pulled: the root files that configure the model and its tokenizer, and ONE weight
format — `model.safetensors` (or its index and `model-0000i-of-0000n.safetensors` shards), else
`pytorch_model.bin` (or its index and shards). Never both, never other folders (onnx/, openvino/,
original/ …), never ONNX, TensorFlow, Flax, Rust, GGUF, Python files, images or READMEs.

Refused with a 400 `unsupported_model`: another library (timm, peft, mlx, …), a task no engine
serves, a repo that needs remote code (`auto_map` in its config, or the Hub's `custom_code` tag: unimodel never
runs a repo's Python), no PyTorch weights. With a 403: an id no pattern of `[hub] allow` matches
(`model_not_allowed`), files larger together than `[hub] max_download_gb` (`model_too_large`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ...protocol.errors import InvalidRequest, NotFound, PermissionDenied
from ...protocol.model_ids import check_model_id
from .errors import unsupported_model
from .info import HubFile, RepoInfo

Engine = Literal["llama.cpp", "transformers", "diffusers"]

EMBEDDING_PIPELINES = frozenset({"feature-extraction", "sentence-similarity"})
_SEQ2SEQ_TYPES = frozenset({
    "t5", "mt5", "umt5", "longt5", "bart", "mbart", "pegasus", "pegasus_x", "marian", "m2m_100", "nllb_moe", "led",
    "blenderbot", "blenderbot-small", "fsmt", "prophetnet", "plbart", "bigbird_pegasus", "switch_transformers",
})  # fmt: skip
_ARCH_TASKS = (
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForMaskedLM", "fill-mask"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
)
_HUB_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_REVISION = re.compile(r"[A-Za-z0-9_.+@/-]+")
_SPLIT = re.compile(r"^(?P<base>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_PIECE = re.compile(r"\.gguf\.part\d+of\d+$", re.IGNORECASE)
_ST_MODULE = re.compile(r"^\d+_[A-Za-z]\w*$")
_WEIGHTS = {
    "safetensors": (
        "model.safetensors",
        "model.safetensors.index.json",
        re.compile(r"model-\d{5}-of-\d{5}\.safetensors"),
    ),
    "bin": ("pytorch_model.bin", "pytorch_model.bin.index.json", re.compile(r"pytorch_model-\d{5}-of-\d{5}\.bin")),
}
_DIFFUSERS_WEIGHTS = {
    "safetensors": (
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.safetensors.index.json",
        re.compile(r"diffusion_pytorch_model-\d{5}-of-\d{5}\.safetensors"),
    ),
    "bin": (
        "diffusion_pytorch_model.bin",
        "diffusion_pytorch_model.bin.index.json",
        re.compile(r"diffusion_pytorch_model-\d{5}-of-\d{5}\.bin"),
    ),
}
# Files the engines never read: other formats' weights, code, docs, media, training leftovers.
_SKIP_SUFFIXES = (
    ".md", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".mp4", ".pdf", ".wav", ".mp3",
    ".onnx", ".onnx_data", ".tflite", ".h5", ".msgpack", ".ot", ".gguf", ".ggml", ".pt", ".pth", ".ckpt",
    ".py", ".ipynb", ".sh", ".mlmodel", ".npz", ".npy", ".pb", ".zip", ".tar", ".gz", ".pkl", ".joblib",
    ".yaml", ".yml", ".csv", ".parquet", ".log", ".bin", ".safetensors",
)  # fmt: skip
_SKIP_NAMES = frozenset(
    {".gitattributes", ".gitignore", "notice", "data_config.json", "trainer_state.json", "training_args.json"}
    | {"all_results.json", "eval_results.json", "train_results.json", "adapter_config.json"}
)


@dataclass(frozen=True, slots=True)
class PlannedFile:
    name: str  # the path in the repo
    size: int | None
    etag: str | None  # the blob's name in the cache (for progress)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to pull from the Hub and how to run it."""

    repo_id: str  # as the Hub spells it
    revision: str  # as asked (a branch, tag or commit)
    commit: str  # the commit the files come from
    task: str
    engine: Engine
    library: str  # gguf, transformers or sentence-transformers
    files: tuple[PlannedFile, ...]
    entry: str | None  # the file the engine opens (a GGUF, its first part); None: the snapshot folder
    why: str  # the choice, in a sentence ("Q4_K_M, the first of [hub] gguf_preference it has")

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "task": self.task,
            "engine": self.engine,
            "library": self.library,
            "files": [{"name": f.name, "size": f.size} for f in self.files],
            "entry": self.entry,
            "bytes_total": self.total_bytes,
            "why": self.why,
        }

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files)


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    allow: tuple[str, ...] = ("*",)
    max_download_bytes: int | None = None
    gguf_preference: tuple[str, ...] = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q8_0")


def engine_tasks(engine: Engine) -> frozenset[str]:
    """The tasks an engine serves, as its worker class declares them."""
    from ..worker.engines import engine_class

    return engine_class(engine).tasks


def check_repo_id(model_id: str) -> str:
    """`model_id` when it can name a Hub repo (`org/name` or `name`), else a 400 `invalid_model_id`."""
    check_model_id(model_id)
    segments = model_id.split("/")
    problem = None
    if len(segments) > 2:
        problem = "a Hugging Face repo id is 'org/name' or 'name'"
    elif not all(_HUB_NAME.fullmatch(s) for s in segments):
        problem = "a Hugging Face repo id takes letters, digits, '-', '_' and '.'"
    elif "--" in model_id or ".." in model_id or model_id.endswith(".git"):
        problem = "a Hugging Face repo id has no '--' or '..' and does not end in '.git'"
    elif len(segments[-1]) > 96:
        problem = "a Hugging Face repo name has at most 96 characters"
    if problem:
        raise InvalidRequest(f"'{model_id}' is not a Hub model id: {problem}.", code="invalid_model_id", param="model")
    return model_id


def check_revision(revision: str) -> str:
    """`revision` when it can be a branch, tag or commit (it becomes a path under the cache's refs/), else a 400."""
    segments = revision.split("/")
    if not _REVISION.fullmatch(revision) or any(s in ("", ".", "..") for s in segments) or len(revision) > 256:
        raise InvalidRequest(
            f"{revision[:80]!a} is not a revision: name a branch, tag or commit (letters, digits, '-', '_', '.', "
            "'/' between names).",
            code="invalid_revision",
            param="revision",
        )
    return revision


def check_allowed(repo_id: str, allow: Sequence[str]) -> None:
    """A 403 naming `[hub] allow` unless one of its glob patterns matches `repo_id` (case-insensitively, as the
    Hub treats ids)."""
    if any(fnmatch.fnmatchcase(repo_id.lower(), pattern.lower()) for pattern in allow):
        return
    shown = ", ".join(f'"{p}"' for p in allow) if allow else "nothing"
    raise PermissionDenied(
        f"Pulling '{repo_id}' is not allowed on this server: [hub] allow permits {shown}.",
        code="model_not_allowed",
        param="model",
    )


def plan_pull(info: RepoInfo, *, revision: str = "main", file: str | None = None, policy: PlanPolicy) -> Plan:
    """The plan for `info`'s repo, or the UnimodelError (400/403/404) that says why it cannot be pulled."""
    check_revision(revision)
    check_allowed(info.id, policy.allow)
    if _is_gguf(info):
        plan = _plan_gguf(info, revision, file, policy.gguf_preference)
    else:
        if file is not None:
            raise InvalidRequest(
                f"'file' chooses among the .gguf files of a GGUF repo; '{info.id}' has none. Leave 'file' out.",
                param="file",
            )
        plan = _plan_diffusers(info, revision) if _is_diffusers(info) else _plan_transformers(info, revision)
    _check_size(plan, policy.max_download_bytes)
    return plan


# --- GGUF -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Choice:
    label: str  # the file, or a split file's first part
    parts: tuple[HubFile, ...]
    expected_parts: int

    @property
    def size(self) -> int:
        return sum(p.size or 0 for p in self.parts)


def _is_gguf(info: RepoInfo) -> bool:
    return info.gguf is not None or any(n.lower().endswith(".gguf") for n in info.names)


def _gguf_choices(info: RepoInfo) -> list[_Choice]:
    groups: dict[tuple[str, int], list[HubFile]] = {}
    singles: list[_Choice] = []
    for f in info.files:
        base = f.name.rsplit("/", 1)[-1].lower()
        if not base.endswith(".gguf") or "mmproj" in base:
            continue
        split = _SPLIT.match(f.name)
        if split is None:
            singles.append(_Choice(f.name, (f,), 1))
        else:
            groups.setdefault((split["base"], int(split["count"])), []).append(f)
    for (_, count), parts in groups.items():
        ordered = tuple(sorted(parts, key=lambda p: p.name))
        singles.append(_Choice(ordered[0].name, ordered, count))
    return sorted(singles, key=lambda c: c.label)


def _quant_pattern(quant: str) -> re.Pattern[str]:
    # a token of the name: "x.Q4_K_M.gguf", "x-q4_k_m-00001-of-00002.gguf", not "x-Q4_K_M_L.gguf"
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9]|_[A-Za-z0-9])", re.IGNORECASE)


def _plan_gguf(info: RepoInfo, revision: str, file: str | None, preference: Sequence[str]) -> Plan:
    choices = _gguf_choices(info)
    if file is not None:
        choice, why = _named_gguf(info, file, choices), "named by 'file'"
    else:
        if not choices:
            raise unsupported_model(
                info.id,
                "it has no .gguf model file llama.cpp can open (only vision projectors or pieces cut with `split`)",
                "Choose a repo with a whole model GGUF.",
            )
        choice, why = _preferred_gguf(choices, preference)
    if len(choice.parts) != choice.expected_parts:
        raise unsupported_model(
            info.id,
            f"'{choice.label}' is split into {choice.expected_parts} parts but the repo has {len(choice.parts)} of them",
            "Choose another file with 'file'.",
        )
    task = _gguf_task(info)
    return Plan(
        repo_id=info.id,
        revision=revision,
        commit=info.sha,
        task=task,
        engine="llama.cpp",
        library="gguf",
        files=tuple(PlannedFile(p.name, p.size, p.etag) for p in choice.parts),
        entry=choice.parts[0].name,
        why=why,
    )


def _named_gguf(info: RepoInfo, file: str, choices: list[_Choice]) -> _Choice:
    for choice in choices:
        if file in (p.name for p in choice.parts):
            return choice
    if _PIECE.search(file) and file in info.names:
        raise unsupported_model(
            info.id,
            f"'{file}' is a piece of a GGUF cut with `split`, which must be joined by hand",
            "Choose a whole .gguf file (or a llama.cpp split: name-00001-of-0000N.gguf).",
        )
    if file in info.names:
        raise InvalidRequest(f"'{file}' is not a model GGUF file of '{info.id}'.", param="file")
    listed = ", ".join(c.label for c in choices[:12]) + (", …" if len(choices) > 12 else "")
    raise NotFound(
        f"'{info.id}' has no file '{file}'. Its GGUF files: {listed or 'none'}.", code="file_not_found", param="file"
    )


def _preferred_gguf(choices: list[_Choice], preference: Sequence[str]) -> tuple[_Choice, str]:
    for quant in preference:
        pattern = _quant_pattern(quant)
        matching = [c for c in choices if pattern.search(c.label.rsplit("/", 1)[-1])]
        if matching:
            return min(matching, key=lambda c: (c.size, c.label)), f"{quant}, the first of [hub] gguf_preference it has"
    smallest = min(choices, key=lambda c: (c.size, c.label))
    return smallest, "the smallest GGUF file (it has none of [hub] gguf_preference)"


def _gguf_task(info: RepoInfo) -> str:
    pipeline = info.pipeline_tag
    if pipeline in EMBEDDING_PIPELINES:
        return "feature-extraction"
    if pipeline not in (None, "text-generation"):
        raise unsupported_model(
            info.id, f"it is a '{pipeline}' model", f"llama.cpp serves: {_listed(engine_tasks('llama.cpp'))}."
        )
    chat = bool((info.gguf or {}).get("chat_template")) or "conversational" in info.tags
    return "chat" if chat else "text-generation"


# --- transformers and sentence-transformers ------------------------------------------------------------------


def _plan_transformers(info: RepoInfo, revision: str) -> Plan:
    library = info.library_name
    names = info.names
    sentence = (
        library == "sentence-transformers"
        or "sentence-transformers" in info.tags
        or "modules.json" in names
        or "sentence_bert_config.json" in names
    )
    if not sentence and library not in (None, "transformers"):
        raise unsupported_model(info.id, f"it is a '{library}' model", _SUPPORTED_LIBRARIES)
    if not sentence and library is None and "config.json" not in names:
        raise unsupported_model(
            info.id, "it has no config.json, so no engine can tell how to load it", _SUPPORTED_LIBRARIES
        )
    if info.config.get("auto_map") or "custom_code" in info.tags:
        raise unsupported_model(
            info.id,
            "it needs its own Python code (trust_remote_code), and unimodel never runs code from a repo",
            "Choose a model whose architecture transformers ships, or a GGUF of it.",
        )
    task = "feature-extraction" if sentence else _transformers_task(info)
    files = _transformers_files(info, sentence)
    return Plan(
        repo_id=info.id,
        revision=revision,
        commit=info.sha,
        task=task,
        engine="transformers",
        library="sentence-transformers" if sentence else "transformers",
        files=files,
        entry=None,
        why=f"{'sentence-transformers' if sentence else 'transformers'} weights ({_weight_format(files)})",
    )


def _transformers_task(info: RepoInfo) -> str:
    supported = engine_tasks("transformers")
    pipeline = info.pipeline_tag or _task_from_architectures(info)
    if pipeline is None:
        archs = ", ".join(info.config.get("architectures") or []) or "none"
        raise unsupported_model(
            info.id,
            f"the Hub gives it no task and its architectures ({archs}) do not say one",
            f"The transformers engine serves: {_listed(supported)}.",
        )
    if pipeline == "text-generation" and _has_chat_template(info):
        return "chat"
    if pipeline == "sentence-similarity":
        return "feature-extraction"
    if pipeline not in supported:
        raise unsupported_model(
            info.id,
            f"its task '{pipeline}' is not one the transformers engine serves",
            f"It serves: {_listed(supported)}.",
        )
    return pipeline


def _task_from_architectures(info: RepoInfo) -> str | None:
    for arch in info.config.get("architectures") or ():
        for suffix, task in _ARCH_TASKS:
            if arch.endswith(suffix):
                return task
        if arch.endswith("ForConditionalGeneration") and info.config.get("model_type") in _SEQ2SEQ_TYPES:
            return "text2text-generation"
    return None


def _has_chat_template(info: RepoInfo) -> bool:
    tokenizer = info.config.get("tokenizer_config") or {}
    return (
        bool(tokenizer.get("chat_template"))
        or "conversational" in info.tags
        or bool({"chat_template.jinja", "chat_template.json"} & info.names)
    )


def _transformers_files(info: RepoInfo, sentence: bool) -> tuple[PlannedFile, ...]:
    folders: dict[str, list[HubFile]] = {}
    for f in info.files:
        folder, _, _ = f.name.rpartition("/")
        if folder == "" or (sentence and "/" not in folder and _ST_MODULE.match(folder)):
            folders.setdefault(folder, []).append(f)
    chosen: list[HubFile] = []
    root_weights = False
    for folder, files in folders.items():
        weights = _weights(files, folder)
        root_weights |= folder == "" and bool(weights)
        chosen += [f for f in files if f in weights or _wanted(f.name.rpartition("/")[2])]
    if not root_weights and not (sentence and any(_is_weight(f.name) for f in chosen)):
        present = sorted(n for n in info.names if n.endswith(_SKIP_SUFFIXES) and not n.endswith((".md", ".py")))
        listed = ", ".join(present[:8]) or "no weight files"
        raise unsupported_model(
            info.id,
            f"it has no PyTorch weights (model.safetensors or pytorch_model.bin) for the transformers engine; it has {listed}",
            "Look for a safetensors or GGUF version of it.",
        )
    if "config.json" not in info.names and not sentence:
        raise unsupported_model(info.id, "it has no config.json", _SUPPORTED_LIBRARIES)
    return tuple(PlannedFile(f.name, f.size, f.etag) for f in sorted(chosen, key=lambda f: f.name))


def _weights(
    files: Iterable[HubFile], folder: str, table: dict[str, tuple[str, str, re.Pattern[str]]] = _WEIGHTS
) -> set[HubFile]:
    """The weight files of one folder in one format: safetensors when it has them, else .bin."""
    prefix = f"{folder}/" if folder else ""
    by_name = {f.name[len(prefix) :]: f for f in files}
    for single, index, shard in table.values():
        if index in by_name:
            return {by_name[index], *(f for n, f in by_name.items() if shard.fullmatch(n))}
        if single in by_name:
            return {by_name[single]}
    return set()


def _is_weight(name: str) -> bool:
    base = name.rpartition("/")[2]
    return any(base in (single, index) or shard.fullmatch(base) for single, index, shard in _WEIGHTS.values())


def _wanted(base: str) -> bool:
    lower = base.lower()
    if lower in _SKIP_NAMES or lower.startswith("license") or lower.endswith(_SKIP_SUFFIXES):
        return False
    return not lower.endswith(".index.json")  # the chosen format's index comes with its weights


def _weight_format(files: Iterable[PlannedFile]) -> str:
    names = [f.name for f in files]
    fmt = "safetensors" if any(n.endswith(".safetensors") for n in names) else ".bin"
    shards = sum(1 for n in names if re.search(r"-\d{5}-of-\d{5}\.", n))
    return f"{fmt}, {shards} shards" if shards else fmt


# --- diffusers ----------------------------------------------------------------------------------------------


def _is_diffusers(info: RepoInfo) -> bool:
    return "model_index.json" in info.names or info.library_name == "diffusers"


def _plan_diffusers(info: RepoInfo, revision: str) -> Plan:
    if "model_index.json" not in info.names:
        raise unsupported_model(
            info.id,
            "it is a 'diffusers' model without a model_index.json (a single-file checkpoint)",
            _SUPPORTED_LIBRARIES,
        )
    if "custom_code" in info.tags or any(n.endswith(".py") for n in info.names):
        raise unsupported_model(
            info.id,
            "its diffusers pipeline comes with its own Python code, and unimodel never runs code from a repo",
            "Choose a pipeline whose classes diffusers ships.",
        )
    supported = engine_tasks("diffusers")
    task = info.pipeline_tag
    if task not in supported:
        said = f"its task '{task}' is" if task else "the Hub gives it no task, which"
        raise unsupported_model(
            info.id, f"{said} not one the diffusers engine serves", f"It serves: {_listed(supported)}."
        )
    files = _diffusers_files(info)
    return Plan(
        repo_id=info.id,
        revision=revision,
        commit=info.sha,
        task=task,
        engine="diffusers",
        library="diffusers",
        files=files,
        entry=None,
        why=f"a diffusers pipeline ({_weight_format(files)})",
    )


def _diffusers_files(info: RepoInfo) -> tuple[PlannedFile, ...]:
    folders: dict[str, list[HubFile]] = {}
    for f in info.files:
        folder, _, _ = f.name.rpartition("/")
        if "/" not in folder:  # the root and the component folders, not deeper
            folders.setdefault(folder, []).append(f)
    chosen = [f for f in folders.get("", []) if f.name == "model_index.json"]
    missing = []
    for folder, files in folders.items():
        if not folder:
            continue
        weights = _weights(files, folder, _DIFFUSERS_WEIGHTS) or _weights(files, folder)
        configs = [f for f in files if _wanted(f.name.rpartition("/")[2])]
        if not weights and any(f.name.endswith("/config.json") for f in configs):
            missing.append(folder)
        chosen += [*weights, *configs]
    if missing or not any(_is_weight(f.name) or "diffusion_pytorch_model" in f.name for f in chosen):
        where = ", ".join(f"{m}/" for m in sorted(missing)) or "any component"
        raise unsupported_model(
            info.id,
            f"its diffusers pipeline has no PyTorch weights (safetensors or .bin, not a variant such as fp16) for {where}",
            "Look for a version of it with full-precision safetensors in each component folder.",
        )
    return tuple(PlannedFile(f.name, f.size, f.etag) for f in sorted(chosen, key=lambda f: f.name))


# --- size ---------------------------------------------------------------------------------------------------


def _check_size(plan: Plan, limit: int | None) -> None:
    if limit is None or plan.total_bytes <= limit:
        return
    hint = " Name a smaller quantisation with 'file', or raise" if plan.engine == "llama.cpp" else " Raise"
    size = format_bytes(plan.total_bytes)
    if size == format_bytes(limit):  # "needs 20 GB, at most 20 GB" would say nothing
        size = f"{plan.total_bytes / 1e9:.6g} GB"
    raise PermissionDenied(
        f"'{plan.repo_id}' needs {size} ({len(plan.files)} file{'s' if len(plan.files) != 1 else ''}) and this server pulls "
        f"at most {format_bytes(limit)} per model ([hub] max_download_gb).{hint} [hub] max_download_gb to pull it.",
        code="model_too_large",
        param="model",
    )


def format_bytes(n: float) -> str:
    """Decimal units, as the Hub shows sizes: 512 B, 98.4 MB, 134 MB, 4.92 GB."""
    unit = "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            break
        n /= 1000
    if unit == "B" or abs(n) >= 100:
        return f"{n:.0f} {unit}"
    return f"{n:.3g} {unit}"


def _listed(tasks: Iterable[str]) -> str:
    return ", ".join(sorted(tasks))


_SUPPORTED_LIBRARIES = (
    "unimodel runs GGUF repos on llama.cpp, transformers / sentence-transformers repos on the transformers engine "
    "and diffusers pipelines (model_index.json) on the diffusers engine."
)
