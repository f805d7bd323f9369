"""Vision and audio tasks on the transformers engine: tiny random-weight models (tests/worker_media_models.py)
served by real worker processes, fed real images (Pillow) and a real sine wave (libsndfile) — and the bad
inputs of issue 14, each a 400 after which the worker still answers."""

from __future__ import annotations

import base64
import importlib.util
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .worker_helpers import WorkerProcess
from .worker_media_models import IMAGE, LABELS, SEGMENTS, b64, bomb_png, data_uri, media_models, png, sine

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("transformers", "PIL", "soundfile")),
    reason="the open-model engines are not installed (make test installs them)",
)
__all__ = ["media_models"]  # a session fixture shared with the gateway tests

TASKS = [
    "image-classification",
    "zero-shot-image-classification",
    "object-detection",
    "zero-shot-object-detection",
    "image-segmentation",
    "depth-estimation",
    "image-feature-extraction",
    "image-to-text",
    "image-to-text:vit-gpt2",
    "visual-question-answering",
    "document-question-answering",
    "automatic-speech-recognition",
    "audio-classification",
    "image-text-to-text",
]


@pytest.fixture(scope="module")
def workers(media_models: dict[str, Path]) -> Iterator[dict[str, WorkerProcess]]:
    started = {  # "task:variant" is the task with another model
        name: WorkerProcess(
            "--engine",
            "transformers",
            "--task",
            name.partition(":")[0],
            "--model-id",
            f"tiny/{name}",
            "--path",
            str(media_models[name]),
        )
        for name in TASKS
    }
    try:
        for worker in started.values():  # all at once: their start-up is mostly importing torch
            worker.start()
        for worker in started.values():
            worker.wait_ready(240)
        yield started
    finally:
        for worker in started.values():
            worker.stop()


def run(worker: WorkerProcess, body: dict[str, Any], status: int = 200) -> Any:
    response = worker.post("/v1/run", body)
    assert response.status_code == status, response.text
    return response.json()["output"] if status == 200 else response.json()["error"]


def _decoded_png(text: str) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(text)))


# --- images ----------------------------------------------------------------------------------------------


def test_image_classification_gives_every_label_best_first_from_base64_and_data_uri(
    workers: dict[str, WorkerProcess],
) -> None:
    worker = workers["image-classification"]
    output = run(worker, {"base64": b64(png())})
    assert sorted(item["label"] for item in output) == sorted(LABELS.values())
    assert math.isclose(sum(item["score"] for item in output), 1.0, rel_tol=1e-4)
    assert output[0]["score"] >= output[1]["score"]
    assert run(worker, {"input": data_uri(png(fmt="JPEG"), "image/jpeg"), "params": {"top_k": 1}})[0]["label"] in (
        LABELS.values()
    )
    assert run(worker, {"input": {"base64": b64(png(fmt="WEBP"))}})[0]["label"] in LABELS.values()


def test_zero_shot_image_classification_scores_the_candidate_labels(workers: dict[str, WorkerProcess]) -> None:
    output = run(
        workers["zero-shot-image-classification"],
        {"input": {"base64": b64(png()), "candidate_labels": ["red", "blue", "sky"]}},
    )
    assert sorted(item["label"] for item in output) == ["blue", "red", "sky"]
    assert all(set(item) == {"label", "score"} for item in output)
    assert math.isclose(sum(item["score"] for item in output), 1.0, rel_tol=1e-4)
    missing = run(workers["zero-shot-image-classification"], {"base64": b64(png())}, 400)
    assert missing["param"] == "candidate_labels"


def test_object_detection_gives_boxes_inside_the_image(workers: dict[str, WorkerProcess]) -> None:
    output = run(workers["object-detection"], {"base64": b64(png(48, 40)), "params": {"threshold": 0.0}})
    assert output, "threshold 0 keeps every detection"
    for item in output:
        assert set(item) == {"score", "label", "box"} and item["label"] in LABELS.values()
        assert set(item["box"]) == {"xmin", "ymin", "xmax", "ymax"}
        assert all(isinstance(v, int) for v in item["box"].values())
    bad = run(workers["object-detection"], {"base64": b64(png()), "params": {"threshold": 2}}, 400)
    assert bad["param"] == "threshold"


def test_zero_shot_object_detection_labels_boxes_with_the_candidates(workers: dict[str, WorkerProcess]) -> None:
    body = {"input": {"base64": b64(png()), "candidate_labels": ["square", "stripe"]}, "params": {"threshold": 0.0}}
    output = run(workers["zero-shot-object-detection"], body)
    assert output and {item["label"] for item in output} <= {"square", "stripe"}
    assert all(set(item["box"]) == {"xmin", "ymin", "xmax", "ymax"} for item in output)


