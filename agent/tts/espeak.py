"""espeak-ng: the robotic but always-available last resort (Debian's espeak-ng package), as WAV."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from agent.tts.engine import EngineOutput, EngineUnavailable, SpeechRequest, choose_voice
from agent.tts.wav_file import WavAppender, wav_output

DEFAULT_VOICE = "en-us"
BASE_WORDS_PER_MINUTE = 175  # espeak-ng's own default speed
INSTALL_HINT = "apt-get install espeak-ng (or brew install espeak-ng)"


def espeak_binary() -> str | None:
    return shutil.which("espeak-ng") or shutil.which("espeak")


@functools.lru_cache(maxsize=2)
def installed_voices(binary: str) -> frozenset[str]:
    """Language codes and voice names `espeak-ng --voices` lists, lower-cased."""
    try:
        listing = subprocess.run([binary, "--voices"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset({DEFAULT_VOICE})
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        # Language code, voice name, voice file (roa/fr) and its last part, and the other codes the
        # voice answers to, listed as "(fr 5)".
        names.update({fields[1], fields[3], fields[4], fields[4].rsplit("/", 1)[-1]})
        names.update(re.findall(r"\((\S+) \d+\)", " ".join(fields[5:])))
    return frozenset(name.lower() for name in names if name)


def words_per_minute(rate: float) -> int:
    return max(80, min(450, round(BASE_WORDS_PER_MINUTE * rate)))


class EspeakEngine:
    name = "espeak-ng"

    def speak(self, request: SpeechRequest, out: Path) -> EngineOutput:
        binary = espeak_binary()
        if binary is None:
            raise EngineUnavailable(f"espeak-ng is not installed ({INSTALL_HINT})")
        voices = installed_voices(binary)

        def accepts(asked: str) -> bool:
            # "en-us+f3" is voice en-us with the f3 variant.
            return asked.lower().split("+", 1)[0] in voices

        voice, note = choose_voice(self.name, request.voice, DEFAULT_VOICE, accepts)
        speed = str(words_per_minute(request.rate))
        with tempfile.TemporaryDirectory(prefix="espeak-") as work, WavAppender(out) as wav:
            part = Path(work) / "part.wav"
            for index, chunk in enumerate(request.chunks):
                request.check_cancel(index)
                # Text goes in on stdin: no argument-length limit, and a leading "-" is not an option.
                try:
                    done = subprocess.run(
                        [binary, "-v", voice, "-s", speed, "-w", str(part), "--stdin"],
                        input=chunk.encode("utf-8"),
                        capture_output=True,
                        timeout=120,
                    )
                except (OSError, subprocess.SubprocessError) as exc:
                    raise EngineUnavailable(f"espeak-ng failed: {exc}") from None
                if done.returncode != 0 or not part.is_file():
                    error = done.stderr.decode(errors="replace").strip().splitlines()
                    raise EngineUnavailable(f"espeak-ng failed: {error[0] if error else done.returncode}")
                wav.append_wav(part)
                request.on_chunk(index + 1, len(request.chunks))
        return wav_output(wav, self.name, "espeak-ng", voice, note)
