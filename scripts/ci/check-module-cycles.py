#!/usr/bin/env python3
"""Finds import cycles between sibling modules of each Rust crate in the workspace.

For every module with children, the children (each taken with all its descendants) are the
nodes of a graph, and a child A has an edge to a sibling B when code in A (or below A) names
a path into B (`crate::...`, `super::...`, `self::...` or a bare sibling name imported from the
parent). A cycle in any such graph is reported and the script exits 1. Parent-to-child
references (a `mod.rs` re-exporting its children) are not edges: a module may depend on its
own parts.

Usage: check-module-cycles.py [CRATE_SRC_DIR ...] (default: crates/*/src)
"""
import os
import re
import sys
from glob import glob

MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)
# Paths starting with crate::, super::, self:: (possibly several super::).
PATH = re.compile(r"\b((?:crate|super|self)(?:::(?:super|self))*(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)
COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
STRING = re.compile(r'"(?:\\.|[^"\\])*"')


def module_tree(src):
    """Maps module paths (tuples) to file paths, following `mod x;` declarations."""
    mods = {}

    def visit(path, file):
        mods[path] = file
        text = open(file, encoding="utf-8").read()
        base = os.path.dirname(file)
        stem = os.path.splitext(os.path.basename(file))[0]
        child_dir = base if stem in ("lib", "main", "mod") else os.path.join(base, stem)
        for name in MOD_DECL.findall(text):
            for cand in (os.path.join(child_dir, name + ".rs"), os.path.join(child_dir, name, "mod.rs")):
                if os.path.exists(cand):
                    visit(path + (name,), cand)
                    break

    root = os.path.join(src, "lib.rs")
    if not os.path.exists(root):
        root = os.path.join(src, "main.rs")
    visit((), root)
    return mods


def references(mods, path, text):
    """Module paths (tuples, as deep as they resolve) that `text`, in module `path`, names."""
    text = STRING.sub('""', COMMENT.sub("", text))
    found = set()
    paths = PATH.findall(text)
    for prefix, group in USE_GROUP.findall(text):
        for item in re.split(r"[,\s]+", group):
            item = item.strip("{} ")
            if item and item not in ("self", "*"):
                paths.append(prefix + "::" + item.split("::")[0])
            elif item == "self":
                paths.append(prefix)
    for p in paths:
        parts = p.split("::")
        if parts[0] == "crate":
            cur, rest = (), parts[1:]
        else:
            cur, rest = path, parts
            while rest and rest[0] in ("self", "super"):
                if rest[0] == "super":
                    cur = cur[:-1]
                rest = rest[1:]
        resolved = cur
        for seg in rest:
            if resolved + (seg,) in mods:
                resolved = resolved + (seg,)
            else:
                break
        found.add(resolved)
    return found


def cycles_of(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return out


def check(src):
    mods = module_tree(src)
    refs = {p: references(mods, p, open(f, encoding="utf-8").read()) for p, f in mods.items()}
    problems = []
    for parent in sorted(mods):
        children = sorted(p for p in mods if len(p) == len(parent) + 1 and p[: len(parent)] == parent)
        if len(children) < 2:
            continue
        edges = {}
        for child in children:
            for p in mods:
                if p[: len(child)] != child:
                    continue
                for r in refs[p]:
                    if len(r) > len(parent) and r[: len(parent)] == parent:
                        target = r[: len(parent) + 1]
                        if target != child:
                            edges.setdefault(child, set()).add(target)
        for comp in cycles_of(children, edges):
            names = ["::".join(c) for c in comp]
            detail = "; ".join(
                f"{'::'.join(a)} -> {'::'.join(b)}" for a in comp for b in sorted(edges.get(a, ())) if b in comp
            )
            problems.append(f"{src}: cycle among {', '.join(names)} ({detail})")
    return problems


def main():
    srcs = sys.argv[1:] or sorted(glob("crates/*/src"))
    problems = [p for s in srcs for p in check(s)]
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"no module cycles in {len(srcs)} crates")


if __name__ == "__main__":
    main()