def test_image_segmentation_gives_a_png_mask_per_label_the_size_of_the_input(workers: dict[str, WorkerProcess]) -> None:
    output = run(workers["image-segmentation"], {"base64": b64(png(48, 40))})
    assert output and {item["label"] for item in output} <= set(SEGMENTS.values())
    for item in output:
        mask = _decoded_png(item["mask"])
        assert mask.format == "PNG" and mask.mode == "L" and mask.size == (48, 40)


def test_depth_estimation_gives_a_png_depth_map_and_its_range(workers: dict[str, WorkerProcess]) -> None:
    output = run(workers["depth-estimation"], {"base64": b64(png(64, 32))})
    assert set(output) == {"depth", "width", "height", "min", "max"}
    depth = _decoded_png(output["depth"])
    assert depth.mode == "L" and depth.size == (output["width"], output["height"]) == (64, 32)
    assert output["min"] <= output["max"]


def test_image_feature_extraction_gives_one_vector(workers: dict[str, WorkerProcess]) -> None:
    output = run(workers["image-feature-extraction"], {"base64": b64(png())})
    assert isinstance(output, list) and len(output) == 32 and all(isinstance(x, float) for x in output)


def test_image_to_text_gives_a_caption_and_honours_max_new_tokens(workers: dict[str, WorkerProcess]) -> None:
    caption = run(workers["image-to-text"], {"base64": b64(png()), "params": {"max_new_tokens": 3}})
    assert isinstance(caption, str)
    assert len(caption.split()) <= 3
    bad = run(workers["image-to-text"], {"base64": b64(png()), "params": {"top_k": "x"}}, 400)
    assert bad["param"] == "top_k"


def test_image_to_text_serves_a_vision_encoder_decoder_without_a_processor_class(
    workers: dict[str, WorkerProcess],
) -> None:
    caption = run(
        workers["image-to-text:vit-gpt2"], {"input": data_uri(png(), "image/png"), "params": {"max_new_tokens": 4}}
    )
    assert isinstance(caption, str) and len(caption.split()) <= 4


def test_visual_question_answering_answers_the_question(workers: dict[str, WorkerProcess]) -> None:
    output = run(workers["visual-question-answering"], {"image": b64(png()), "question": "what color is the sky"})
    assert isinstance(output, list) and set(output[0]) == {"answer"} and isinstance(output[0]["answer"], str)
    missing = run(workers["visual-question-answering"], {"image": b64(png())}, 400)
    assert missing["param"] == "question"


def test_document_question_answering_answers_from_the_page_alone(workers: dict[str, WorkerProcess]) -> None:
    worker = workers["document-question-answering"]
    output = run(worker, {"input": {"base64": b64(png(64, 64)), "question": "what is the total"}})
    assert isinstance(output, list) and set(output[0]) == {"answer"}
    assert output[0]["answer"] is None or isinstance(output[0]["answer"], str)  # random weights: often no answer
    bad = run(worker, {"image": b64(png()), "question": "total", "word_boxes": [["total", [1, 2]]]}, 400)
    assert bad["param"] == "word_boxes"


# --- vision-language chat ---------------------------------------------------------------------------------


def test_vision_chat_takes_an_openai_image_part_and_streams(workers: dict[str, WorkerProcess]) -> None:
    from .worker_helpers import sse_events

    worker = workers["image-text-to-text"]
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is in the picture"},
                {"type": "image_url", "image_url": {"url": data_uri(png(), "image/png")}},
            ],
        }
    ]
    body = {"model": "tiny/vlm", "messages": messages, "max_tokens": 4, "temperature": 0}
    answer = worker.post("/v1/chat/completions", body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert isinstance(data["choices"][0]["message"]["content"], str)
    assert data["usage"]["prompt_tokens"] > 16  # the image's 16 patch tokens are in the prompt
    assert 1 <= data["usage"]["completion_tokens"] <= 4
    streamed = worker.post("/v1/chat/completions", {**body, "stream": True})
    events = sse_events(streamed)
    assert events[-1] == "[DONE]"
    assert (
        "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
        == (data["choices"][0]["message"]["content"])
    )


def test_vision_chat_takes_v2_image_parts_and_text_alone_on_run(workers: dict[str, WorkerProcess]) -> None:
    worker = workers["image-text-to-text"]
    parts = [{"type": "image", "base64": b64(png())}, {"type": "text", "text": "the color"}]
    output = run(worker, {"messages": [{"role": "user", "content": parts}], "params": {"max_new_tokens": 3}})
    assert output["role"] == "assistant" and isinstance(output["content"], str)
    plain_text = run(worker, {"input": "hello", "params": {"max_new_tokens": 2}})
    assert isinstance(plain_text["content"], str)


def test_vision_chat_refuses_a_broken_image_and_a_url_by_position(workers: dict[str, WorkerProcess]) -> None:
    worker = workers["image-text-to-text"]
    broken = [{"role": "user", "content": [{"type": "image", "base64": b64(b"not a png")}]}]
    error = run(worker, {"messages": broken}, 400)
    assert error["param"] == "messages[0].content[0].base64" and error["code"] == "invalid_media"
    remote = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://10.0.0.1/a.png"}}]}]
    answer = worker.post("/v1/chat/completions", {"messages": remote})
    assert answer.status_code == 400 and "does not fetch URLs" in answer.json()["error"]["message"]


# --- audio -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"), [("WAV", "audio/wav"), ("FLAC", "audio/flac"), ("OGG", "audio/ogg"), ("MP3", "audio/mpeg")]
)
def test_speech_recognition_decodes_every_common_format_at_any_rate(
    workers: dict[str, WorkerProcess], fmt: str, mime: str
) -> None:
    audio = sine(fmt, rate=22050 if fmt != "MP3" else 24000)
    assert isinstance(run(workers["automatic-speech-recognition"], {"input": data_uri(audio, mime)}), str)


