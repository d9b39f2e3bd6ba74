"""Merging the config levels into what an instance gets.

The rule, in precedence order (Global < Environment < Layer; at each level S3 <
DynamoDB): a file from a higher source **replaces** the same path from a lower one,
except that two ``*.json`` files whose top level is an object are **deep-merged**:
objects merge key by key, recursively, and any other value (string, number, list,
null) from the higher source replaces the lower one whole. A ``*.json`` file that is
not valid JSON, or nests deeper than ``nesting.MAX_NESTING`` levels, is refused. The
merged view remembers the source of every file and, for JSON files, of every key,
which is what ``skynet config show`` prints.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from skynet_tasks.config.nesting import check_json_text, check_value
from skynet_tasks.config.paths import ConfigError, kind_of, mode_of, placed_at
from skynet_tasks.config.sources import Piece

KeyPath = tuple[str, ...]


@dataclass
class MergedFile:
    """One config file after the merge: its content, the highest source behind it and, for JSON, each key's source."""

    path: str
    data: bytes
    source: str  # the highest source that contributed
    key_sources: dict[KeyPath, str] = field(default_factory=dict)  # JSON leaves -> source

    @property
    def mode(self) -> int:
        """The file mode its kind gets: the worker's alone for deploy and TLS keys, else the app's group's too."""
        return mode_of(kind_of(self.path))

    @property
    def placed_at(self) -> str:
        """Where the file lands inside a config generation."""
        return placed_at(self.path)


@dataclass
class MergedConfig:
    """An instance's whole merged config: every file by its config path."""

    files: dict[str, MergedFile]

    @property
    def version(self) -> str:
        """A digest of everything that would be written: same version, same files."""
        digest = hashlib.sha256()
        for path in sorted(self.files):
            item = self.files[path]
            digest.update(f"{item.placed_at}\0{item.mode:o}\0{len(item.data)}\0".encode())
            digest.update(item.data)
        return f"cfg-{digest.hexdigest()[:16]}"

    def origins(self) -> list[tuple[str, str, str]]:
        """(file, key or '', source) for every file and every JSON key, sorted."""
        rows = []
        for path in sorted(self.files):
            item = self.files[path]
            if item.key_sources:
                rows += [(path, ".".join(key), source) for key, source in sorted(item.key_sources.items())]
            else:
                rows.append((path, "", item.source))
        return rows


def merge(sources: list[dict[str, Piece]]) -> MergedConfig:
    """Merge ``sources`` (lowest precedence first) by the rule above."""
    files: dict[str, MergedFile] = {}
    for pieces in sources:
        for path in sorted(pieces):
            piece = pieces[path]
            lower = files.get(path)
            files[path] = _merged(lower, piece) if lower is not None else _first(piece)
    check_placement(files)
    return MergedConfig(files)


def _first(piece: Piece) -> MergedFile:
    merged = MergedFile(piece.path, piece.data, piece.source)
    value = _json_object(piece)
    if value is not None:
        merged.key_sources = {key: piece.source for key in _leaves(value)}
    return merged


def _merged(lower: MergedFile, piece: Piece) -> MergedFile:
    higher_value = _json_object(piece)
    lower_value = _json_object(Piece(lower.path, lower.data, lower.source)) if higher_value is not None else None
    if higher_value is None or lower_value is None:
        return _first(piece)  # whole-file replacement
    key_sources = dict(lower.key_sources)
    for key in _leaves(higher_value):
        for old in [k for k in key_sources if k[:len(key)] == key or key[:len(k)] == k]:
            del key_sources[old]
        key_sources[key] = piece.source
    value = _deep_merge(lower_value, higher_value)
    data = (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()
    return MergedFile(piece.path, data, piece.source, key_sources)


def _json_object(piece: Piece) -> dict[str, Any] | None:
    """The piece's JSON object if it is a ``*.json`` file holding one; None for other files."""
    if not piece.path.endswith(".json"):
        return None
    check_json_text(piece.data, piece.source)  # before the parser, which recurses
    try:
        value = json.loads(piece.data)
    except (UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{piece.source} is not valid JSON: {error}") from None
    check_value(value, piece.source)
    return value if isinstance(value, dict) else None


def _leaves(value: dict[str, Any], prefix: KeyPath = ()) -> list[KeyPath]:
    leaves: list[KeyPath] = []
    for key, inner in value.items():
        if isinstance(inner, dict) and inner:
            leaves += _leaves(inner, (*prefix, key))
        else:
            leaves.append((*prefix, key))
    return leaves


def _deep_merge(lower: dict[str, Any], higher: dict[str, Any]) -> dict[str, Any]:
    result = dict(lower)
    for key, value in higher.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def check_placement(files: dict[str, MergedFile]) -> None:
    """Two paths may not land on one file, and a file may not also be a folder."""
    placed: dict[str, str] = {}
    for path, item in files.items():
        other = placed.get(item.placed_at)
        if other is not None:
            raise ConfigError(f"config files {other!r} and {path!r} would both be written to {item.placed_at!r}")
        placed[item.placed_at] = path
    for target, path in placed.items():
        parts = target.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in placed:
                raise ConfigError(f"config path {placed[folder]!r} is a file and also the folder of {path!r}")
