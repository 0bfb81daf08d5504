"""Where a converted BigDL model stops: at a named feature layer, or just before its classifier.

Works on ``Converted`` trees (``training.bigdl_import.convert``): a path of child indices leads to
the chosen layer, and ``cut`` returns the model computed up to it twice, as a torch module and as
BigDL's own module (a prefix of a Sequential, or BigDL's sub-graph of a StaticGraph, the Analytics
Zoo ``new_graph`` habit), so the two can be checked against each other.
"""
from dataclasses import dataclass, field

from torch import nn

from .spark import quiet_stdout

SOFTMAXES = ("SoftMax", "LogSoftMax")
CHAINS = ("Sequential", "StaticGraph")      # containers a feature layer may sit in (one path through them)


@dataclass
class Converted:
    """One BigDL module and its torch twin; ``children`` mirror Sequential modules or graph nodes in order."""
    kind: str                 # BigDL class name, e.g. "SpatialConvolution"
    name: str                 # BigDL layer name (getName)
    jvm: object               # the Scala module (py4j)
    module: nn.Module         # its torch twin
    children: list = field(default_factory=list)
    graph_nodes: list = field(default_factory=list)   # StaticGraph: py4j nodes, same order as children

    def names(self) -> list:
        return [self.name] + [n for child in self.children for n in child.names()]



def path_to(c: Converted, name: str):
    """Child indices from ``c`` down to the layer called ``name`` (None if absent).  Only Sequential and
    graph containers have a single path through them; a layer inside a branch is refused."""
    if c.name == name:
        return []
    for i, child in enumerate(c.children):
        path = path_to(child, name)
        if path is not None:
            if c.kind not in CHAINS:
                raise SystemExit(f"error: BigDL layer {name!r} sits inside {c.kind} {c.name!r}, whose branches run "
                                 "side by side; choose a layer on the main path (e.g. that container itself)")
            return [i] + path
    return None


def classifier_path(c: Converted):
    """Path to the classifier's Linear: the last Linear once trailing SoftMax/LogSoftMax are passed over."""
    if c.kind == "Linear":
        return []
    if c.kind == "Sequential":
        for i in reversed(range(len(c.children))):
            if c.children[i].kind not in SOFTMAXES:
                path = classifier_path(c.children[i])
                return None if path is None else [i] + path
    if c.kind == "StaticGraph":
        i = c.module.output
        while c.children[i].kind in SOFTMAXES and len(c.module.sources[i]) == 1:
            i = c.module.sources[i][0][0]
        path = classifier_path(c.children[i])
        return None if path is None else [i] + path
    return None


def _chain(torch_parts: list, jvm_parts: list):
    """Run parts one after the other, in torch and on the JVM (None parts and no parts are identities)."""
    torch_parts = [p for p in torch_parts if not isinstance(p, nn.Identity)]
    jvm_parts = [p for p in jvm_parts if p is not None]
    module = torch_parts[0] if len(torch_parts) == 1 else nn.Sequential(*torch_parts)
    if len(jvm_parts) == 1:
        return module, jvm_parts[0]
    with quiet_stdout():
        from bigdl.dllib.nn.layer import Identity, Sequential
        jvm = (Sequential() if jvm_parts else Identity()).value
    for part in jvm_parts:
        jvm.add(part)
    return module, jvm


def cut(c: Converted, path: list, inclusive: bool):
    """``c`` computed only up to the layer at ``path`` (that layer included or not), as (torch, JVM module)."""
    if not path:
        return (c.module, c.jvm) if inclusive else (nn.Identity(), None)
    i, rest = path[0], path[1:]
    if c.kind == "Sequential":
        inner = cut(c.children[i], rest, inclusive)
        return _chain([k.module for k in c.children[:i]] + [inner[0]], [k.jvm for k in c.children[:i]] + [inner[1]])
    if not rest and inclusive:
        return c.module.up_to(i), _sub_graph(c, i)
    sources = c.module.sources[i]
    if len(sources) > 1 or (sources and sources[0][1] is not None):
        raise SystemExit(f"error: cannot stop inside graph node {c.children[i].name!r}: it takes several inputs; "
                         "choose a graph node as the feature layer")
    prefix = (c.module.up_to(sources[0][0]), _sub_graph(c, sources[0][0])) if sources else (nn.Identity(), None)
    inner = cut(c.children[i], rest, inclusive)
    return _chain([prefix[0], inner[0]], [prefix[1], inner[1]])


def _sub_graph(c: Converted, index: int):
    """BigDL's own graph from the same input to node ``index`` (the Analytics Zoo ``new_graph`` habit)."""
    with quiet_stdout():
        from bigdl.dllib.nn.layer import Model, Node
        root = next(i for i, s in enumerate(c.module.sources) if not s)
        return Model([Node.of(c.graph_nodes[root])], [Node.of(c.graph_nodes[index])]).value
