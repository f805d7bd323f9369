"""Deciding task, engine and files from what the Hub says about a repo (runtime/hub/plan.py; no network).

Each repo is written as the Hub's `GET /api/models/{id}?blobs=true` answer and read through huggingface_hub's
own `ModelInfo`, as the client does.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from huggingface_hub.hf_api import ModelInfo

from unimodel.protocol.errors import UnimodelError
from unimodel.runtime.hub import PlanPolicy, RepoInfo, check_repo_id, format_bytes, plan_pull

GB = 1_000_000_000
MB = 1_000_000
_LFS = (".gguf", ".safetensors", ".bin", ".onnx", ".h5", ".msgpack", ".ot", ".pt")
CHAT_TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
POLICY = PlanPolicy(max_download_bytes=20 * GB)
TRANSFORMERS_TASKS = (
    "audio-classification, automatic-speech-recognition, chat, depth-estimation, document-question-answering, "
    "feature-extraction, fill-mask, image-classification, image-feature-extraction, image-segmentation, "
    "image-text-to-text, image-to-text, object-detection, question-answering, sentence-similarity, summarization, "
    "text-classification, text-generation, text-to-audio, text-to-speech, text2text-generation, token-classification, "
    "translation, "
    "visual-question-answering, zero-shot-classification, zero-shot-image-classification, zero-shot-object-detection"
)


def hub_info(repo_id: str, files: dict[str, int], **fields: Any) -> RepoInfo:
    """A repo as the Hub describes it: `files` maps names to sizes; `fields` are model-info fields."""
    siblings = []
    for name, size in files.items():
        sibling: dict[str, Any] = {"rfilename": name, "size": size, "blobId": hashlib.sha1(name.encode()).hexdigest()}
        if name.endswith(_LFS):
            sibling["lfs"] = {"sha256": hashlib.sha256(name.encode()).hexdigest(), "size": size, "pointerSize": 134}
        siblings.append(sibling)
    data = {"id": repo_id, "sha": "c0ffee" + "0" * 34, "private": False, "gated": False, "siblings": siblings}
    data["tags"] = fields.pop("tags", [])
    data.update(fields)
    return RepoInfo.from_model_info(ModelInfo(**data))


def refused(info: RepoInfo, **kwargs: Any) -> UnimodelError:
    with pytest.raises(UnimodelError) as caught:
        plan_pull(info, **{"policy": POLICY, **kwargs})
    return caught.value


# --- GGUF ---------------------------------------------------------------------------------------------------

QWEN_GGUF = {
    "README.md": 5_000,
    "qwen2.5-0.5b-instruct-fp16.gguf": 1_270 * MB,
    "qwen2.5-0.5b-instruct-q2_k.gguf": 415 * MB,
    "qwen2.5-0.5b-instruct-q4_k_m.gguf": 491 * MB,
    "qwen2.5-0.5b-instruct-q5_k_m.gguf": 522 * MB,
    "qwen2.5-0.5b-instruct-q8_0.gguf": 676 * MB,
}
GGUF_FIELD = {"total": 494_032_768, "architecture": "qwen2", "context_length": 32768, "chat_template": CHAT_TEMPLATE}


def test_gguf_repo_runs_on_llama_cpp_from_the_first_preferred_quantisation_only() -> None:
    info = hub_info("Qwen/Qwen2.5-0.5B-Instruct-GGUF", QWEN_GGUF, gguf=GGUF_FIELD, tags=["gguf", "conversational"])
    plan = plan_pull(info, policy=POLICY)
    assert (plan.engine, plan.task, plan.library) == ("llama.cpp", "chat", "gguf")
    assert plan.names == ("qwen2.5-0.5b-instruct-q4_k_m.gguf",)
    assert plan.entry == "qwen2.5-0.5b-instruct-q4_k_m.gguf"
    assert plan.total_bytes == 491 * MB
    assert plan.commit == "c0ffee" + "0" * 34 and plan.revision == "main"
    assert plan.files[0].etag == hashlib.sha256(b"qwen2.5-0.5b-instruct-q4_k_m.gguf").hexdigest()
    assert plan.why == "Q4_K_M, the first of [hub] gguf_preference it has"
    assert plan.to_json()["files"] == [{"name": "qwen2.5-0.5b-instruct-q4_k_m.gguf", "size": 491 * MB}]


def test_gguf_preference_is_followed_in_order() -> None:
    files = {k: v for k, v in QWEN_GGUF.items() if "q4_k_m" not in k}
    info = hub_info("Qwen/Qwen2.5-0.5B-Instruct-GGUF", files, gguf=GGUF_FIELD)
    assert plan_pull(info, policy=POLICY).names == ("qwen2.5-0.5b-instruct-q5_k_m.gguf",)
    custom = PlanPolicy(gguf_preference=("Q8_0", "Q4_K_M"))
    assert plan_pull(info, policy=custom).names == ("qwen2.5-0.5b-instruct-q8_0.gguf",)


def test_gguf_without_a_preferred_quantisation_takes_the_smallest_model_file_never_a_projector() -> None:
    files = {"model-f16.gguf": 900 * MB, "model-IQ3_XS.gguf": 300 * MB, "mmproj-model-f16.gguf": 100 * MB}
    plan = plan_pull(hub_info("acme/vision-GGUF", files), policy=POLICY)
    assert plan.names == ("model-IQ3_XS.gguf",)
    assert plan.why == "the smallest GGUF file (it has none of [hub] gguf_preference)"


def test_quantisation_matches_a_whole_token_of_the_name() -> None:
    files = {"m.Q4_K_M_L.gguf": 200 * MB, "m.Q4_K_S.gguf": 400 * MB}
    assert plan_pull(hub_info("acme/m-GGUF", files), policy=POLICY).names == ("m.Q4_K_S.gguf",)


def test_explicit_file_overrides_the_preference() -> None:
    info = hub_info("Qwen/Qwen2.5-0.5B-Instruct-GGUF", QWEN_GGUF, gguf=GGUF_FIELD)
    plan = plan_pull(info, file="qwen2.5-0.5b-instruct-q8_0.gguf", policy=POLICY)
    assert plan.names == ("qwen2.5-0.5b-instruct-q8_0.gguf",) and plan.why == "named by 'file'"


def test_explicit_file_missing_is_404_listing_the_gguf_files() -> None:
    info = hub_info("Qwen/Qwen2.5-0.5B-Instruct-GGUF", QWEN_GGUF, gguf=GGUF_FIELD)
    error = refused(info, file="qwen2.5-0.5b-instruct-q3_k_m.gguf")
    assert (error.status, error.code, error.param) == (404, "file_not_found", "file")
    assert "has no file 'qwen2.5-0.5b-instruct-q3_k_m.gguf'" in error.message
    assert "qwen2.5-0.5b-instruct-q4_k_m.gguf" in error.message and "README.md" not in error.message


def test_split_gguf_takes_every_part_of_the_chosen_file() -> None:
    files = {
        "Q4_K_M/big-Q4_K_M-00001-of-00003.gguf": 4 * GB,
        "Q4_K_M/big-Q4_K_M-00002-of-00003.gguf": 4 * GB,
        "Q4_K_M/big-Q4_K_M-00003-of-00003.gguf": 1 * GB,
        "Q8_0/big-Q8_0-00001-of-00002.gguf": 9 * GB,
        "Q8_0/big-Q8_0-00002-of-00002.gguf": 8 * GB,
    }
    info = hub_info("acme/big-GGUF", files, gguf={"architecture": "llama"})
    plan = plan_pull(info, policy=POLICY)
    assert plan.names == (
        "Q4_K_M/big-Q4_K_M-00001-of-00003.gguf",
        "Q4_K_M/big-Q4_K_M-00002-of-00003.gguf",
        "Q4_K_M/big-Q4_K_M-00003-of-00003.gguf",
    )
    assert plan.entry == "Q4_K_M/big-Q4_K_M-00001-of-00003.gguf" and plan.total_bytes == 9 * GB
    named = plan_pull(info, file="Q8_0/big-Q8_0-00002-of-00002.gguf", policy=POLICY)
    assert named.entry == "Q8_0/big-Q8_0-00001-of-00002.gguf" and len(named.files) == 2


def test_split_gguf_with_a_missing_part_is_refused_clearly() -> None:
    files = {"big-Q4_K_M-00001-of-00003.gguf": 4 * GB, "big-Q4_K_M-00003-of-00003.gguf": 1 * GB}
    error = refused(hub_info("acme/big-GGUF", files))
    assert (error.status, error.code) == (400, "unsupported_model")
    assert "'big-Q4_K_M-00001-of-00003.gguf' is split into 3 parts but the repo has 2 of them" in error.message


def test_gguf_cut_with_split_is_refused_when_named() -> None:
    files = {"big.Q8_0.gguf.part1of2": 40 * GB, "big.Q8_0.gguf.part2of2": 30 * GB, "big.Q2_K.gguf": 20 * GB}
    error = refused(hub_info("acme/big-GGUF", files), file="big.Q8_0.gguf.part1of2")
    assert error.code == "unsupported_model" and "must be joined by hand" in error.message


def test_gguf_task_follows_the_pipeline_and_the_chat_template() -> None:
    files = {"e.Q8_0.gguf": 100 * MB}
    embed = hub_info("acme/embed-GGUF", files, pipeline_tag="sentence-similarity", gguf={"architecture": "bert"})
    assert plan_pull(embed, policy=POLICY).task == "feature-extraction"
    base = hub_info("acme/base-GGUF", files, pipeline_tag="text-generation", gguf={"architecture": "llama"})
    assert plan_pull(base, policy=POLICY).task == "text-generation"
    vision = hub_info("acme/vlm-GGUF", files, pipeline_tag="image-text-to-text", gguf={"architecture": "qwen2vl"})
    error = refused(vision)
    assert error.code == "unsupported_model"
    assert "it is a 'image-text-to-text' model" in error.message
    assert "llama.cpp serves: chat, feature-extraction, sentence-similarity, text-generation." in error.message


def test_file_is_refused_for_a_repo_without_gguf_files() -> None:
    info = hub_info("acme/bert", {"config.json": 600, "model.safetensors": 400 * MB}, pipeline_tag="fill-mask")
    error = refused(info, file="model.safetensors")
    assert (error.status, error.param) == (400, "file") and "Leave 'file' out" in error.message


# --- sentence-transformers and transformers ------------------------------------------------------------------

MINILM = {
    ".gitattributes": 1_229,
    "1_Pooling/config.json": 190,
    "README.md": 10_454,
    "config.json": 612,
    "config_sentence_transformers.json": 116,
    "data_config.json": 39_265,
    "model.safetensors": 90_868_376,
    "modules.json": 349,
    "onnx/model.onnx": 90_405_214,
    "onnx/model_O4.onnx": 45_212_349,
    "openvino/openvino_model.bin": 90_265_744,
    "openvino/openvino_model.xml": 211_315,
    "pytorch_model.bin": 90_888_945,
    "rust_model.ot": 90_887_379,
    "sentence_bert_config.json": 53,
    "special_tokens_map.json": 112,
    "tf_model.h5": 91_005_696,
    "tokenizer.json": 466_247,
    "tokenizer_config.json": 350,
    "train_script.py": 13_156,
    "vocab.txt": 231_508,
}


def test_sentence_transformers_repo_is_feature_extraction_with_its_modules_and_one_weight_format() -> None:
    info = hub_info(
        "sentence-transformers/all-MiniLM-L6-v2",
        MINILM,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        config={"architectures": ["BertModel"], "model_type": "bert"},
        tags=["sentence-transformers", "pytorch", "tf", "rust", "onnx", "safetensors", "openvino", "bert"],
    )
    plan = plan_pull(info, policy=POLICY)
    assert (plan.engine, plan.task, plan.library, plan.entry) == (
        "transformers",
        "feature-extraction",
        "sentence-transformers",
        None,
    )
    assert plan.names == (
        "1_Pooling/config.json",
        "config.json",
        "config_sentence_transformers.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    )


def test_sentence_transformers_found_by_its_files_when_the_hub_names_no_library() -> None:
    files = {"modules.json": 349, "config.json": 600, "model.safetensors": 90 * MB, "2_Dense/config.json": 100}
    files |= {"2_Dense/model.safetensors": 1 * MB, "2_Dense/pytorch_model.bin": 1 * MB}
    plan = plan_pull(hub_info("acme/st", files), policy=POLICY)
    assert plan.task == "feature-extraction"
    assert plan.names == (
        "2_Dense/config.json",
        "2_Dense/model.safetensors",
        "config.json",
        "model.safetensors",
        "modules.json",
    )


TOKENIZER = {"tokenizer.json": 3_000, "tokenizer_config.json": 300, "special_tokens_map.json": 100}


def test_transformers_text_classification_takes_config_tokenizer_and_safetensors() -> None:
    files = {"config.json": 800, "model.safetensors": 268 * MB, "README.md": 9_000, **TOKENIZER}
    info = hub_info(
        "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        files,
        library_name="transformers",
        pipeline_tag="text-classification",
        config={"architectures": ["DistilBertForSequenceClassification"], "model_type": "distilbert"},
    )
    plan = plan_pull(info, policy=POLICY)
    assert (plan.engine, plan.task, plan.library) == ("transformers", "text-classification", "transformers")
    assert plan.names == (
        "config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    )
    assert plan.why == "transformers weights (safetensors)"


def test_transformers_fill_mask() -> None:
    files = {"config.json": 600, "model.safetensors": 440 * MB, "vocab.txt": 231_508, **TOKENIZER}
    info = hub_info("google-bert/bert-base-uncased", files, library_name="transformers", pipeline_tag="fill-mask")
    assert plan_pull(info, policy=POLICY).task == "fill-mask"


def test_text_generation_with_a_chat_template_is_chat() -> None:
    files = {"config.json": 700, "generation_config.json": 200, "model.safetensors": 988 * MB, **TOKENIZER}
    files |= {"merges.txt": 1_671_853, "vocab.json": 2_776_833, "LICENSE": 11_000}
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "tokenizer_config": {"eos_token": "<|im_end|>", "chat_template": CHAT_TEMPLATE},
    }
    info = hub_info(
        "Qwen/Qwen2.5-0.5B-Instruct",
        files,
        library_name="transformers",
        pipeline_tag="text-generation",
        config=config,
        tags=["transformers", "safetensors", "qwen2", "text-generation", "conversational"],
    )
    plan = plan_pull(info, policy=POLICY)
    assert (plan.task, plan.engine) == ("chat", "transformers")
    assert plan.names == (
        "config.json",
        "generation_config.json",
        "merges.txt",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    )


def test_chat_template_file_makes_it_chat_and_is_pulled() -> None:
    files = {"config.json": 700, "model.safetensors": 1 * MB, "chat_template.jinja": 131, **TOKENIZER}
    info = hub_info("acme/tiny-chat", files, pipeline_tag="text-generation")
    plan = plan_pull(info, policy=POLICY)
    assert plan.task == "chat" and "chat_template.jinja" in plan.names


def test_text_generation_without_a_chat_template_stays_text_generation() -> None:
    files = {"config.json": 700, "model.safetensors": 500 * MB, **TOKENIZER}
    info = hub_info("openai-community/gpt2", files, library_name="transformers", pipeline_tag="text-generation")
    assert plan_pull(info, policy=POLICY).task == "text-generation"


def test_task_follows_the_architecture_when_the_hub_gives_none() -> None:
    files = {"config.json": 700, "model.safetensors": 500 * MB, **TOKENIZER}
    causal = hub_info("acme/causal", files, config={"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    assert plan_pull(causal, policy=POLICY).task == "text-generation"
    t5 = hub_info("acme/t5", files, config={"architectures": ["T5ForConditionalGeneration"], "model_type": "t5"})
    assert plan_pull(t5, policy=POLICY).task == "text2text-generation"
    llava = hub_info("acme/vlm", files, config={"architectures": ["LlavaForConditionalGeneration"]})
    error = refused(llava)
    assert error.code == "unsupported_model"
    assert (
        "the Hub gives it no task and its architectures (LlavaForConditionalGeneration) do not say one" in error.message
    )


def test_bin_only_repo_takes_pytorch_model_bin() -> None:
    files = {"config.json": 600, "pytorch_model.bin": 440 * MB, "flax_model.msgpack": 440 * MB, **TOKENIZER}
    plan = plan_pull(hub_info("acme/old-bert", files, pipeline_tag="fill-mask"), policy=POLICY)
    assert plan.names == (
        "config.json",
        "pytorch_model.bin",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    )
    assert plan.why == "transformers weights (.bin)"


def test_repo_with_both_formats_takes_only_the_safetensors_shards() -> None:
    files = {"config.json": 600, **TOKENIZER}
    files |= {"model.safetensors.index.json": 30_000, "pytorch_model.bin.index.json": 30_000}
    files |= {f"model-0000{i}-of-00002.safetensors": 4 * GB for i in (1, 2)}
    files |= {f"pytorch_model-0000{i}-of-00002.bin": 4 * GB for i in (1, 2)}
    files |= {"original/consolidated.00.pth": 8 * GB, "training_args.bin": 5_000, "model.fp16.safetensors": 4 * GB}
    plan = plan_pull(hub_info("acme/sharded", files, pipeline_tag="text-generation"), policy=POLICY)
    assert plan.names == (
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    )
    assert plan.total_bytes == 8 * GB + 600 + 30_000 + 3_400
    assert plan.why == "transformers weights (safetensors, 2 shards)"


def test_remote_code_repo_is_refused() -> None:
    files = {"config.json": 700, "model.safetensors": 1 * GB, "modeling_phi.py": 60_000, **TOKENIZER}
    config = {"architectures": ["PhiForCausalLM"], "auto_map": {"AutoModelForCausalLM": "modeling_phi.PhiForCausalLM"}}
    error = refused(hub_info("acme/custom", files, pipeline_tag="text-generation", config=config))
    assert (error.status, error.code, error.param) == (400, "unsupported_model", "model")
    assert "trust_remote_code" in error.message and "never runs code from a repo" in error.message
    tagged = hub_info("acme/custom2", files, pipeline_tag="text-generation", tags=["custom_code"])
    assert refused(tagged).code == "unsupported_model"


def test_unsupported_library_is_refused_naming_it() -> None:
    files = {"config.json": 700, "model.safetensors": 20 * MB}
    error = refused(hub_info("timm/resnet18.a1_in1k", files, library_name="timm", pipeline_tag="image-classification"))
    assert (error.status, error.code) == (400, "unsupported_model")
    assert error.message.startswith("'timm/resnet18.a1_in1k' cannot run here: it is a 'timm' model.")
    assert "GGUF repos on llama.cpp, transformers / sentence-transformers repos" in error.message
    assert "diffusers pipelines (model_index.json) on the diffusers engine" in error.message


SD_TURBO = {
    "README.md": 4_000,
    "model_index.json": 600,
    "sd_turbo.safetensors": 5 * GB,  # a single-file checkpoint at the root: never pulled
    "unet/config.json": 1_800,
    "unet/diffusion_pytorch_model.safetensors": 3_400 * MB,
    "unet/diffusion_pytorch_model.fp16.safetensors": 1_700 * MB,
    "vae/config.json": 700,
    "vae/diffusion_pytorch_model.safetensors": 330 * MB,
    "vae/diffusion_pytorch_model.bin": 330 * MB,
    "text_encoder/config.json": 600,
    "text_encoder/model.safetensors": 1_360 * MB,
    "text_encoder/model.fp16.safetensors": 680 * MB,
    "tokenizer/merges.txt": 520_000,
    "tokenizer/vocab.json": 1_000_000,
    "tokenizer/special_tokens_map.json": 400,
    "tokenizer/tokenizer_config.json": 700,
    "scheduler/scheduler_config.json": 500,
}


def test_a_diffusers_pipeline_runs_text_to_image_on_the_diffusers_engine() -> None:
    info = hub_info("stabilityai/sd-turbo", SD_TURBO, library_name="diffusers", pipeline_tag="text-to-image")
    plan = plan_pull(info, policy=POLICY)
    assert (plan.task, plan.engine, plan.library, plan.entry) == ("text-to-image", "diffusers", "diffusers", None)
    assert plan.names == (
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    )
    assert plan.why == "a diffusers pipeline (safetensors)"


def test_diffusers_pipelines_it_cannot_run_are_refused_saying_why() -> None:
    other_task = hub_info("acme/inpaint", SD_TURBO, library_name="diffusers", pipeline_tag="image-to-image")
    assert "its task 'image-to-image' is not one the diffusers engine serves" in refused(other_task).message
    assert "It serves: text-to-image." in refused(other_task).message
    fp16_only = {k: v for k, v in SD_TURBO.items() if k != "unet/diffusion_pytorch_model.safetensors"}
    error = refused(hub_info("acme/fp16", fp16_only, library_name="diffusers", pipeline_tag="text-to-image"))
    assert "no PyTorch weights" in error.message and "for unet/" in error.message
    code = {**SD_TURBO, "pipeline.py": 9_000}
    error = refused(hub_info("acme/custom-pipe", code, library_name="diffusers", pipeline_tag="text-to-image"))
    assert "its own Python code" in error.message
    single = {"sd_xl_base_1.0.safetensors": 6 * GB}
    error = refused(hub_info("acme/single", single, library_name="diffusers", pipeline_tag="text-to-image"))
    assert "without a model_index.json" in error.message


def test_task_no_engine_serves_is_refused_listing_the_supported_ones() -> None:
    files = {"config.json": 700, "model.safetensors": 150 * MB, **TOKENIZER}
    info = hub_info("acme/video-maker", files, library_name="transformers", pipeline_tag="text-to-video")
    error = refused(info)
    assert error.code == "unsupported_model"
    assert "its task 'text-to-video' is not one the transformers engine serves" in error.message
    assert f"It serves: {TRANSFORMERS_TASKS}." in error.message


@pytest.mark.parametrize(
    ("repo_id", "pipeline_tag", "processor_file"),
    [
        ("google/vit-base-patch16-224", "image-classification", "preprocessor_config.json"),
        ("openai/clip-vit-base-patch32", "zero-shot-image-classification", "preprocessor_config.json"),
        ("hustvl/yolos-tiny", "object-detection", "preprocessor_config.json"),
        ("google/owlvit-base-patch32", "zero-shot-object-detection", "preprocessor_config.json"),
        ("nvidia/segformer-b0-finetuned-ade-512-512", "image-segmentation", "preprocessor_config.json"),
        ("vinvino02/glpn-kitti", "depth-estimation", "preprocessor_config.json"),
        ("facebook/dinov2-small", "image-feature-extraction", "preprocessor_config.json"),
        ("Salesforce/blip-image-captioning-base", "image-to-text", "preprocessor_config.json"),
        ("Salesforce/blip-vqa-base", "visual-question-answering", "preprocessor_config.json"),
        ("naver-clova-ix/donut-base-finetuned-docvqa", "document-question-answering", "preprocessor_config.json"),
        ("openai/whisper-tiny", "automatic-speech-recognition", "preprocessor_config.json"),
        ("MIT/ast-finetuned-audioset-10-10-0.4593", "audio-classification", "preprocessor_config.json"),
        ("HuggingFaceTB/SmolVLM-256M-Instruct", "image-text-to-text", "processor_config.json"),
    ],
)
def test_vision_and_audio_repos_take_their_task_from_the_pipeline_tag(
    repo_id: str, pipeline_tag: str, processor_file: str
) -> None:
    files = {"config.json": 700, "model.safetensors": 150 * MB, processor_file: 400, "sample.png": 9_000, **TOKENIZER}
    plan = plan_pull(hub_info(repo_id, files, library_name="transformers", pipeline_tag=pipeline_tag), policy=POLICY)
    assert (plan.engine, plan.task) == ("transformers", pipeline_tag)
    assert processor_file in plan.names and "model.safetensors" in plan.names
    assert "sample.png" not in plan.names


def test_repo_without_pytorch_weights_is_refused() -> None:
    files = {"config.json": 700, "tf_model.h5": 500 * MB, "onnx/model.onnx": 500 * MB, **TOKENIZER}
    error = refused(hub_info("acme/tf-only", files, pipeline_tag="fill-mask"))
    assert (
        error.code == "unsupported_model" and "no PyTorch weights" in error.message and "tf_model.h5" in error.message
    )


# --- policy -------------------------------------------------------------------------------------------------


def test_too_large_is_refused_naming_both_sizes_and_the_setting() -> None:
    files = {"config.json": 700, "model.safetensors.index.json": 30_000, **TOKENIZER}
    files |= {f"model-0000{i}-of-00004.safetensors": 6 * GB for i in range(1, 5)}
    error = refused(hub_info("acme/24b", files, pipeline_tag="text-generation"))
    assert (error.status, error.code) == (403, "model_too_large")
    assert "'acme/24b' needs 24 GB (9 files)" in error.message and "at most 20 GB per model" in error.message
    assert "[hub] max_download_gb" in error.message
    gguf = refused(hub_info("acme/q-GGUF", {"q.Q4_K_M.gguf": 25 * GB}))
    assert "Name a smaller quantisation with 'file'" in gguf.message
    just_over = refused(hub_info("acme/q2-GGUF", {"q.Q4_K_M.gguf": 20 * GB + 5_000_000}))
    assert "needs 20.005 GB (1 file)" in just_over.message


def test_allow_list_refuses_other_ids_naming_the_setting() -> None:
    info = hub_info("meta-llama/Llama-3.2-1B", {"config.json": 700, "model.safetensors": 2 * GB})
    error = refused(info, policy=PlanPolicy(allow=("Qwen/*", "HuggingFaceTB/*")))
    assert (error.status, error.code) == (403, "model_not_allowed")
    assert error.message == (
        "Pulling 'meta-llama/Llama-3.2-1B' is not allowed on this server: [hub] allow permits \"Qwen/*\", "
        '"HuggingFaceTB/*".'
    )
    qwen = hub_info(
        "Qwen/Qwen2.5-0.5B", {"config.json": 700, "model.safetensors": 1 * GB}, pipeline_tag="text-generation"
    )
    assert plan_pull(qwen, policy=PlanPolicy(allow=("qwen/*",))).repo_id == "Qwen/Qwen2.5-0.5B"
    assert "permits nothing" in refused(qwen, policy=PlanPolicy(allow=())).message


@pytest.mark.parametrize(
    ("model_id", "problem"),
    [
        ("openai/gpt-4o/extra", "is 'org/name' or 'name'"),
        ("org/na:me", "takes letters, digits"),
        ("org/a--b", "has no '--' or '..'"),
        ("org/" + "x" * 97, "at most 96 characters"),
        ("org/x?y", "may not contain"),
    ],
)
def test_ids_that_cannot_name_a_hub_repo_are_400(model_id: str, problem: str) -> None:
    with pytest.raises(UnimodelError) as caught:
        check_repo_id(model_id)
    assert (caught.value.status, caught.value.code) == (400, "invalid_model_id")
    assert problem in caught.value.message


@pytest.mark.parametrize("revision", ["../../etc", "/abs", "a//b", "x y", "refs/pr/.."])
def test_revisions_that_could_leave_the_cache_are_400(revision: str) -> None:
    info = hub_info("acme/bert", {"config.json": 700, "model.safetensors": 1 * MB}, pipeline_tag="fill-mask")
    error = refused(info, revision=revision)
    assert (error.status, error.code, error.param) == (400, "invalid_revision", "revision")


def test_branch_tag_and_pr_revisions_pass() -> None:
    info = hub_info("acme/bert", {"config.json": 700, "model.safetensors": 1 * MB}, pipeline_tag="fill-mask")
    assert [plan_pull(info, revision=r, policy=POLICY).revision for r in ("v1.0", "refs/pr/1", "a" * 40)] == [
        "v1.0",
        "refs/pr/1",
        "a" * 40,
    ]


def test_hub_repo_ids_pass() -> None:
    assert check_repo_id("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert check_repo_id("gpt2") == "gpt2"


def test_sizes_are_shown_in_decimal_units() -> None:
    assert [format_bytes(n) for n in (512, 98_362_432, 134_000_000, 4_920_000_000, 20 * GB)] == [
        "512 B",
        "98.4 MB",
        "134 MB",
        "4.92 GB",
        "20 GB",
    ]
