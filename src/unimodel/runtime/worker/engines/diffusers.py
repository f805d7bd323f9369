"""The diffusers engine (PyTorch on the CPU): a diffusers pipeline folder (`model_index.json`) or a cached Hugging
Face id, loaded with `DiffusionPipeline.from_pretrained`, which picks the pipeline class the folder names.

- text-to-image: `text` (the prompt) in, a PNG out (MediaOutput: the worker answers its bytes, the gateway keeps
  them in its media store). `params`: num_inference_steps, guidance_scale, width, height, seed, negative_prompt.

`engine_args`: `dtype` (float32, bfloat16, float16), `threads` (torch intra-op threads), `max_pixels` (the largest
width x height a request may ask, 1024x1024 unless set: a bigger image is a 400 before any work), `max_steps`
(the most num_inference_steps, 100 unless set). Width and height must be multiples of the pipeline's VAE scale
factor (8 for Stable Diffusion); the pipeline's own default size is used when neither is given.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Mapping
from typing import Any

from ..errors import LoadError, invalid_parameter, invalid_request
from ..params import Spec, validate
from .base import Engine, MediaOutput

_ENGINE_ARGS = {"dtype", "threads", "max_pixels", "max_steps"}
DEFAULT_MAX_PIXELS = 1024 * 1024
DEFAULT_MAX_STEPS = 100


class DiffusersEngine(Engine):
    name = "diffusers"
    thread_safe = False
    tasks = frozenset({"text-to-image"})

    def load(self) -> None:
        path = self.spec.local_path()
        source = str(path) if path is not None else self.spec.model_id
        args = self.spec.engine_args
        unknown = sorted(set(args) - _ENGINE_ARGS)
        if unknown:
            raise LoadError(
                f"unknown diffusers engine_args: {', '.join(unknown)} (known: {', '.join(sorted(_ENGINE_ARGS))})"
            )
        self._max_pixels = _positive(args, "max_pixels", DEFAULT_MAX_PIXELS)
        self._max_steps = _positive(args, "max_steps", DEFAULT_MAX_STEPS)
        try:
            import diffusers
            import torch
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise LoadError(f"diffusers or torch is not installed ({exc}); run `make install`") from exc
        diffusers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()
        if "threads" in args:
            torch.set_num_threads(int(args["threads"]))
        kwargs: dict[str, Any] = {}
        if "dtype" in args:
            kwargs["torch_dtype"] = getattr(torch, str(args["dtype"]))
        try:
            loader: Any = diffusers.DiffusionPipeline  # picks the pipeline class model_index.json names
            pipe = loader.from_pretrained(source, **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError, ImportError, AttributeError, TypeError) as exc:
            raise LoadError(f"diffusers cannot load {source}: {exc}") from exc
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe.to("cpu")
        self._multiple = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        specs: dict[str, Spec] = {
            "num_inference_steps": Spec("int", ge=1, le=self._max_steps, why="this model's max_steps"),
            "guidance_scale": Spec("float", ge=0, le=50),
            "width": Spec("int", ge=self._multiple),
            "height": Spec("int", ge=self._multiple),
            "seed": Spec("int", ge=0, le=2**63 - 1),
            "negative_prompt": Spec("str"),
        }
        # a pipeline that takes fewer (no negative prompt, a fixed size) refuses the rest by name, never a 500
        parameters = inspect.signature(pipe.__call__).parameters.values()
        self._takes = {p.name for p in parameters}
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            self._takes |= set(specs)
        kind = type(pipe).__name__
        if "prompt" not in self._takes:
            raise LoadError(f"{source} is a {kind}, which takes no prompt: not a text-to-image pipeline")
        self._reasons = {name: f"a {kind} takes no {name}" for name in specs if not self._accepts(name)}
        self._specs = {name: spec for name, spec in specs.items() if self._accepts(name)}

    def _accepts(self, name: str) -> bool:
        return name == "seed" or name in self._takes  # the seed becomes the pipeline's generator

    def task_specs(self) -> Mapping[str, Spec]:
        return self._specs

    def run(self, task_input: dict[str, Any], params: Any) -> Any:
        prompt = task_input.get("text")
        if not isinstance(prompt, str) or not prompt.strip():
            raise invalid_request("'text' must be a non-empty prompt.", "text")
        options = validate(params, self._specs, self.name, self._reasons)
        if "width" in self._takes and "height" in self._takes:
            options["width"], options["height"] = self._size(options.pop("width", None), options.pop("height", None))
        import torch

        seed = options.pop("seed", None)
        if seed is not None and "generator" in self._takes:
            options["generator"] = torch.Generator("cpu").manual_seed(seed)
        elif seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            found = self._pipe(prompt=prompt, **options)
        out = io.BytesIO()
        found.images[0].save(out, format="PNG")
        return MediaOutput(out.getvalue(), "image/png")

    def _size(self, width: int | None, height: int | None) -> tuple[int, int]:
        """The size asked, checked: multiples of the VAE's scale factor, and no more pixels than max_pixels."""
        default = _default_side(self._pipe, self._multiple)
        width = default if width is None else width
        height = default if height is None else height
        for name, value in (("width", width), ("height", height)):
            if value % self._multiple:
                raise invalid_parameter(name, f"must be a multiple of {self._multiple} for this model, got {value}.")
        if width * height > self._max_pixels:
            raise invalid_request(
                f"{width}x{height} is {width * height} pixels; this model makes at most {self._max_pixels} "
                "(its engine_args max_pixels). Ask for a smaller width or height.",
                "width",
            )
        return width, height


def _positive(args: Mapping[str, Any], name: str, default: int) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LoadError(f"diffusers engine_args {name} must be a positive integer, got {value!r}")
    return value


def _default_side(pipe: Any, multiple: int) -> int:
    """The pipeline's own default side: its UNet's (or transformer's) sample size times the VAE scale factor."""
    for part in ("unet", "transformer"):
        config = getattr(getattr(pipe, part, None), "config", None)
        size = getattr(config, "sample_size", None)
        if isinstance(size, int) and size > 0:
            return size * multiple
    return 512
