"""Tiny random-weight vision and audio models the tests save into folders, and the media they feed them.

Every model is built from a small config (a 32-pixel image, 8-pixel patches, width 32, one or two layers), so it
is created and loaded in about a second; its outputs are noise, and the tests pin their shape (PROTOCOL.md), not
their sense. The images (Pillow) and the sine wave (soundfile: wav, flac, ogg, mp3) are made here too.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest

from .worker_tiny_models import _bert_tokenizer

IMAGE = 32  # pixels a side, what every tiny vision model takes
LABELS = {0: "cat", 1: "dog"}
SEGMENTS = {0: "background", 1: "cat", 2: "dog"}


def _vit(**extra: Any) -> Any:
    from transformers import ViTConfig

    return ViTConfig(
        image_size=IMAGE,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        **extra,
    )


def _image_processor(cls: Any, **extra: Any) -> Any:
    return cls(size={"height": IMAGE, "width": IMAGE}, **extra)


def _labelled(labels: dict[int, str]) -> dict[str, Any]:
    return {"id2label": labels, "label2id": {v: k for k, v in labels.items()}}


def _save(folder: Path, model: Any, *processors: Any) -> Path:
    model.save_pretrained(folder)
    for processor in processors:
        processor.save_pretrained(folder)
    return folder


def _clip_text(vocab: int) -> dict[str, Any]:
    return {
        "vocab_size": vocab,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 64,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }


def _clip_vision() -> dict[str, Any]:
    return {
        "image_size": IMAGE,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }


def _char_vocab(folder: Path) -> Path:
    """A Wav2Vec2 CTC vocabulary of letters (`|` is the word boundary)."""
    import json

    letters = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.json"
    path.write_text(json.dumps({c: i for i, c in enumerate(letters)}))
    return path


def _wav2vec2(**extra: Any) -> Any:
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        vocab_size=32,
        pad_token_id=0,
        **extra,
    )


def build_vision(root: Path) -> dict[str, Path]:
    """One tiny model per image task under `root`: task → folder."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    tf.logging.disable_progress_bar()
    vit_proc = _image_processor(tf.ViTImageProcessor)
    bert = _bert_tokenizer()
    folders = {
        "image-classification": _save(
            root / "image-classification", tf.ViTForImageClassification(_vit(**_labelled(LABELS))), vit_proc
        ),
        "image-feature-extraction": _save(root / "image-feature-extraction", tf.ViTModel(_vit()), vit_proc),
        "object-detection": _save(
            root / "object-detection",
            tf.YolosForObjectDetection(
                tf.YolosConfig(
                    image_size=[IMAGE, IMAGE],
                    patch_size=8,
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=37,
                    num_detection_tokens=4,
                    **_labelled(LABELS),
                )
            ),
            tf.YolosImageProcessor(size={"shortest_edge": IMAGE, "longest_edge": IMAGE}),
        ),
        "zero-shot-image-classification": _save(
            root / "zero-shot-image-classification",
            tf.CLIPModel(
                tf.CLIPConfig(text_config=_clip_text(len(bert)), vision_config=_clip_vision(), projection_dim=16)
            ),
            tf.CLIPImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}),
            bert,
        ),
        "zero-shot-object-detection": _save(
            root / "zero-shot-object-detection",
            tf.OwlViTForObjectDetection(
                tf.OwlViTConfig(text_config=_clip_text(len(bert)), vision_config=_clip_vision(), projection_dim=32)
            ),
            tf.OwlViTImageProcessor(
                size={"height": IMAGE, "width": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}
            ),
            bert,
        ),
        "image-segmentation": _save(
            root / "image-segmentation",
            tf.SegformerForSemanticSegmentation(
                tf.SegformerConfig(
                    num_encoder_blocks=2,
                    depths=[1, 1],
                    sr_ratios=[2, 1],
                    hidden_sizes=[8, 16],
                    patch_sizes=[7, 3],
                    strides=[4, 2],
                    num_attention_heads=[1, 2],
                    mlp_ratios=[2, 2],
                    decoder_hidden_size=16,
                    **_labelled(SEGMENTS),
                )
            ),
            tf.SegformerImageProcessor(size={"height": IMAGE, "width": IMAGE}),
        ),
        "depth-estimation": _save(
            root / "depth-estimation",
            tf.GLPNForDepthEstimation(
                tf.GLPNConfig(
                    num_encoder_blocks=2,
                    depths=[1, 1],
                    sr_ratios=[2, 1],
                    hidden_sizes=[8, 16],
                    patch_sizes=[7, 3],
                    strides=[4, 2],
                    num_attention_heads=[1, 2],
                    mlp_ratios=[2, 2],
                    decoder_hidden_size=16,
                )
            ),
            tf.GLPNImageProcessor(size_divisor=32),
        ),
    }
    blip_text = {
        "vocab_size": len(bert),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 64,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "sep_token_id": 3,
        "eos_token_id": 3,
    }
    blip = tf.BlipConfig(text_config=blip_text, vision_config=_clip_vision(), projection_dim=16)
    blip_proc = tf.BlipProcessor(
        image_processor=tf.BlipImageProcessor(size={"height": IMAGE, "width": IMAGE}), tokenizer=bert
    )
    caption = tf.BlipForConditionalGeneration(blip)
    caption.generation_config.max_length = 8
    folders["image-to-text"] = _save(root / "image-to-text", caption, blip_proc)
    folders["image-to-text:vit-gpt2"] = _build_vit_gpt2(root / "image-to-text-vit-gpt2")
    folders["document-question-answering"] = _build_donut(root / "document-question-answering")
    vqa = tf.BlipForQuestionAnswering(blip)
    vqa.generation_config.max_length = 8
    folders["visual-question-answering"] = _save(root / "visual-question-answering", vqa, blip_proc)
    return folders


