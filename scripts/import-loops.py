#!/usr/bin/env python3
"""Import loops between the files of a Rust module: pairs that import each other (A <-> B) and
longer cycles (strongly connected components of the file-level import graph).

Usage: scripts/import-loops.py <crate-src-dir> <module-path>...
e.g.   scripts/import-loops.py e2e/src apiserver labcmd
       scripts/import-loops.py e2e/lab/src crate      (the crate's top-level files)

A file imports a sibling when it names `crate::<module>::<sibling>` or `super::<sibling>`
(for `crate`: `crate::<sibling>`) anywhere (use lines, brace groups and inline paths); a
directory module counts as one file (its mod.rs); comments are ignored.
"""
import os
import re
import sys


def imports(text, mod):
    text = re.sub(r"//[^\n]*", "", text)
    used = set()
    prefix = r"\bcrate" if mod == "crate" else r"(?:\bcrate::%s|\bsuper)" % re.escape(mod)
    for m in re.finditer(prefix + r"::(\w+|\{)", text):
        if m.group(1) != "{":
            used.add(m.group(1))
            continue
        # A brace group: the first name of each top-level item.
        depth, item, i = 1, "", m.end()
        while depth and i < len(text):
            c = text[i]
            depth += (c == "{") - (c == "}")
            if depth == 1 and c == ",":
                used.add(re.match(r"\s*(\w*)", item).group(1))
                item = ""
            elif depth:
                item += c
            i += 1
        used.add(re.match(r"\s*(\w*)", item).group(1))
    return used


def graph(src, mod):
    d = src if mod == "crate" else os.path.join(src, *mod.split("::"))
    roots = {"mod.rs", "lib.rs", "main.rs"}
    files = {f[:-3] for f in os.listdir(d) if f.endswith(".rs") and f not in roots}
    files |= {f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f, "mod.rs"))}
    deps = {}
    for f in sorted(files):
        p = os.path.join(d, f + ".rs")
        if not os.path.exists(p):
            p = os.path.join(d, f, "mod.rs")
        deps[f] = {u for u in imports(open(p).read(), mod) if u in files and u != f}
    return deps


def cycles(deps):
    """Tarjan's strongly connected components with more than one file."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(deps[v]):
            if w not in index:
                visit(w)
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

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return out


def main(src, mods):
    found = 0
    for mod in mods:
        deps = graph(src, mod)
        pairs = sorted({tuple(sorted((a, b))) for a in deps for b in deps[a] if a in deps[b]})
        comps = cycles(deps)
        found += len(comps)
        print(f"{mod}: {len(pairs)} mutual import(s), {len(comps)} cycle(s)")
        for a, b in pairs:
            print(f"  {a} <-> {b}")
        for comp in comps:
            print(f"  cycle among: {', '.join(comp)}")
            for f in comp:
                print(f"    {f} -> {', '.join(sorted(deps[f] & set(comp)))}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
