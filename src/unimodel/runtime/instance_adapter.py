"""How the gateway speaks to a language-model instance: OpenAI chat completions, as to any compatible vendor.

The instance is unimodel's own worker (or an external OpenAI-compatible server such as `vllm serve`), so the
table forwards the Hugging Face `generate` names as well; the worker refuses, by name, what its engine can't do.
"""

from __future__ import annotations

from typing import ClassVar

from ..providers.base import ProviderInfo
from ..providers.openai import OPENAI_PARAMS, OpenAIAdapter
from ..providers.params import OnlyDefault, Param, ParamTable, passthrough

HF_GENERATE_PARAMS = (
    "repetition_penalty",
    "do_sample",
    "num_beams",
    "min_new_tokens",
    "max_length",
    "typical_p",
    "min_p",
    "no_repeat_ngram_size",
)

INSTANCE_PARAMS: ParamTable = {
    **{k: v for k, v in OPENAI_PARAMS.items() if k not in ("top_k", "n", "max_tokens")},
    "max_tokens": Param("max_tokens", minimum=1),
    "top_k": Param("top_k", minimum=0),
    "n": OnlyDefault(1, "open models return one completion per request"),
    **passthrough(*HF_GENERATE_PARAMS),
}


class InstanceAdapter(OpenAIAdapter):
    info = ProviderInfo(name="open-model", default_base_url="http://127.0.0.1")
    params: ClassVar[ParamTable] = INSTANCE_PARAMS