def test_audio_classification_gives_every_label_best_first(workers: dict[str, WorkerProcess]) -> None:
    output = run(workers["audio-classification"], {"base64": b64(sine("FLAC", rate=8000))})
    assert sorted(item["label"] for item in output) == sorted(LABELS.values())
    assert output[0]["score"] >= output[1]["score"]


# --- bad input: each a 400 naming the field, and the worker answers the next request ----------------------


def test_not_an_image_is_a_400(workers: dict[str, WorkerProcess]) -> None:
    error = run(workers["image-classification"], {"base64": b64(b"this is plain text, not a picture")}, 400)
    assert error["code"] == "invalid_media" and "not an image" in error["message"] and error["param"] == "base64"


def test_truncated_image_is_a_400(workers: dict[str, WorkerProcess]) -> None:
    whole = png(200, 200)
    error = run(workers["image-classification"], {"base64": b64(whole[: len(whole) // 2])}, 400)
    assert error["code"] == "invalid_media" and "truncated" in error["message"]


def test_zero_byte_media_is_a_400(workers: dict[str, WorkerProcess]) -> None:
    error = run(workers["image-classification"], {"input": "data:image/png;base64,"}, 400)
    assert "0 bytes" in error["message"]
    error = run(workers["automatic-speech-recognition"], {"input": "data:audio/wav;base64,"}, 400)
    assert "0 bytes" in error["message"]


def test_decompression_bomb_is_refused_before_decoding_and_the_worker_survives(
    workers: dict[str, WorkerProcess],
) -> None:
    bomb = bomb_png(100_000)
    assert len(bomb) < 100_000
    worker = workers["image-classification"]
    error = run(worker, {"base64": b64(bomb)}, 400)
    assert error["code"] == "invalid_media"
    assert "100000 × 100000" in error["message"] and "decompression bomb" in error["message"]
    assert worker.proc is not None and worker.proc.poll() is None
    assert run(worker, {"base64": b64(png())})[0]["label"] in LABELS.values()


def test_truncated_and_non_audio_are_400s(workers: dict[str, WorkerProcess]) -> None:
    worker = workers["automatic-speech-recognition"]
    error = run(worker, {"base64": b64(sine("WAV")[:30])}, 400)
    assert error["code"] == "invalid_media" and "truncated" in error["message"]
    error = run(worker, {"base64": b64(png())}, 400)
    assert error["code"] == "invalid_media"
    assert isinstance(run(worker, {"base64": b64(sine("WAV"))}), str)


def test_a_url_is_never_fetched_by_the_worker(workers: dict[str, WorkerProcess]) -> None:
    error = run(workers["image-classification"], {"url": "http://169.254.169.254/latest/meta-data"}, 400)
    assert "does not fetch URLs" in error["message"] and error["param"] == "url"


def test_input_that_is_neither_base64_nor_a_data_uri_is_a_400(workers: dict[str, WorkerProcess]) -> None:
    error = run(workers["image-classification"], {"input": "a cat on a mat!"}, 400)
    assert "valid base64" in error["message"]
    error = run(workers["image-classification"], {"params": {}}, 400)
    assert "takes an image" in error["message"]


def test_image_is_resized_by_the_model_processor(workers: dict[str, WorkerProcess]) -> None:
    big = png(IMAGE * 10, IMAGE * 7)
    assert run(workers["image-classification"], {"base64": b64(big)})[0]["label"] in LABELS.values()
