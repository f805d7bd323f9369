"""The image tasks of the transformers engine, as task-table entries (task_table.py).

Outputs (PROTOCOL.md's task table, and where it says nothing, these):
- image-classification, zero-shot-image-classification: `[{label, score}]`, best first.
- object-detection, zero-shot-object-detection: `[{score, label, box: {xmin, ymin, xmax, ymax}}]` (pixels).
- image-segmentation: `[{score, label, mask}]`, `mask` a base64 PNG (8-bit grey, 255 inside the segment) the
  size of the input; `score` is null for semantic segmentation.
- depth-estimation: `{depth, width, height, min, max}`: `depth` a base64 PNG (8-bit grey, as the pipeline
  renders the map: scaled between its own min and max), `min`/`max` the model's raw depth range.
- image-feature-extraction: `number[]`, the model's last hidden state mean-pooled over its tokens.
- image-to-text: string (a caption); visual-question-answering: `[{answer}]` (generated, so no score).
- document-question-answering: `[{answer}]` from an OCR-free model (Donut), `[{score, answer, start, end}]`
  from a LayoutLM-style one, which needs the page's words: `word_boxes` `[[word, [x0, y0, x1, y1]], …]` (0-1000).
"""

from __future__ import annotations

import base64
import io
from typing import Any

from ..errors import invalid_request
from ..media_inputs import decode_image, media_bytes
from ..params import Spec, pick
from .task_table import Task, labels, plain, text

_THRESHOLD = Spec("float", ge=0, le=1)
_CAPTION_SPECS = pick("max_new_tokens min_new_tokens temperature top_k top_p do_sample num_beams repetition_penalty")
_DEFAULT_CAPTION_TOKENS = 32


def image_of(fields: dict[str, Any]) -> Any:
    data, field = media_bytes(fields, "image")
    return decode_image(data, field)


