"""Read matters and community profiles from YAML, remembering where each value came from.

Data errors must name ``file:line`` so that whoever edits the YAML can fix it without guessing. The YAML
loader below therefore builds mappings and sequences that remember the line of every key and item, and
validation errors from pydantic are mapped back to those lines. Nothing here raises on bad data: every
problem becomes one message in :attr:`LoadResult.errors`; callers decide whether that is fatal.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from kb.model import CommunityProfile, Matter

KB_ROOT = Path(__file__).resolve().parent
"""The shipped knowledge base: ``matters/`` and ``communities/`` next to this module (package data)."""

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

M = TypeVar("M", bound=BaseModel)


class LinedDict(dict[Any, Any]):
    """A YAML mapping that knows its own line and the line of each key (1-based)."""

    line: int
    lines: dict[Hashable, int]


class LinedList(list[Any]):
    """A YAML sequence that knows its own line and the line of each item (1-based)."""

    line: int
    lines: list[int]


class _LineLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe YAML loading that records lines and reports duplicate keys (PyYAML silently keeps the last)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[tuple[int, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LinedDict:
        self.flatten_mapping(node)
        result = LinedDict()
        result.line = node.start_mark.line + 1
        result.lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in result:
                self.duplicate_keys.append((key_node.start_mark.line + 1, str(key)))
            result[key] = self.construct_object(value_node, deep=True)
            result.lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LinedList:
        result = LinedList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.lines = [child.start_mark.line + 1 for child in node.value]
        return result


_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _LineLoader.construct_sequence)


@dataclass(frozen=True, slots=True)
class Located(Generic[M]):
    """A validated record and where it is defined."""

    value: M
    path: Path
    line: int
    raw: LinedDict = field(compare=False, repr=False)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def where_of(self, *loc: int | str) -> str:
        """``path:line`` of a key inside this record, e.g. ``where_of("escalation", 1)``."""
        return f"{self.path}:{line_of(self.raw, loc) or self.line}"


@dataclass(slots=True)
class LoadResult:
    matters: list[Located[Matter]] = field(default_factory=list)
    profiles: list[Located[CommunityProfile]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def line_of(raw: Any, loc: Iterable[int | str]) -> int | None:
    """The line of the deepest element of ``loc`` that exists in ``raw`` (a pydantic error location)."""
    line = getattr(raw, "line", None)
    node = raw
    for part in loc:
        if isinstance(node, LinedDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, LinedList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            break
    return line


def _parse_yaml(path: Path, errors: list[str]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}:1: cannot read: {exc}")
        return None
    loader = _LineLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        errors.append(f"{path}:{line}: YAML syntax error: {problem}")
        return None
    except yaml.YAMLError as exc:
        errors.append(f"{path}:1: YAML error: {exc}")
        return None
    finally:
        loader.dispose()
    for line, key in loader.duplicate_keys:
        errors.append(f"{path}:{line}: duplicate key {key!r} (the later value would silently win)")
    return data


def _validate(model: type[M], raw: Any, path: Path, errors: list[str]) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            where = line_of(raw, err["loc"]) or getattr(raw, "line", 1)
            dotted = ".".join(str(p) for p in err["loc"]) or "(record)"
            label = raw.get("id") or raw.get("code") if isinstance(raw, dict) else None
            prefix = f"{label}: " if label else ""
            errors.append(f"{path}:{where}: {prefix}{dotted}: {err['msg']}")
        return None


def load_matters(directory: Path, result: LoadResult) -> None:
    """Each ``*.yml`` in ``directory`` is a list of matters."""
    for path in sorted(directory.glob("*.yml")):
        data = _parse_yaml(path, result.errors)
        if data is None:
            continue
        if not isinstance(data, LinedList):
            result.errors.append(f"{path}:{getattr(data, 'line', 1)}: a matters file must be a YAML list")
            continue
        for raw, line in zip(data, data.lines, strict=True):
            if not isinstance(raw, LinedDict):
                result.errors.append(f"{path}:{line}: a matter must be a mapping")
                continue
            matter = _validate(Matter, raw, path, result.errors)
            if matter is not None:
                result.matters.append(Located(matter, path, raw.line, raw))


def load_profiles(directory: Path, result: LoadResult) -> None:
    """Each ``*.yml`` in ``directory`` is one community profile."""
    for path in sorted(directory.glob("*.yml")):
        data = _parse_yaml(path, result.errors)
        if data is None:
            continue
        if not isinstance(data, LinedDict):
            result.errors.append(f"{path}:{getattr(data, 'line', 1)}: a community profile must be a mapping")
            continue
        profile = _validate(CommunityProfile, data, path, result.errors)
        if profile is not None:
            result.profiles.append(Located(profile, path, data.line, data))


def load(root: Path | None = None) -> LoadResult:
    """Load ``<root>/matters/*.yml`` and ``<root>/communities/*.yml`` (default: the shipped KB).

    Returns every record that validated on its own, plus messages for those that did not. Cross-record
    rules (unique ids, clarify targets, contacts a profile must have) are in :mod:`kb.check`.
    """
    root = KB_ROOT if root is None else root
    result = LoadResult()
    for sub in ("matters", "communities"):
        if not (root / sub).is_dir():
            result.errors.append(f"{root / sub}:1: folder missing")
    load_matters(root / "matters", result)
    load_profiles(root / "communities", result)
    return result
