"""How the Hub settings resolve: `[hub]` over the standard Hugging Face environment over defaults."""

from __future__ import annotations

from pathlib import Path

from unimodel.config import HubConfig
from unimodel.runtime.hub import HubSettings

TOKEN = "hf_settingsTESTtoken0123456789abcdefXYZ"


def test_defaults_follow_the_hugging_face_layout(tmp_path: Path) -> None:
    s = HubSettings.resolve(HubConfig(), {"XDG_CACHE_HOME": str(tmp_path)})
    assert s.endpoint == "https://huggingface.co"
    assert s.cache_dir == tmp_path / "huggingface" / "hub"
    assert (s.offline, s.token, s.token_source) == (False, None, None)
    assert s.max_download_bytes == 20_000_000_000
    assert s.gguf_preference == ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q8_0") and s.allow == ("*",)


def test_environment_applies_when_hub_leaves_a_key_unset(tmp_path: Path) -> None:
    env = {
        "HF_ENDPOINT": "https://mirror.example.com/",
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(tmp_path / "home"),
        "HF_HUB_OFFLINE": "1",
    }
    s = HubSettings.resolve(HubConfig(), env)
    assert s.endpoint == "https://mirror.example.com"
    assert s.cache_dir == tmp_path / "home" / "hub"
    assert (s.token_value(), s.token_source) == (TOKEN, "HF_TOKEN")
    assert (s.offline, s.offline_source) == (True, "HF_HUB_OFFLINE")
    assert HubSettings.resolve(HubConfig(), {**env, "HF_HUB_CACHE": str(tmp_path / "c")}).cache_dir == tmp_path / "c"


def test_hub_table_overrides_the_environment(tmp_path: Path) -> None:
    config = HubConfig(
        endpoint="http://127.0.0.1:9/", token="hf_fromCONFIG", cache_dir=str(tmp_path / "x"), offline=False
    )
    env = {"HF_ENDPOINT": "https://mirror.example.com", "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"}
    s = HubSettings.resolve(config, env)
    assert (s.endpoint, s.cache_dir, s.offline) == ("http://127.0.0.1:9", tmp_path / "x", False)
    assert (s.token_value(), s.token_source) == ("hf_fromCONFIG", "[hub] token")


def test_token_saved_by_hf_auth_login_is_used_last(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    s = HubSettings.resolve(HubConfig(), {"HF_HOME": str(tmp_path)})
    assert s.token_value() == TOKEN and s.token_source == f"the token file {tmp_path / 'token'}"
    assert HubSettings.resolve(HubConfig(), {"HF_HOME": str(tmp_path), "HF_TOKEN": "hf_env"}).token_value() == "hf_env"


def test_token_never_shows_in_the_settings_repr() -> None:
    s = HubSettings.resolve(HubConfig(token=TOKEN), {})
    assert TOKEN not in repr(s) and TOKEN not in str(s)
