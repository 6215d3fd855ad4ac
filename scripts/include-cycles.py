#!/usr/bin/env python3
"""Checks that the modules of src/ depend on each other without a cycle (docs/design.md, "The
map"), two ways:

- by includes: module A depends on B when a file of A includes B's header (a module is a .c
  file and the header of the same name);
- by symbols, given the build's object directory: A depends on B when A's object uses a
  symbol B's object defines. This one also sees a header that declares several modules'
  functions (the old http_routes.h did), which the include graph cannot.

and, given docs/design.md (--layers FILE), that the modules sit in the layers of its table (the
rows between "<!-- layers:" and "<!-- end of layers -->"): every module of src/ in exactly one
layer, and every include going to the module's own layer or a lower one.

Prints each cycle or misplaced include found (with the includes or symbols that close it) and
exits 1; exits 0 when there is none. Run by CTest as lint.include_cycles:
include-cycles.py SRC_DIR [--layers DESIGN_MD] [OBJECT_FILE_OR_DIR...]."""
import os
import re
import subprocess
import sys

args = sys.argv[1:]
layers_file = None
if "--layers" in args:
    i = args.index("--layers")
    layers_file = args[i + 1]
    del args[i:i + 2]
src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
objdirs = args[1:]
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
if objdirs:
    graphs.append(("symbols", symbol_deps(objdirs)))
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
if layers_file is not None:
    with open(layers_file, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- layers:.*?-->(.*?)<!-- end of layers -->", text, re.S)
    layer = {}
    for row in (m.group(1) if m else "").splitlines():
        cells = row.split("|")
        if len(cells) > 3 and cells[1].strip().isdigit():
            for mod in re.findall(r"`([a-z0-9_]+)`", cells[2]):
                if mod in layer:
                    print("layers: %s is in layers %d and %s" % (mod, layer[mod], cells[1].strip()))
                    failed = True
                layer[mod] = int(cells[1])
    present = {n[:-2] for n in os.listdir(src) if n.endswith((".c", ".h"))}
    for mod in sorted(present - set(layer)):
        print("layers: %s is in no layer of %s" % (mod, layers_file))
        failed = True
    for mod in sorted(set(layer) - present):
        print("layers: %s names %s, which src/ does not have" % (layers_file, mod))
        failed = True
    bad = 0
    for a, targets in sorted(deps.items()):
        for b, why in sorted(targets.items()):
            if a in layer and b in layer and layer[b] > layer[a]:
                print("layers: %s (layer %d) up to layer %d" % (why, layer[a], layer[b]))
                bad += 1
    failed = failed or bad > 0
    if m and not bad:
        print("every include goes down or across among %d modules in %d layers"
              % (len(layer), len(set(layer.values()))))
sys.exit(1 if failed else 0)
