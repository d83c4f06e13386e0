#!/usr/bin/env python3
"""Checks that shared/src imports run one way: every `crate::` path in a module names only
modules of lower layers, as docs/development.md's "Layers" list orders them, and `config`
is read by `app` alone. Prints each offending file and path; exits 1 on any."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "shared" / "src"
DOC = ROOT / "docs" / "development.md"
ONLY_APP_READS = "config"


def layers():
    """{module: layer number} from the doc's list between the layers markers."""
    text = DOC.read_text()
    block = text.split("<!-- layers:", 1)[1].split("<!-- /layers -->", 1)[0]
    order = {}
    for line in block.splitlines():
        found = re.match(r"\s*(\d+)\.\s+(.*?):", line)
        if found:
            for module in re.findall(r"`([a-z_]+)`", found.group(2)):
                order[module] = int(found.group(1))
    return order


def reexports():
    """Names lib.rs re-exports at the crate root (`pub use app::App;` -> App: app)."""
    names = {}
    for module, name in re.findall(r"pub use (\w+)::(\w+);", (SRC / "lib.rs").read_text()):
        names[name] = module
    return names


def top_level_names(group):
    """The first segments of the paths in a `{...}` use group, at its outer depth."""
    names, depth, current = [], 0, ""
    for char in group[1:-1]:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            names.append(current)
            current = ""
            continue
        if depth == 0 or char not in "{}":
            current += char if depth == 0 else ""
    names.append(current)
    return [re.split(r"\W", n.strip(), maxsplit=1)[0] for n in names if n.strip()]


def imports(source):
    """Every module named right after `crate::` in `source` (comments stripped)."""
    code = re.sub(r"//[^\n]*", "", source)
    found = []
    for match in re.finditer(r"crate::(\{|\w+)", code):
        if match.group(1) != "{":
            found.append(match.group(1))
            continue
        start, depth = match.start(1), 0
        for end in range(start, len(code)):
            depth += {"{": 1, "}": -1}.get(code[end], 0)
            if depth == 0:
                break
        found.extend(top_level_names(code[start : end + 1]))
    return found


def main():
    order, roots = layers(), reexports()
    problems = []
    for path in sorted(SRC.rglob("*.rs")):
        relative = path.relative_to(SRC)
        module = relative.parts[0].removesuffix(".rs")
        if module in ("lib", "bin"):
            continue
        if module not in order:
            problems.append(f"{relative}: module `{module}` is on no line of the layers list")
            continue
        for name in imports(path.read_text()):
            target = roots.get(name, name)
            if target in ("self", module) or target not in order and name[0].isupper():
                continue
            if target not in order:
                problems.append(f"{relative}: crate::{name} is on no line of the layers list")
            elif order[target] <= order[module]:
                problems.append(
                    f"{relative}: `{module}` (layer {order[module]}) imports "
                    f"crate::{name} (layer {order[target]}): only lower layers may be imported"
                )
            elif target == ONLY_APP_READS and module != "app":
                problems.append(f"{relative}: only `app` reads `{ONLY_APP_READS}`")
    for problem in problems:
        print(f"layer check: {problem}")
    print(f"layer check: {len(problems)} problem(s) in {len(order)} modules")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