def _png(image: Any) -> str:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def _classify(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    top_k = options.pop("top_k", len(pipe.model.config.id2label))
    return plain(pipe(image_of(fields), top_k=top_k, **options))


def _zero_shot(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    found = pipe(image_of(fields), candidate_labels=labels(fields.get("candidate_labels")), **options)
    return [{"label": item["label"], "score": float(item["score"])} for item in found]


def _detect(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    return plain(pipe(image_of(fields), **options))


def _detect_zero_shot(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    return plain(pipe(image_of(fields), candidate_labels=labels(fields.get("candidate_labels")), **options))


def _segment(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    found = pipe(image_of(fields), **options)
    return [
        {"score": plain(item.get("score")), "label": item["label"], "mask": _png(item["mask"].convert("L"))}
        for item in found
    ]


def _depth(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    found = pipe(image_of(fields))
    raw = found["predicted_depth"]
    picture = found["depth"]
    return {
        "depth": _png(picture.convert("L")),
        "width": picture.width,
        "height": picture.height,
        "min": float(raw.min()),
        "max": float(raw.max()),
    }


def _features(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    hidden = pipe(image_of(fields), return_tensors=True)  # (1, tokens, width)
    return [float(x) for x in hidden[0].mean(dim=0).tolist()]


# --- generated text about an image: no pipeline in transformers 5 (image-to-text, VQA went into image-text-to-text)


def _load_vision_to_text(auto_names: tuple[str, ...]) -> Any:
    def load(source: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        import transformers as tf

        remote = bool(kwargs.get("trust_remote_code", False))
        processor = tf.AutoProcessor.from_pretrained(source, trust_remote_code=remote)  # type: ignore[no-untyped-call]
        if getattr(processor, "tokenizer", None) is None:  # no processor class (a VisionEncoderDecoder captioner):
            processor = _ImageAndTokenizer(  # AutoProcessor gave the tokenizer or the image processor alone
                tf.AutoImageProcessor.from_pretrained(source, trust_remote_code=remote),
                tf.AutoTokenizer.from_pretrained(source, trust_remote_code=remote),
            )
        problems: list[str] = []
        for name in auto_names:
            try:
                return processor, getattr(tf, name).from_pretrained(source, **kwargs).eval()
            except ValueError as exc:  # this auto class does not know the model's type: try the next
                problems.append(f"{name}: {exc}")
        raise ValueError("; ".join(problems))

    return load


class _ImageAndTokenizer:
    """An image processor and a tokenizer called as one processor (models saved without a processor class)."""

    def __init__(self, images: Any, tokenizer: Any) -> None:
        self.images, self.tokenizer = images, tokenizer

    def __call__(self, images: Any, text: str | None, return_tensors: str) -> dict[str, Any]:
        inputs = dict(self.images(images=images, return_tensors=return_tensors))
        if text is not None:
            inputs.update(self.tokenizer(text, return_tensors=return_tensors))
        return inputs

    def decode(self, ids: Any, skip_special_tokens: bool) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens))


def _generate_about(handle: tuple[Any, Any], image: Any, prompt: str | None, options: dict[str, Any]) -> str:
    import torch

    processor, model = handle
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    kwargs = dict(options)
    if "max_new_tokens" not in kwargs:
        kwargs["max_new_tokens"] = _DEFAULT_CAPTION_TOKENS
    if "seed" in kwargs:
        torch.manual_seed(kwargs.pop("seed"))
    with torch.inference_mode():
        out = model.generate(**inputs, **kwargs)[0]
    prompt_ids = inputs.get("input_ids")
    if (
        prompt_ids is not None
        and len(out) > prompt_ids.shape[1]
        and out[: prompt_ids.shape[1]].tolist() == prompt_ids[0].tolist()
    ):
        out = out[prompt_ids.shape[1] :]  # a decoder-only model repeats the prompt before its answer
    return str(processor.decode(out, skip_special_tokens=True)).strip()


def _caption(handle: tuple[Any, Any], fields: dict[str, Any], options: dict[str, Any]) -> Any:
    return _generate_about(handle, image_of(fields), None, options)


def _answer(handle: tuple[Any, Any], fields: dict[str, Any], options: dict[str, Any]) -> Any:
    question = text(fields, "question")
    return [{"answer": _generate_about(handle, image_of(fields), question, options)}]


def _document_answer(pipe: Any, fields: dict[str, Any], options: dict[str, Any]) -> Any:
    question = text(fields, "question")
    boxes = fields.get("word_boxes")
    if boxes is not None and not (
        isinstance(boxes, list)
        and all(isinstance(b, list) and len(b) == 2 and isinstance(b[0], str) and _is_box(b[1]) for b in boxes)
    ):
        raise invalid_request(
            "'word_boxes' must be [[word, [x0, y0, x1, y1]], …] with integer coordinates.", "word_boxes"
        )
    try:
        found = pipe(image=image_of(fields), question=question, word_boxes=boxes, **options)
    except (ImportError, ValueError) as exc:
        if "tesseract" not in str(exc).lower():
            raise
        raise invalid_request(
            "This document model reads the page's words, and this server has no OCR: send them as 'word_boxes' "
            "[[word, [x0, y0, x1, y1]], …] (coordinates 0-1000), or use an OCR-free model such as Donut.",
            "word_boxes",
        ) from None
    return plain(found if isinstance(found, list) else [found])


def _is_box(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) for v in value)


VISION_TASKS: dict[str, Task] = {
    "image-classification": Task(
        {"top_k": Spec("int", ge=1), "function_to_apply": Spec("str", choices=("sigmoid", "softmax", "none"))},
        _classify,
        pipeline="image-classification",
    ),
    "zero-shot-image-classification": Task(
        {"hypothesis_template": Spec("str")}, _zero_shot, pipeline="zero-shot-image-classification"
    ),
    "object-detection": Task({"threshold": _THRESHOLD}, _detect, pipeline="object-detection"),
    "zero-shot-object-detection": Task(
        {"threshold": _THRESHOLD, "top_k": Spec("int", ge=1)}, _detect_zero_shot, pipeline="zero-shot-object-detection"
    ),
    "image-segmentation": Task(
        {
            "subtask": Spec("str", choices=("semantic", "instance", "panoptic")),
            "threshold": _THRESHOLD,
            "mask_threshold": _THRESHOLD,
            "overlap_mask_area_threshold": _THRESHOLD,
        },
        _segment,
        pipeline="image-segmentation",
    ),
    "depth-estimation": Task({}, _depth, pipeline="depth-estimation"),
    "image-feature-extraction": Task({}, _features, pipeline="image-feature-extraction"),
    "image-to-text": Task(
        {**_CAPTION_SPECS, "seed": Spec("int")},
        _caption,
        load=_load_vision_to_text(("AutoModelForImageTextToText",)),
    ),
    "document-question-answering": Task(
        {
            "top_k": Spec("int", ge=1),
            "max_answer_len": Spec("int", ge=1),
            "max_seq_len": Spec("int", ge=16),
            "doc_stride": Spec("int", ge=0),
            "handle_impossible_answer": Spec("bool"),
        },
        _document_answer,
        pipeline="document-question-answering",
    ),
    "visual-question-answering": Task(
        {**_CAPTION_SPECS, "seed": Spec("int")},
        _answer,
        load=_load_vision_to_text(("AutoModelForVisualQuestionAnswering", "AutoModelForImageTextToText")),
    ),
}
