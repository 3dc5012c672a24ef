"""Which module gets which formats: rules matching module names (glob or regex), as data."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from frugal.formats import get_format

ROLES = ("weight", "input", "grad")


@dataclass
class QuantRule:
    """Modules whose name matches `pattern` (glob, or regex if `regex`) get these formats;
    None leaves that tensor in full precision. `grad` quantizes the gradient flowing back
    into the module's output (training)."""

    pattern: str
    weight: str | None = None
    input: str | None = None
    grad: str | None = None
    regex: bool = False

    def __post_init__(self) -> None:
        for role in ROLES:
            name = getattr(self, role)
            if name is not None:
                get_format(name)  # fail early on an unknown format name
        if self.regex:
            re.compile(self.pattern)

    def matches(self, module_name: str) -> bool:
        if self.regex:
            return re.fullmatch(self.pattern, module_name) is not None
        return fnmatch.fnmatchcase(module_name, self.pattern)


@dataclass
class QuantConfig:
    """Ordered rules; the first rule matching a module's name applies to it."""

    rules: list[QuantRule] = field(default_factory=list)

    def rule_for(self, module_name: str) -> QuantRule | None:
        return next((r for r in self.rules if r.matches(module_name)), None)

    def to_dict(self) -> dict:
        return {"rules": [asdict(r) for r in self.rules]}

    @classmethod
    def from_dict(cls, data: dict) -> QuantConfig:
        return cls([QuantRule(**r) for r in data.get("rules", [])])

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> QuantConfig:
        p = Path(text_or_path)
        text = p.read_text() if p.suffix == ".json" and p.is_file() else str(text_or_path)
        return cls.from_dict(json.loads(text))

    @classmethod
    def weights_only(cls, fmt: str, pattern: str = "*") -> QuantConfig:
        """Every matching module's weight in `fmt`, nothing else; `pattern` may list several
        globs separated by commas (e.g. "model.*.layers.*,proj_out")."""
        globs = [p.strip() for p in pattern.split(",") if p.strip()]
        return cls([QuantRule(p, weight=fmt) for p in globs])
