"""Tiny random-weight generators the tests save into folders: a Stable Diffusion pipeline (diffusers), a VITS
text-to-speech model and a MusicGen text-to-audio model (transformers).

Both are built from small configs with tokenizers made here (no Hub download): the diffusion pipeline's UNet,
VAE and CLIP text encoder are a few thousand parameters each and make a 32x32 or 64x64 image in a fraction of a
second; VITS speaks a few hundred samples of noise. The tests pin the media's shape (a PNG of the asked size, a
WAV at the model's rate), not its sense.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _clip_tokenizer(folder: Path) -> Any:
    """A CLIP BPE tokenizer over single letters (every word splits into letters, each ending a word with `</w>`)."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", "!", *LETTERS, *(c + "</w>" for c in LETTERS)]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        vocab_file=str(folder / "vocab.json"),
        merges_file=str(folder / "merges.txt"),
        model_max_length=16,
        pad_token="!",
    )


def build_text_to_image(root: Path) -> Path:
    """A Stable Diffusion pipeline from small configs, saved as a diffusers folder (model_index.json)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer = _clip_tokenizer(root / "clip-tokenizer")
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(  # four blocks: a scale factor of 8, as Stable Diffusion's
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            projection_dim=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    folder = root / "tiny-stable-diffusion"
    pipe.save_pretrained(folder)
    return folder


def build_text_to_speech(root: Path) -> Path:
    """A VITS model from a small config and a letter vocabulary, saved as a transformers folder."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    torch.manual_seed(0)
    folder = root / "tiny-vits"
    folder.mkdir(parents=True, exist_ok=True)
    symbols = ["<pad>", " ", *LETTERS, "<unk>"]
    (folder / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(symbols)}))
    tokenizer = VitsTokenizer(vocab_file=str(folder / "vocab.json"), add_blank=True, normalize=True, phonemize=False)
    config = VitsConfig(
        vocab_size=len(symbols),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        window_size=2,
        ffn_dim=32,
        flow_size=8,
        spectrogram_bins=17,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        duration_predictor_filter_channels=16,
        duration_predictor_flow_bins=4,
        duration_predictor_num_flows=1,
        posterior_encoder_num_wavenet_layers=1,
        sampling_rate=16000,
        use_stochastic_duration_prediction=False,
    )
    VitsModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_text_to_audio(root: Path) -> Path:
    """A MusicGen (T5 text encoder, EnCodec with 4 codebooks at 8 kHz, a one-layer decoder) that generates token by
    token, with a word-level tokenizer; 8 new tokens unless asked."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        PreTrainedTokenizerFast,
        T5Config,
    )

    torch.manual_seed(0)
    words = ["<pad>", "</s>", "<unk>", "calm", "music", "loud", "drums", "a", "song"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    text = T5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    audio = EncodecConfig(
        target_bandwidths=[3.0],
        sampling_rate=8000,
        audio_channels=1,
        hidden_size=16,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[8, 8],
        codebook_size=32,
        codebook_dim=16,
        num_lstm_layers=1,
        chunk_length_s=None,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        num_codebooks=audio.num_quantizers,
        max_position_embeddings=64,
        pad_token_id=32,
        bos_token_id=32,
    )
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())
    model = MusicgenForConditionalGeneration(config)
    generation = model.generation_config
    generation.max_new_tokens = 8
    generation.pad_token_id = generation.decoder_start_token_id = generation.bos_token_id = 32
    generation.do_sample = True
    folder = root / "tiny-musicgen"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def generation_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny generators, saved once per test session: task → folder."""
    root = tmp_path_factory.mktemp("generation-models")
    return {
        "text-to-image": build_text_to_image(root),
        "text-to-speech": build_text_to_speech(root),
        "text-to-audio": build_text_to_audio(root),
    }
