"""The environment an instance starts with: what an engine needs from the gateway's, never the gateway's secrets.

An instance runs model code (and, with `engine = "command"`, any server the operator names); it needs no key
the gateway holds. It gets, from the gateway's environment:

- the basics: PATH, HOME, USER, LOGNAME, LANG, LANGUAGE, TZ, TMPDIR/TMP/TEMP, PYTHONPATH, VIRTUAL_ENV,
  LD_LIBRARY_PATH, XDG_CACHE_HOME, and every LC_* (all only when set);
- engine knobs, by prefix: HF_, HUGGINGFACE_, HUGGING_FACE_, TRANSFORMERS_, SENTENCE_TRANSFORMERS_,
  TOKENIZERS_, TORCH_, TORCHINDUCTOR_, PYTORCH_, OMP_, KMP_, MKL_, OPENBLAS_, GGML_, LLAMA_, VLLM_, CUDA_,
  NVIDIA_, NCCL_, ROCR_, ROCM_, HIP_, HSA_ — except names that look like credentials (ending in _TOKEN, _KEY,
  _SECRET, _PASSWORD or _CREDENTIALS, e.g. HF_TOKEN: instances run offline and need none);
- the names in `[runtime] pass_env`, as they are (a credential an engine really needs goes there);

then the model's `env` table, then the worker protocol's own variables (set by the backend). Nothing named
UNIMODEL_* passes, from the environment, pass_env or a model's env: that is the gateway's configuration, secret
key and provider keys included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

__all__ = ["instance_environment"]

log = logging.getLogger("unimodel.runtime")

BASICS = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TMP",
        "TEMP",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "XDG_CACHE_HOME",
    }
)
PREFIXES = (
    "LC_",
    "HF_",
    "HUGGINGFACE_",
    "HUGGING_FACE_",
    "TRANSFORMERS_",
    "SENTENCE_TRANSFORMERS_",
    "TOKENIZERS_",
    "TORCH_",
    "TORCHINDUCTOR_",
    "PYTORCH_",
    "OMP_",
    "KMP_",
    "MKL_",
    "OPENBLAS_",
    "GGML_",
    "LLAMA_",
    "VLLM_",
    "CUDA_",
    "NVIDIA_",
    "NCCL_",
    "ROCR_",
    "ROCM_",
    "HIP_",
    "HSA_",
)
CREDENTIAL_SUFFIXES = ("_TOKEN", "_KEY", "_SECRET", "_PASSWORD", "_CREDENTIALS")
GATEWAY_PREFIX = "UNIMODEL_"


def _inherited(name: str) -> bool:
    if name in BASICS:
        return True
    upper = name.upper()
    return upper.startswith(PREFIXES) and not upper.endswith(CREDENTIAL_SUFFIXES)


def instance_environment(
    environ: Mapping[str, str], pass_env: Iterable[str] = (), model_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for an instance, drawn from `environ` (the gateway's) as the module docstring says."""
    env = {name: value for name, value in environ.items() if _inherited(name) and not name.startswith(GATEWAY_PREFIX)}
    for name in pass_env:
        if name.startswith(GATEWAY_PREFIX):
            log.warning("[runtime] pass_env names %s: the gateway's own settings never reach instances", name)
        elif name in environ:
            env[name] = environ[name]
    for name, value in (model_env or {}).items():
        if name.startswith(GATEWAY_PREFIX):
            log.warning("a model's env sets %s: names starting UNIMODEL_ are the gateway's; left out", name)
        else:
            env[name] = value
    return env


# What the gateway's environment says about its own machine rather than about where an instance runs elsewhere (a
# container keeps its image's, a Ray node its own: a host PATH or VIRTUAL_ENV would break them).
HOST_ONLY = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "TMP",
        "TEMP",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "XDG_CACHE_HOME",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "TRANSFORMERS_CACHE",
        "SENTENCE_TRANSFORMERS_HOME",
    }
)


def remote_instance_environment(
    environ: Mapping[str, str], pass_env: Iterable[str] = (), model_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """`instance_environment` for an instance that runs somewhere other than this machine (a container, a Ray
    node): less what describes this machine (HOST_ONLY), unless pass_env or the model's env names it."""
    pass_env = list(pass_env)
    explicit = set(pass_env) | set(model_env or {})
    allowed = instance_environment(environ, pass_env, model_env)
    return {name: value for name, value in allowed.items() if name not in HOST_ONLY or name in explicit}