def _build_vit_gpt2(folder: Path) -> Path:
    """A tiny ViT + GPT-2 VisionEncoderDecoder captioner, saved as such models are: an image processor and a
    tokenizer, no processor class."""
    import transformers as tf

    from .worker_tiny_models import _word_tokenizer

    tokenizer = _word_tokenizer(seq2seq=False)
    decoder = tf.GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        add_cross_attention=True,
        is_decoder=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = tf.VisionEncoderDecoderConfig.from_encoder_decoder_configs(_vit(), decoder)
    config.decoder_start_token_id = tokenizer.bos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    model = tf.VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = tokenizer.bos_token_id
    return _save(folder, model, _image_processor(tf.ViTImageProcessor), tokenizer)


def _build_donut(folder: Path) -> Path:
    """A tiny Donut (Swin encoder, MBart decoder): the OCR-free document-question-answering model."""
    import transformers as tf

    from .worker_tiny_models import _word_tokenizer

    tokenizer = _word_tokenizer(seq2seq=False)
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<s_docvqa>", "<s_question>", "</s_question>", "<s_answer>", "</s_answer>"]}
    )
    encoder = tf.DonutSwinConfig(
        image_size=[IMAGE, IMAGE], patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=2
    )
    decoder = tf.MBartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        decoder_layers=1,
        encoder_layers=1,
        decoder_attention_heads=2,
        encoder_attention_heads=2,
        decoder_ffn_dim=37,
        encoder_ffn_dim=37,
        max_position_embeddings=64,
        is_decoder=True,
        add_cross_attention=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = tf.VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = tokenizer.bos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    model = tf.VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = tokenizer.bos_token_id
    model.generation_config.max_length = 16
    processor = tf.DonutProcessor(
        image_processor=tf.DonutImageProcessor(size={"height": IMAGE, "width": IMAGE}), tokenizer=tokenizer
    )
    return _save(folder, model, processor)


VLM_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {% if m['content'] is string %}{{ m['content'] }} {% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> {% elif c['type'] == 'text' %}{{ c['text'] }} "
    "{% endif %}{% endfor %}{% endif %}<eos> {% endfor %}{% if add_generation_prompt %}<assistant> {% endif %}"
)


def build_vision_chat(root: Path) -> Path:
    """A tiny LLaVA (CLIP vision tower + Llama) whose processor's chat template places `<image>` tokens."""
    import torch
    import transformers as tf

    from .worker_tiny_models import _word_tokenizer

    torch.manual_seed(0)
    tokenizer = _word_tokenizer(seq2seq=False)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<user>", "<assistant>", "<system>", "<image>"]})
    tokenizer.chat_template = VLM_TEMPLATE
    config = tf.LlavaConfig(
        vision_config=tf.CLIPVisionConfig(**_clip_vision(), projection_dim=16),
        text_config=tf.LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=128,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    processor = tf.LlavaProcessor(
        image_processor=tf.CLIPImageProcessor(
            size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=VLM_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    return _save(root / "image-text-to-text", tf.LlavaForConditionalGeneration(config), processor)


def build_audio(root: Path) -> dict[str, Path]:
    """One tiny model per audio task under `root`: task → folder."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    features = tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0)
    asr_dir = root / "automatic-speech-recognition"
    tokenizer = tf.Wav2Vec2CTCTokenizer(str(_char_vocab(asr_dir)), word_delimiter_token="|")
    asr = tf.Wav2Vec2ForCTC(_wav2vec2())
    folders = {
        "automatic-speech-recognition": _save(
            asr_dir, asr, tf.Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer)
        ),
        "audio-classification": _save(
            root / "audio-classification",
            tf.Wav2Vec2ForSequenceClassification(_wav2vec2(**_labelled(LABELS), classifier_proj_size=16)),
            features,
        ),
    }
    return folders


# --- media ----------------------------------------------------------------------------------------------


def png(width: int = 48, height: int = 40, fmt: str = "PNG") -> bytes:
    """A real picture: a red square on blue, with a green stripe."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (20, 40, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, width // 2, height // 2), fill=(220, 30, 30))
    draw.line((0, height - 5, width, height - 5), fill=(30, 200, 30), width=3)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def bomb_png(side: int = 100_000) -> bytes:
    """A PNG of a few kilobytes whose header says `side` × `side` pixels (10 gigapixels by default)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grey
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    data = compressor.compress(row * 64) + compressor.flush()  # the first rows only: decoding stops short
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def sine(fmt: str = "WAV", rate: int = 22050, seconds: float = 0.5, hz: float = 440.0) -> bytes:
    """A sine wave as an audio file (WAV, FLAC, OGG or MP3), by libsndfile."""
    import numpy as np
    import soundfile

    t = np.arange(int(rate * seconds)) / rate
    wave = (0.4 * np.sin(2 * np.pi * hz * t)).astype("float32")
    out = io.BytesIO()
    soundfile.write(out, wave, rate, format=fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{b64(data)}"


@pytest.fixture(scope="session")
def media_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tiny vision and audio model, saved once per test session: task → folder."""
    root = tmp_path_factory.mktemp("media-models")
    return {**build_vision(root), **build_audio(root), "image-text-to-text": build_vision_chat(root)}
