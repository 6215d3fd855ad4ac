#!/usr/bin/env python3
"""Checks that the modules of src/ depend on each other without a cycle (docs/design.md, "The
map"), two ways:

- by includes: module A depends on B when a file of A includes B's header (a module is a .c
  file and the header of the same name);
- by symbols, given the build's object directory: A depends on B when A's object uses a
  symbol B's object defines. This one also sees a header that declares several modules'
  functions (the old http_routes.h did), which the include graph cannot.

Prints each cycle found (a strongly connected group of two or more modules, with the includes
or symbols that close it) and exits 1; exits 0 when there is none. Run by CTest as
lint.include_cycles: include-cycles.py SRC_DIR [OBJECT_FILE_OR_DIR...]."""
import os
import re
import subprocess
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
deps = {}      # module -> {module: "file includes header"}
for name in sorted(os.listdir(src)):
    if not name.endswith((".c", ".h")):
        continue
    mod = name[:-2]
    with open(os.path.join(src, name), encoding="utf-8") as f:
        for header in inc.findall(f.read()):
            target = os.path.basename(header)[:-2] if header.endswith(".h") else None
            if target is None or target == mod or not os.path.exists(os.path.join(src, target + ".h")):
                continue    # public headers (stapler/…) and files outside src/ are leaves
            deps.setdefault(mod, {}).setdefault(target, "%s includes %s" % (name, header))
def cycles(deps):
    """The strongly connected groups of two or more modules (Tarjan)."""
    mods = sorted(set(deps) | {t for d in deps.values() for t in d})
    index, low, stack, on, groups, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in deps.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for m in mods:
        if m not in index:
            visit(m)
    return mods, groups


def objects(paths):
    """The object files among paths (files, or directories searched)."""
    for p in paths:
        for part in p.split(";"):         # CMake passes $<TARGET_OBJECTS> as one list
            if os.path.isdir(part):
                for root, _, files in os.walk(part):
                    yield from (os.path.join(root, f) for f in files if f.endswith(".c.o"))
            elif part.endswith(".o"):
                yield part


def symbol_deps(paths):
    """Module -> {module: "a.o uses sym"} from the objects' defined and undefined symbols."""
    defined, used = {}, {}
    for path in objects(paths):
        mod = os.path.basename(path)[:-4]
        out = subprocess.run(["nm", "-g", path], check=True, capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                used.setdefault(mod, set()).add(parts[1])
            elif len(parts) == 3 and parts[1] in "TDBR":
                defined[parts[2]] = mod
    deps = {}
    for mod, syms in used.items():
        for sym in sorted(syms):
            owner = defined.get(sym)
            if owner is not None and owner != mod:
                deps.setdefault(mod, {}).setdefault(owner, "%s.c uses %s (%s.c)" % (mod, sym, owner))
    return deps


sys.setrecursionlimit(10000)
failed = False
graphs = [("includes", deps)]
if len(sys.argv) > 2:
    graphs.append(("symbols", symbol_deps(sys.argv[2:])))
for what, g in graphs:
    mods, groups = cycles(g)
    for grp in groups:
        failed = True
        print("cycle (%s) among %s:" % (what, ", ".join(grp)))
        for a in grp:
            for b, why in sorted(g.get(a, {}).items()):
                if b in grp:
                    print("  %s" % why)
    if not groups:
        print("no cycle (%s) among %d modules" % (what, len(mods)))
sys.exit(1 if failed else 0)
