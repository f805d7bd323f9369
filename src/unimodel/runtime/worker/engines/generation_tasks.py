"""The media-out tasks of the transformers engine, as task-table entries (task_table.py).

- text-to-speech, text-to-audio: `text` in, a WAV out (MediaOutput: 16-bit PCM, mono, at the model's sampling
  rate; the worker answers its bytes and the gateway keeps them in its media store). `params`: `seed`; a model that
  generates (MusicGen, Bark) also takes max_new_tokens, do_sample, temperature, top_k, top_p; a model that does not
  (VITS) refuses them, naming the parameter.
"""

from __future__ import annotations

import io
import wave
from typing import Any

from ..errors import invalid_parameter
from ..params import pick
from .base import MediaOutput
from .task_table import Task, text

_SPECS = pick("seed max_new_tokens do_sample temperature top_k top_p")
MAX_AUDIO_SECONDS = 600  # a longer answer is a model gone wrong, not speech anyone asked for


def _speak(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    import torch

    prompt = text(fields, "text")
    seed = options.pop("seed", None)
    if options and not pipe.model.can_generate():
        name = sorted(options)[0]
        raise invalid_parameter(name, "applies to models that generate audio token by token; this one does not.")
    if seed is not None:
        torch.manual_seed(seed)
    kwargs = {"generate_kwargs": options} if options else {}
    found = pipe(prompt, **kwargs)
    return MediaOutput(wav(found["audio"], int(found["sampling_rate"])), "audio/wav")


def wav(samples: Any, rate: int) -> bytes:
    """Float samples in [-1, 1] (any shape holding one channel) as a 16-bit PCM mono WAV file."""
    import numpy as np

    mono = np.asarray(samples, dtype=np.float32).reshape(-1)[: rate * MAX_AUDIO_SECONDS]
    pcm = (np.clip(np.nan_to_num(mono), -1.0, 1.0) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(pcm.tobytes())
    return out.getvalue()


GENERATION_TASKS: dict[str, Task] = {
    "text-to-speech": Task(_SPECS, _speak, pipeline="text-to-speech"),
    "text-to-audio": Task(_SPECS, _speak, pipeline="text-to-audio"),
}
