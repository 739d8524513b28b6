"""Settings: MODALGRAPH_* environment variables over a TOML file in the user config dir over defaults."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agent.core.errors import ConfigError
from agent.core.mcp_server_spec import McpServerSpec

ENV_PREFIX = "MODALGRAPH_"
MODEL_ENV_PREFIX = "MODALGRAPH_MODEL_"

LLMBackend = Literal["llamacpp", "openai", "transformers", "scripted"]
TtsEngine = Literal["auto", "edge", "piper", "espeak"]
AsrEngine = Literal["auto", "whisper", "pocketsphinx"]
VlmChatHandler = Literal["llava-1.5", "llava-1.6", "moondream", "nanollava", "minicpm-v-2.6", "qwen2.5-vl"]


def config_file_path() -> Path:
    """The TOML file read for settings; MODALGRAPH_CONFIG points elsewhere."""
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return platformdirs.user_config_path("modalgraph") / "config.toml"


def model_env_var(name: str) -> str:
    """`image-gen` -> `MODALGRAPH_MODEL_IMAGE_GEN`."""
    return MODEL_ENV_PREFIX + name.upper().replace("-", "_")


class Settings(BaseSettings):
    """Everything a user can configure. Field docs are shown by `modalgraph config show`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    data_dir: Path = Field(
        default_factory=lambda: platformdirs.user_data_path("modalgraph"),
        description="Where the index, sessions, artifacts and model cache live.",
    )
    profile: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="Which catalogue defaults to use; auto picks gpu when CUDA is present."
    )
    device: str = Field("auto", description="torch device for models: auto, cpu, cuda, cuda:N, mps.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float16 on CUDA, float32 elsewhere."
    )
    memory_budget_gb: float = Field(
        0.0, description="RAM/VRAM the model cache may hold before evicting; 0 means 60% of what is free."
    )
    # The LLM that plans and answers.
    llm_backend: LLMBackend = Field("llamacpp", description="llamacpp, openai, transformers or scripted.")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible server URL (vLLM, Ollama...).")
    llm_model: str | None = Field(None, description="Model name sent to the OpenAI-compatible server.")
    llm_api_key: str | None = Field(None, description="API key for the server; OPENAI_API_KEY also works.")
    llm_timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for one LLM reply.")
    llm_script: Path | None = Field(None, description="JSON list of scripted replies (tests and demos).")
    n_ctx: int = Field(4096, ge=512, description="Context length for local models.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads for llama.cpp; default: all cores.")
    n_gpu_layers: int = Field(-1, description="Layers llama.cpp puts on the GPU when it has one (-1: all).")
    flash_attn: bool = Field(
        False,
        description="llama.cpp's fused attention (flash attention): a long prompt evaluated in 0.78x the "
        "time on two CPU threads, but plans come out slightly different and are not yet re-measured.",
    )
    prompt_cache_dir: Path | None = Field(
        None,
        description="Where llama.cpp's evaluated prompt states are saved, so a new process skips the "
        "planner's long instructions; default DATA_DIR/cache/llama-state. Safe to delete.",
    )
    cache_dir: Path = Field(
        default_factory=lambda: platformdirs.user_cache_path("modalgraph"),
        description="Tables any process can rebuild from the installed packages (the place names, folded "
        "once per package version instead of in every process). Safe to delete.",
    )
    temperature: float = Field(0.2, ge=0.0, le=2.0, description="Sampling temperature for answers.")
    max_answer_tokens: int = Field(512, ge=16, description="Longest answer the LLM may write.")
    max_steps: int = Field(8, ge=1, le=32, description="Most steps one plan may have.")
    plan_retries: int = Field(1, ge=0, le=3, description="Retries of an invalid plan, shown the error.")
    history_turns: int = Field(4, ge=0, description="Earlier turns shown to the planner and responder.")
    one_call: bool = Field(
        True,
        description="Let the planning call answer a turn that needs no tool, where the backend can "
        "(llama.cpp): one generation instead of a plan call and an answer call. Off: always two calls.",
    )
    # Models: logical name -> local path or hub id, over the catalogue's defaults.
    models: dict[str, str] = Field(default_factory=dict, description="Per-model overrides (path or hub id).")
    hub_timeout_s: float = Field(5.0, gt=0, description="Seconds before an unreachable hub is skipped.")
    extra_tools: list[str] = Field(default_factory=list, description="More tools, as module:Class.")
    mcp_servers: list[McpServerSpec] = Field(
        default_factory=list,
        description="MCP servers whose tools the planner may use, as SERVER__TOOL: [[mcp_servers]] tables "
        "in the file, or JSON in MODALGRAPH_MCP_SERVERS; each {name, command=[...]} or {name, url, token?}.",
    )
    # Generators (images, video, sound).
    cpu_offload: bool = Field(
        False, description="On CUDA, keep generator parts in RAM and move each to the GPU only while it runs."
    )
    attention_slicing: bool = Field(
        False, description="Compute attention in slices: less memory, a bit slower."
    )
    vae_tiling: bool = Field(
        False, description="Decode images and frames in tiles: big sizes in less memory."
    )
    safety_checker: bool = Field(
        True, description="Run a generator's safety checker where the model ships one."
    )
    # The NExT-GPT output projectors (conditioning="projector" in the generate tools).
    projector_llm: str | None = Field(
        None,
        description="LLM whose hidden states feed the projectors: a catalogue name (planner, planner-hf) "
        "or a path to a .gguf file or transformers folder; default: the planner of llm_backend.",
    )
    projector_image: Path | None = Field(
        None, description="Image projector folder; default DATA_DIR/projectors/image."
    )
    projector_video: Path | None = Field(
        None, description="Video projector folder; default DATA_DIR/projectors/video."
    )
    projector_audio: Path | None = Field(
        None, description="Audio projector folder; default DATA_DIR/projectors/audio."
    )
    # Sessions.
    sessions_url: str | None = Field(
        None,
        description="A PostgreSQL URL (postgresql://user:password@host:5432/db) to keep sessions on a "
        "server, shared by many processes and machines; unset means SQLite in the data dir. Needs "
        "`pip install 'modalgraph[postgres]'`.",
    )
    # Image library.
    chroma_host: str | None = Field(None, description="Chroma server host; unset means embedded on disk.")
    chroma_port: int = Field(8000, description="Chroma server port.")
    clip_batch_size: int = Field(32, ge=1, description="Images per CLIP forward pass when indexing.")
    index_max_file_mb: float = Field(
        200.0,
        gt=0,
        description="Largest file `modalgraph index` reads, in MB (decided from the file's size, before "
        "reading it); bigger files are skipped and listed with the reason.",
    )
    index_max_megapixels: float = Field(
        100.0,
        gt=0,
        description="Most pixels `modalgraph index` decodes for one image, in millions, read from the "
        "image's header before decoding (JPEGs decode at reduced scale, so only the reduced size counts). "
        "Decoding needs 3-4 bytes per pixel per worker; bigger images are skipped and listed.",
    )
    watch_library: bool = Field(
        False,
        description="`modalgraph serve` also watches the indexed folders and keeps the index current "
        "(new, changed, moved and deleted photos), as `modalgraph index --watch` does.",
    )
    # Looking at images.
    vlm_mmproj: Path | None = Field(
        None, description="The vision projector (mmproj .gguf) when the vlm model is a LLaVA GGUF."
    )
    vlm_chat_handler: VlmChatHandler = Field(
        "llava-1.5", description="llama.cpp chat handler for a GGUF vlm: the model's family."
    )
    vlm_max_new_tokens: int = Field(160, ge=8, le=2048, description="Longest description the VLM writes.")
    # Speech.
    tts_engine: TtsEngine = Field(
        "auto", description="auto tries edge-tts, then Piper, then espeak-ng; or name one engine."
    )
    tts_voice: str | None = Field(None, description="Default voice when a request names none.")
    edge_timeout_s: float = Field(
        3.0, gt=0, le=60, description="Seconds edge-tts may take to start answering before Piper takes over."
    )
    tts_max_chars: int = Field(200_000, ge=1, description="Longest text speak reads (it is read in chunks).")
    play_audio: bool = Field(True, description="Play spoken answers (--speak) when an audio player exists.")
    # Hearing.
    asr_engine: AsrEngine = Field(
        "auto",
        description="auto: Whisper when its weights are present, else PocketSphinx (English, weaker); "
        "or name one engine.",
    )
    asr_beams: int = Field(
        1, ge=1, le=10, description="Whisper's beam width: 1 is greedy and fastest; openai's own uses 5."
    )
    asr_max_minutes: float = Field(
        240.0, gt=0, description="Longest recording transcribe reads, in minutes (it is read in blocks)."
    )
    # The web page (`modalgraph serve`).
    web_max_upload_mb: float = Field(
        25.0, gt=0, le=2048, description="Largest file the web page accepts as an upload, in MB."
    )
    thumbnail_cache_mb: float = Field(
        512.0,
        gt=0,
        description="Most disk the web page's photo thumbnails may take, in MB (oldest go first).",
    )

    @field_validator(
        "data_dir",
        "prompt_cache_dir",
        "cache_dir",
        "llm_script",
        "vlm_mmproj",
        "projector_image",
        "projector_video",
        "projector_audio",
        mode="before",
    )
    @classmethod
    def _expand(cls, value: Any) -> Any:
        return Path(value).expanduser() if isinstance(value, (str, Path)) and str(value) else value

    @field_validator("sessions_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("give a postgresql:// URL, or leave it unset for SQLite in the data dir")
        return value or None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        from pydantic_settings import TomlConfigSettingsSource

        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, config_file_path()))

    def model_override(self, name: str) -> str | None:
        """MODALGRAPH_MODEL_<NAME> wins over the `models` table of the config file."""
        return os.environ.get(model_env_var(name)) or self.models.get(name)

    # Derived locations: one place decides the layout of the data dir.
    @property
    def sessions_db(self) -> Path:
        return self.data_dir / "sessions.sqlite"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def web_cache_dir(self) -> Path:
        """The web page's uploads and the copies it serves (Gradio's cache), apart from other apps'."""
        return self.data_dir / "web-cache"

    @property
    def thumbnails_dir(self) -> Path:
        """Small previews of the library's photos and the generated images, by content hash."""
        return self.data_dir / "thumbnails"

    def projector_dir(self, modality: str) -> Path:
        """Where the trained output projector for `modality` lives."""
        explicit = getattr(self, f"projector_{modality}", None)
        return explicit if explicit is not None else self.data_dir / "projectors" / modality

    def ensure_data_dir(self) -> Path:
        """Create the data dir, failing with one line that names the setting when it is not writable."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / ".write-probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"data dir {self.data_dir} is not writable ({exc.strerror or exc}); "
                f"set MODALGRAPH_DATA_DIR to a writable folder"
            ) from None
        return self.data_dir


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation and TOML errors into one-line ConfigErrors."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']} (see `modalgraph config show`)") from None
    except ValueError as exc:  # a malformed TOML file
        raise ConfigError(f"cannot read {config_file_path()}: {exc}") from None


def describe_sources(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, value, where it came from) for every setting, for `modalgraph config show`."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    path = config_file_path()
    file_values: dict[str, Any] = {}
    if path.is_file():
        file_values = tomllib.loads(path.read_text())
    rows = []
    for name in Settings.model_fields:
        env = f"{ENV_PREFIX}{name.upper()}"
        if env in os.environ:
            origin = f"env {env}"
        elif name in file_values:
            origin = f"file {path}"
        else:
            origin = "default"
        value = getattr(settings, name)
        if name == "llm_api_key" and value:
            value = "***"
        if name == "sessions_url" and value:
            value = url_without_password(value)
        if name == "mcp_servers":
            shown = [
                {**server.model_dump(exclude_defaults=True), **({"token": "***"} if server.token else {})}
                for server in value
            ]
            value = json.dumps(shown)
        rows.append((name, str(value), origin))
    for key, value in sorted(os.environ.items()):
        if key.startswith(MODEL_ENV_PREFIX):
            rows.append(
                (f"model {key[len(MODEL_ENV_PREFIX) :].lower().replace('_', '-')}", value, f"env {key}")
            )
    return rows


def url_without_password(url: str) -> str:
    """The URL as it may be shown: its password, if any, as `***`."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=user + host))
