"""``yaml.safe_load`` with a size budget checked before anything is constructed.

YAML aliases let a few hundred bytes stand for billions of nodes (the "billion laughs": each
level of ``&a [*b, *b, ...]`` multiplies the size). PyYAML builds such a document cheaply, as
shared objects, but whatever walks it afterwards (validation, json/yaml dumps, deep copies) pays
for every use of every alias. So the composed node graph's size, with each alias counted every
time it is used, is computed first (memoized: linear in the document's text) and a document past
``MAX_NODES`` is refused in one line."""

from __future__ import annotations

from typing import Any

import yaml

MAX_NODES = 200_000  # a spec of 10,000 explicit trials is ~100,000 nodes


class TooLarge(yaml.YAMLError):
    pass


def expanded_size(root: yaml.Node, stop: int) -> int:
    """Nodes in the document with aliases expanded (stops counting past ``stop``)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done or not children:
            sizes[id(node)] = min(stop + 1, 1 + sum(sizes.get(id(c), 0) for c in children))
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


class BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a document expanding past ``max_nodes`` before constructing it."""

    max_nodes = MAX_NODES

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        n = expanded_size(node, self.max_nodes)
        if n > self.max_nodes:
            raise TooLarge(f"the document expands to more than {self.max_nodes:,} YAML nodes (aliases counted at every "
                           "use): refused before building it")
        return self.construct_document(node)


def load(text: str | bytes) -> Any:
    """``yaml.safe_load`` within the node budget (TooLarge past it)."""
    return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
