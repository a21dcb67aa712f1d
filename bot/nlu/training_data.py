"""The understanding's training data: Rasa 3.x NLU YAML (``dialogs/nlu/*.yml``) read into plain examples.

Entity markup (``[三号楼]{"entity": "building", "value": "3"}``, ``[502](room)``) is stripped to get the
plain text; entities themselves come from :func:`bot.nlu.entities.extract_entities` at inference.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from bot.nlu.base import Intent


@dataclass(frozen=True, slots=True)
class AnnotatedEntity:
    """An entity as annotated in the training data (offsets into the stripped, un-normalized text)."""

    type: str
    value: str
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TrainingExample:
    text: str  # markup stripped, not normalized
    intent: Intent
    entities: tuple[AnnotatedEntity, ...]
    source: str  # "file.yml:line"


# [text](type) or [text]{"entity": "type", "value": "canonical"}
_MARKUP = re.compile(r"\[(?P<text>[^\[\]]+)\](?:\((?P<type>[a-z_]+)\)|(?P<json>\{[^{}]*\}))")


def strip_markup(example: str) -> tuple[str, tuple[AnnotatedEntity, ...]]:
    """Plain text and entities of one Rasa training example. Raises ValueError on malformed markup."""
    parts: list[str] = []
    entities: list[AnnotatedEntity] = []
    pos = 0
    length = 0
    for m in _MARKUP.finditer(example):
        before = example[pos : m.start()]
        parts.append(before)
        length += len(before)
        span = m["text"]
        if m["type"]:
            kind, value = m["type"], span
        else:
            spec = json.loads(m["json"])
            if not isinstance(spec, dict) or not isinstance(spec.get("entity"), str):
                raise ValueError(f"entity annotation without 'entity': {m[0]}")
            kind = spec["entity"]
            value = str(spec.get("value", span))
        entities.append(AnnotatedEntity(kind, value, span, length, length + len(span)))
        parts.append(span)
        length += len(span)
        pos = m.end()
    parts.append(example[pos:])
    text = "".join(parts)
    if "](" in text or "]{" in text:
        raise ValueError(f"unparsed entity markup in {example!r}")
    return text, tuple(entities)


def training_dir() -> Traversable:
    """``dialogs/nlu`` as shipped (package data), wherever the package is installed."""
    return resources.files("dialogs").joinpath("nlu")


def _training_files(directory: Traversable | Path | None) -> list[Traversable | Path]:
    root = directory if directory is not None else training_dir()
    return sorted((f for f in root.iterdir() if f.name.endswith((".yml", ".yaml"))), key=lambda f: f.name)


def load_training_data(directory: Traversable | Path | None = None) -> list[TrainingExample]:
    """Every example in the Rasa-format YAML files of ``directory`` (default: the shipped data).

    Raises ValueError naming the file on anything that is not valid Rasa 3.x NLU data with known intents.
    """
    examples: list[TrainingExample] = []
    for file in _training_files(directory):
        text = file.read_text(encoding="utf-8")
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{file.name}: invalid YAML: {exc}") from exc
        if (
            not isinstance(doc, dict)
            or str(doc.get("version")) != "3.1"
            or not isinstance(doc.get("nlu"), list)
        ):
            raise ValueError(f'{file.name}: expected Rasa NLU data: version: "3.1" and an nlu: list')
        line_of: dict[str, int] = {}
        for number, line_text in enumerate(text.splitlines(), start=1):
            line_of.setdefault(line_text.strip(), number)
        for block in doc["nlu"]:
            if (
                not isinstance(block, dict)
                or "intent" not in block
                or not isinstance(block.get("examples"), str)
            ):
                raise ValueError(f"{file.name}: every nlu item needs intent: and examples: |")
            try:
                intent = Intent(block["intent"])
            except ValueError:
                raise ValueError(f"{file.name}: unknown intent {block['intent']!r}") from None
            for raw in block["examples"].splitlines():
                if not raw.strip():
                    continue
                if not raw.startswith("- "):
                    raise ValueError(f"{file.name}: example lines start with '- ': {raw!r}")
                example = raw[2:].strip()
                line = line_of.get(raw.strip(), 0)
                try:
                    plain, entities = strip_markup(example)
                except ValueError as exc:
                    raise ValueError(f"{file.name}:{line}: {exc}") from None
                examples.append(TrainingExample(plain, intent, entities, f"{file.name}:{line}"))
    return examples


def training_data_hash(directory: Traversable | Path | None = None) -> str:
    digest = hashlib.sha256()
    for file in _training_files(directory):
        digest.update(file.name.encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
