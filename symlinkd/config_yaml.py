"""The YAML side of loading a configuration: the file read as a small regular file
(``config_files``), parsed with a SafeLoader that reports duplicate keys and refuses documents
whose aliases expand past a limit (a "billion laughs" document)."""

from __future__ import annotations

from typing import Any

import yaml

from symlinkd.config_checks import Problems
from symlinkd.config_files import NotReadable, read_small_file

MAX_CONFIG_BYTES = 1024 * 1024
# A real config is a few hundred nodes; aliases may multiply that (``<<: *mount``) but a
# "billion laughs" document expands to billions, and every later step (merge, schema, an error
# message quoting the value) would walk all of them.
MAX_EXPANDED_NODES = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a config that says ``farm:`` twice is a
    mistake worth reporting. Also refuses a document whose aliases expand past
    ``MAX_EXPANDED_NODES``, before anything walks it."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"aliases expand to more than {MAX_EXPANDED_NODES} values "
                "(each *name counts in full); write the values out", node.start_mark)
        return node


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes in ``node`` counting each alias use in full; O(distinct nodes) with ``memo``."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = MAX_EXPANDED_NODES + 1  # a node that contains itself counts as too big
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = size = min(size, MAX_EXPANDED_NODES + 1)
    return size


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # `<<: *defaults` — the keys it brings may be overridden
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except (ValueError, RecursionError) as exc:
        # an integer of 5000 digits (int() refuses it), or nesting deeper than Python recurses
        raise yaml.YAMLError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc


def read_config_file(path: str, explicit: bool, problems: Problems) -> dict[str, Any]:
    try:
        document = load_yaml(read_small_file(path, MAX_CONFIG_BYTES, "config file")
                              .decode("utf-8"))
    except FileNotFoundError:
        if explicit:
            problems.add((), f"config file {path} does not exist")
        return {}
    except NotReadable as exc:
        problems.add((), str(exc))
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problems.add((), f"cannot read config file {path}: {reason}")
        return {}
    except yaml.YAMLError as exc:
        problems.add((), f"{path} is not valid YAML: {yaml_error(exc)}")
        return {}
    if document is None:
        return {}
    if not isinstance(document, dict):
        problems.add((), f"{path} must hold a mapping of keys (farm:, mounts:, ...), "
                         f"not a {type(document).__name__}")
        return {}
    return document


def yaml_error(exc: yaml.YAMLError) -> str:
    # Never str(exc): PyYAML quotes the lines around the mistake, which may hold a secret.
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or type(exc).__name__
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark else what
