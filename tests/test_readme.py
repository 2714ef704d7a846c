"""The README's code runs unchanged.

Each ```python block of README.md runs in a fresh Python process (in a
temporary folder), as a user would paste it. Blocks that need the bundled
pretrained model are skipped, with the reason, while no model is bundled.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import particleseg

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}[ \t]*\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def _needs_pretrained(code: str) -> bool:
    """Python that calls pretrained(), or an analyze/evaluate command without --model."""
    if re.search(r"\bpretrained\(", code):
        return True
    return bool(re.search(r"\b(analyze|evaluate)\b", code)) and "--model" not in code


def _bundled_models() -> list[str]:
    return [m["name"] for m in particleseg.pretrained_models()]


def _skip_reason(code: str) -> str | None:
    if _needs_pretrained(code) and "emps" not in _bundled_models():
        return "needs the pretrained 'emps' model, which is not bundled yet (pretrained_models() is empty)"
    return None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(NO_ALBUMENTATIONS_UPDATE="1", MPLBACKEND="Agg")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


PYTHON_BLOCKS = _blocks("python")


def test_readme_has_python_blocks():
    assert len(PYTHON_BLOCKS) >= 2


@pytest.mark.parametrize(
    "code", PYTHON_BLOCKS, ids=[f"python-block-{i}" for i in range(len(PYTHON_BLOCKS))]
)
def test_readme_python_block_runs(code, tmp_path):
    reason = _skip_reason(code)
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"README block failed:\n{code}\n{result.stderr[-4000:]}"
    # Every print() in the block printed something.
    n_prints = len(re.findall(r"^\s*print\(", code, flags=re.MULTILINE))
    printed = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(printed) >= n_prints, result.stdout


def _readme_commands() -> list[str]:
    """The `particleseg ...` lines of the README's bash blocks, comments removed."""
    commands = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("particleseg "):
                commands.append(line)
    return commands


@pytest.mark.parametrize("command", _readme_commands())
def test_readme_command_runs(command, tmp_path):
    """The quick-start command, e.g. `particleseg analyze --sample ...`."""
    if shutil.which("particleseg") is None:
        pytest.skip("the particleseg command is not installed")
    if "micrographs/" in command:
        pytest.skip("needs the user's own micrographs")
    reason = _skip_reason(command)
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        shlex.split(command), cwd=tmp_path, env=_env(), capture_output=True, text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = re.search(r"--out\s+(\S+)", command)
    if out:
        folder = tmp_path / out.group(1)
        assert (folder / "particles.csv").stat().st_size > 0
        assert (folder / "summary.csv").stat().st_size > 0
        assert list(folder.glob("*.png")), "no figures written"
