"""Piper: offline neural speech from a local voice (the catalogue's `tts` entry), written as WAV."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.errors import ModalgraphError, one_line
from agent.tts.engine import EngineOutput, EngineUnavailable, SpeechRequest, choose_voice
from agent.tts.wav_file import WavAppender, wav_output

if TYPE_CHECKING:
    from agent.models.host import ModelHost

TTS_MODEL = "tts"


def voice_name(onnx: Path) -> str:
    """en_US-joe-medium.onnx -> en_US-joe-medium: the name Piper's own voice list uses."""
    return onnx.name.removesuffix(".onnx")


def _accepts(name: str) -> Any:
    parts = name.lower().split("-")
    speaker = parts[1] if len(parts) > 1 else name.lower()
    return lambda asked: asked.lower() in (name.lower(), speaker, f"piper:{name.lower()}")


def load_voice(app: ModelHost, onnx: Path) -> Any:
    """The PiperVoice for `onnx`, loaded once and kept in the model cache (about 60 MB)."""

    def loader() -> Any:
        from piper import PiperVoice

        try:
            return PiperVoice.load(onnx, config_path=onnx.with_name(onnx.name + ".json"))
        except Exception as exc:  # onnxruntime raises its own types for a corrupt model
            raise EngineUnavailable(f"cannot load the Piper voice {onnx}: {one_line(exc)}") from None

    return app.model_cache.get(f"tts-piper:{onnx}", loader, "cpu", nbytes=onnx.stat().st_size)


class PiperEngine:
    name = "piper"

    def __init__(self, app: ModelHost) -> None:
        self.app = app

    def speak(self, request: SpeechRequest, out: Path) -> EngineOutput:
        if importlib.util.find_spec("piper") is None:
            raise EngineUnavailable("piper-tts is not installed (pip install piper-tts)")
        try:
            onnx = self.app.catalogue.resolve(TTS_MODEL)
        except ModalgraphError as exc:
            raise EngineUnavailable(one_line(exc)) from None
        name = voice_name(onnx)
        _voice, note = choose_voice(self.name, request.voice, name, _accepts(name))
        voice = load_voice(self.app, onnx)
        from piper import SynthesisConfig

        # Piper's length_scale is time per phoneme: slower speech is a longer scale.
        config = SynthesisConfig(length_scale=float(voice.config.length_scale) / request.rate)
        with WavAppender(out) as wav:
            for index, chunk in enumerate(request.chunks):
                request.check_cancel(index)
                try:
                    for audio in voice.synthesize(chunk, config):
                        wav.write(audio.audio_int16_bytes, audio.sample_rate)
                except Exception as exc:  # phonemizer or onnxruntime: let the next engine try
                    raise EngineUnavailable(f"Piper failed on chunk {index + 1}: {one_line(exc)}") from None
                request.on_chunk(index + 1, len(request.chunks))
        return wav_output(wav, self.name, "Piper", name, note)
