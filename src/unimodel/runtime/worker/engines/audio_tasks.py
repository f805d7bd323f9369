"""The audio-in tasks of the transformers engine, as task-table entries (task_table.py).

The audio is decoded and resampled to the rate the model's feature extractor wants (media_inputs.py), then
handed to the pipeline as samples, so the pipeline never decodes (or fetches) anything itself.
- automatic-speech-recognition: string (the transcript).
- audio-classification: `[{label, score}]`, best first.
"""

from __future__ import annotations

from typing import Any

from ..media_inputs import decode_audio, media_bytes
from ..params import Spec
from .task_table import Task, plain


def _samples(pipe: Any, fields: dict[str, Any]) -> dict[str, Any]:
    rate = int(pipe.feature_extractor.sampling_rate)
    data, field = media_bytes(fields, "audio")
    return {"raw": decode_audio(data, field, rate), "sampling_rate": rate}


def _transcribe(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    found = pipe(_samples(pipe, fields), **options)
    return str(found["text"]).strip()


def _classify(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    top_k = options.pop("top_k", len(pipe.model.config.id2label))
    return plain(pipe(_samples(pipe, fields), top_k=top_k, **options))


AUDIO_TASKS: dict[str, Task] = {
    "automatic-speech-recognition": Task(
        {"chunk_length_s": Spec("float", gt=0), "stride_length_s": Spec("float", ge=0)},
        _transcribe,
        pipeline="automatic-speech-recognition",
    ),
    "audio-classification": Task(
        {"top_k": Spec("int", ge=1), "function_to_apply": Spec("str", choices=("sigmoid", "softmax", "none"))},
        _classify,
        pipeline="audio-classification",
    ),
}
