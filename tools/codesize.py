#!/usr/bin/env python3
"""Code size of the Rust sources: non-test lines per module and the longest functions.

    tools/codesize.py                    # modules of core/, host-server/, host-client/
    tools/codesize.py --functions 25     # and the 25 longest functions (non-test)
    tools/codesize.py --over 60 core/src/serve core/src/http   # functions over 60 lines there
    tools/codesize.py --root ../other-checkout                 # another checkout (before/after)

"Non-test" leaves out `#[cfg(test)]` items (a `mod tests { ... }` or a test-only function),
files of modules declared `#[cfg(test)] mod name;` and files named `tests*.rs`; a line counts when it holds more than whitespace and a `//`
comment. A function's length runs from its `fn` line to its closing brace. Braces are
matched after removing string, byte-string and char literals and comments, which is enough
for this code base (no raw strings holding braces in non-test code). Used for the before and
after figures of refactoring commits; stdlib only.
"""
import argparse
import os
import re
import sys

ROOTS = ["core/src", "host-server/src", "host-client/src"]

LITERALS = re.compile(
    r"""(?s)r#*"(?:.|\n)*?"#*|b?"(?:\\.|[^"\\])*"|b?'(?:\\.|[^'\\])'|//[^\n]*|/\*.*?\*/"""
)


def blank_literals(text):
    """Text with literals and comments replaced by spaces (line breaks kept)."""

    # A lifetime like 'a is not a literal: the char pattern needs a closing quote after one
    # character or escape.
    def repl(m):
        return re.sub(r"[^\n]", " ", m.group(0))

    return LITERALS.sub(repl, text)


def block_end(clean, start):
    """Index just past the brace block opening at or after `start`, or None."""
    i = clean.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(clean)):
        c = clean[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return None


def test_spans(clean):
    """Character spans of `#[cfg(test)]` items."""
    spans = []
    for m in re.finditer(r"#\[cfg\(test\)\]", clean):
        # The item ends at its block, or at a `;` for `mod tests;` / a `use`.
        semi = clean.find(";", m.end())
        brace = clean.find("{", m.end())
        if semi >= 0 and (brace < 0 or semi < brace):
            spans.append((m.start(), semi + 1))
            continue
        end = block_end(clean, m.end())
        if end:
            spans.append((m.start(), end))
    return spans


def counted_lines(text, clean, spans):
    """Line numbers (0-based) that count: code outside test items."""
    lines = text.split("\n")
    clean_lines = clean.split("\n")
    offsets = []
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    out = set()
    for n, (off, cl) in enumerate(zip(offsets, clean_lines)):
        if not cl.strip():
            continue
        if any(a <= off < b for a, b in spans):
            continue
        out.add(n)
    return out


FN = re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)", re.M)


def functions(path, text, clean, spans):
    """(length in lines, path:line, name) of every non-test function with a body."""
    out = []
    for m in FN.finditer(clean):
        if any(a <= m.start() < b for a, b in spans):
            continue
        # A declaration without a body (trait method) ends in `;` before any `{`.
        semi = clean.find(";", m.end())
        brace = clean.find("{", m.end())
        if brace < 0 or (0 <= semi < brace and "where" not in clean[m.end():semi]):
            continue
        end = block_end(clean, m.end())
        if end is None:
            continue
        first = clean.count("\n", 0, m.start())
        last = clean.count("\n", 0, end)
        out.append((last - first + 1, f"{path}:{first + 1}", m.group(1)))
    return out


def test_only_files(files):
    """Files of modules declared `#[cfg(test)] mod name;` (a test pair, a test driver)."""
    out = set()
    for path in files:
        text = open(path, encoding="utf-8").read()
        base = os.path.dirname(path)
        stem = os.path.basename(path)[:-3]
        if stem not in ("mod", "lib", "main"):
            base = os.path.join(base, stem)
        for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
            out.add(os.path.join(base, m.group(1) + ".rs"))
            out.add(os.path.join(base, m.group(1), "mod.rs"))
    return out


def module_of(path):
    """core/src/serve/respond.rs -> core/serve; core/src/lib.rs -> core/lib."""
    parts = path.split(os.sep)
    crate = parts[0]
    rest = parts[2:]
    if len(rest) == 1:
        return f"{crate}/{rest[0][:-3]}"
    return f"{crate}/{rest[0]}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", help="files or folders (default: the three crates)")
    ap.add_argument("--functions", type=int, default=0, help="list the N longest functions")
    ap.add_argument("--over", type=int, default=0, help="list every function over N lines")
    ap.add_argument("--root", help="the checkout to measure (default: this script's)")
    args = ap.parse_args()
    os.chdir(args.root or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    files = []
    for root in args.paths or ROOTS:
        if root.endswith(".rs"):
            files.append(root)
            continue
        for d, _, names in os.walk(root):
            files += [os.path.join(d, n) for n in names if n.endswith(".rs")]
    per_module = {}
    fns = []
    test_only = test_only_files(files)
    for path in sorted(files):
        if os.path.basename(path).startswith("tests") or path in test_only:
            continue
        text = open(path, encoding="utf-8").read()
        clean = blank_literals(text)
        spans = test_spans(clean)
        n = len(counted_lines(text, clean, spans))
        per_module[module_of(path)] = per_module.get(module_of(path), 0) + n
        fns += functions(path, text, clean, spans)
    total = 0
    print("non-test lines per module")
    for module, n in sorted(per_module.items()):
        print(f"  {n:6}  {module}")
        total += n
    print(f"  {total:6}  total")
    fns.sort(reverse=True)
    if args.functions:
        print(f"\nthe {args.functions} longest functions (lines)")
        for length, where, name in fns[: args.functions]:
            print(f"  {length:4}  {name}  {where}")
    if args.over:
        over = [f for f in fns if f[0] > args.over]
        print(f"\nfunctions over {args.over} lines: {len(over)}")
        for length, where, name in over:
            print(f"  {length:4}  {name}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
