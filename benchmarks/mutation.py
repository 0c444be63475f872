"""A sampled mutation test of flask_appinbox over the unit suite (issue 18: "Tests that catch what breaks").

Candidate sites, from each module's AST (``sandbox/`` and ``_version.py`` left out; docstrings, logging
calls, f-strings, annotations, aliases used only in annotations and ``if TYPE_CHECKING:`` skipped): a
comparison swapped (``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``in``/``not in``, ``is``/``is not``),
``and``/``or`` swapped, a ``not`` removed, a condition forced True or False, a number moved (n -> n+1,
x -> 2x for floats, 0.0 -> 1.0), a statement replaced by ``pass``, a returned value replaced (a boolean by
its opposite, anything else by None). ``--mutants`` of them are drawn uniformly over every site of the
package: each is ranked by a digest of ``--seed`` and its own code, so an edit elsewhere keeps a sample.

Each worker copies the repository to a temporary directory once, checks that the copy's package is the
one imported, runs the clean suite there (its time x3 is the per-mutant timeout), then for each mutant
writes the mutated module, runs ``pytest -x`` on the unit suite with PYTHONPATH on the copy, and restores
the module. A failing run kills the mutant; a timeout kills it too and is counted separately. Mutants in
EQUIVALENT are not run and not scored; they are listed with the reason.

    .venv/bin/python benchmarks/mutation.py --seed 1            # 60 mutants, 2 workers, ~10 min
    .venv/bin/python benchmarks/mutation.py --module guard --mutants 20 --list
    # a new test must pass on the clean copy and fail with the mutant it is for:
    .venv/bin/python benchmarks/mutation.py -n 9999 --only 'state.py:103: 10000' --workers 1 \
        --tests tests/test_endpoint.py::test_the_per_process_token_cache_is_bounded

Exit status 0, or 1 with ``--fail-under N`` when the score is below N %.
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "flask_appinbox"
EXCLUDED = ("flask_appinbox/sandbox/", "flask_appinbox/_version.py")
PYTEST = ["-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
SUITE = ["tests", "--ignore=tests/browser", "--ignore=tests/shapes", "--deselect", "tests/test_packaging.py"]
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache",
                                     ".hypothesis", "node_modules")
SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
        ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
          ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.And: "and", ast.Or: "or"}
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
BOOL_CALLS = {"isinstance", "callable", "hasattr", "bool", "all", "any"}
DELETABLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Raise, ast.Delete)
# Mutants no input can tell from the code (module, mutated code, its replacement): not run, not scored,
# listed apart with the reason. Add one only with its argument.
EQUIVALENT = {
    ("flask_appinbox/client.py", 'len(value.lstrip("0")) > 6', "(len(value.lstrip('0')) >= 6)"):
        "six significant digits are at least 100,000 s, and min(value, 86,400) is 86,400 as well",
    ("flask_appinbox/testing.py", "self._created = False", "pass"):
        "_created is read for the 'unknown' answer only, which unknown_contact() sets together with _created",
}


@dataclass
class Mutant:
    path: str  # relative to the repository
    line: int
    start: int  # byte offsets of the replaced source
    end: int
    text: str
    what: str
    original: str


def _is_log(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOG_METHODS
            and isinstance(node.func.value, ast.Name) and node.func.value.id in ("log", "logger", "logging"))


def _is_boolish(node: ast.AST) -> bool:
    return (isinstance(node, ast.Compare) or (isinstance(node, ast.Constant) and isinstance(node.value, bool))
            or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not))
            or (isinstance(node, ast.BoolOp) and all(_is_boolish(v) for v in node.values))
            or (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BOOL_CALLS))


class Sites:
    """Every mutation of one module."""

    def __init__(self, rel: str, src: bytes) -> None:
        self.rel, self.src, self.out = rel, src, []
        self.starts = [0]
        for line in src.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))
        tree = ast.parse(src)
        loads, typed = set(), set()  # names read as values; names read in annotations
        self._names(tree, loads, typed, False)
        self.type_only = typed - loads  # module-level aliases used in annotations alone
        self.walk(tree)

    def _names(self, node: ast.AST, loads: set, typed: set, in_annotation: bool) -> None:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            (typed if in_annotation else loads).add(node.id)
        for name, value in ast.iter_fields(node):
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    self._names(child, loads, typed, in_annotation or name in ("annotation", "returns"))

    def seg(self, node: ast.AST) -> str:
        return self.src[self._span(node)[0]:self._span(node)[1]].decode()

    def _span(self, node: ast.AST) -> tuple[int, int]:
        return (self.starts[node.lineno - 1] + node.col_offset, self.starts[node.end_lineno - 1] + node.end_col_offset)

    def add(self, node: ast.AST, text: str, what: str) -> None:
        self.out.append(Mutant(self.rel, node.lineno, *self._span(node), text, what, self.seg(node)))

    def walk(self, node: ast.AST) -> None:
        if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Expr) and (
                _is_log(node.value) or (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)))):
            return  # f-strings (3.11 misplaces their inner nodes), logging calls, docstrings
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            return
        self.mutate(node)
        for name, value in ast.iter_fields(node):
            if name not in ("annotation", "returns"):
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, ast.AST):
                        self.walk(child)

    def mutate(self, node: ast.AST) -> None:
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in SWAP:
                    new = copy.deepcopy(node)
                    new.ops[i] = SWAP[type(op)]()
                    self.add(node, f"({ast.unparse(new)})", f"`{SYMBOL[type(op)]}` -> `{SYMBOL[SWAP[type(op)]]}`")
        elif isinstance(node, ast.BoolOp):
            new = copy.deepcopy(node)
            new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            self.add(node, f"({ast.unparse(new)})", f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[type(new.op)]}`")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.add(node, f"({self.seg(node.operand)})", "`not` removed")
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            new = node.value + 1 if isinstance(node.value, int) else node.value * 2 or 1.0
            self.add(node, repr(new), f"{node.value!r} -> {new!r}")
        tests = [node.test] if isinstance(node, (ast.If, ast.While, ast.IfExp)) else []
        tests += node.ifs if isinstance(node, ast.comprehension) else []
        for test in tests:
            if not isinstance(test, ast.Constant):
                shown = ast.unparse(test)
                shown = shown if len(shown) <= 50 else shown[:47] + "..."
                self.add(test, "True", f"condition `{shown}` -> True")
                self.add(test, "False", f"condition `{shown}` -> False")
        if isinstance(node, DELETABLE) and not (isinstance(node, ast.AnnAssign) and node.value is None):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if not (targets and all(isinstance(t, ast.Name) and t.id in self.type_only for t in targets)):
                self.add(node, "pass", "statement -> pass")
        if isinstance(node, ast.Return) and node.value is not None:
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                self.add(value, repr(not value.value), f"return {value.value} -> return {not value.value}")
            elif _is_boolish(value):
                self.add(value, f"(not ({self.seg(value)}))", "return value -> its opposite")
            elif not (isinstance(value, ast.Constant) and value.value is None):
                self.add(value, "None", "return value -> None")


def modules(selected: list[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(EXCLUDED):
            continue
        if not selected or any(s in (rel, path.name, path.stem) for s in selected):
            found.append(rel)
    return found


def apply(mutant: Mutant, src: bytes) -> bytes:
    return src[:mutant.start] + mutant.text.encode() + src[mutant.end:]


def sample(rels: list[str], count: int, seed: int) -> tuple[list[Mutant], int]:
    """``count`` mutants drawn uniformly over every candidate site (only those that compile)."""
    sources = {rel: (ROOT / rel).read_bytes() for rel in rels}
    candidates = [m for rel in rels for m in Sites(rel, sources[rel]).out]
    # Each mutant's rank is a digest of the seed and the mutant's own code, not of its place in the package:
    # an edit elsewhere leaves the rest of a sample as it was.
    seen: Counter = Counter()
    ranked = []
    for m in candidates:
        ident = (m.path, m.original.encode(), m.what, m.text)
        seen[ident] += 1
        ranked.append((hashlib.sha256(repr((seed, *ident, seen[ident])).encode()).digest(), m))
    chosen = []
    for _, mutant in sorted(ranked, key=lambda pair: pair[0]):
        try:
            compile(apply(mutant, sources[mutant.path]), mutant.path, "exec")
        except SyntaxError:
            continue
        chosen.append(mutant)
        if len(chosen) == count:
            break
    return sorted(chosen, key=lambda m: (m.path, m.line, m.start)), len(candidates)


def run_suite(workdir: str, timeout: float | None, tests: list[str]) -> tuple[str, float, str]:
    """('killed' | 'survived' | 'timeout', seconds, the first failing test)."""
    env = dict(os.environ, PYTHONPATH=workdir, PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, *PYTEST, *tests], cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the run's own process group: pytest and what it started
        proc.communicate()
        return "timeout", time.monotonic() - started, ""
    failed = next((line for line in out.splitlines() if line.startswith(("FAILED tests", "ERROR tests"))), "")
    return ("killed" if proc.returncode else "survived"), time.monotonic() - started, failed.split(" - ")[0]


def make_copy() -> str:
    workdir = tempfile.mkdtemp(prefix="appinbox-mutation-")
    shutil.copytree(ROOT, workdir, ignore=COPY_IGNORE, dirs_exist_ok=True)
    found = subprocess.run([sys.executable, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"], cwd=workdir,
                           env=dict(os.environ, PYTHONPATH=workdir), capture_output=True, text=True, check=True)
    if not found.stdout.strip().startswith(workdir + os.sep):
        raise SystemExit(f"the copy's package is not the one imported: {found.stdout.strip()}")
    return workdir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", "-n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--module", action="append", default=[], help="e.g. guard or flask_appinbox/guard.py")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", help="only these mutants of the sample: numbers as --list shows them, or "
                        "parts of their 'path:line: mutation' (with -n 9999, any site)")
    parser.add_argument("--list", action="store_true", help="print the sample and exit")
    parser.add_argument("--tests", help="pytest's targets instead of the unit suite, e.g. 'tests/test_guard.py'")
    parser.add_argument("--fail-under", type=float, help="exit 1 when the score is below this percentage")
    args = parser.parse_args()
    chosen, total = sample(modules(args.module), args.mutants, args.seed)
    numbered = list(enumerate(chosen, 1))
    if args.only:
        picks = args.only.split(",")
        numbered = [(i, m) for i, m in numbered if str(i) in picks or any(
            not p.isdigit() and p in f"{m.path}:{m.line}: {m.what}" for p in picks)]
    print(f"{len(chosen)} mutants drawn from {total} sites (seed {args.seed})")
    lines = {rel: (ROOT / rel).read_text().splitlines() for rel in {m.path for m in chosen}}
    if args.list:
        for i, m in numbered:
            print(f"{i:3} {m.path}:{m.line}: {m.what}: {lines[m.path][m.line - 1].strip()}")
        return 0
    tests = args.tests.split() if args.tests else SUITE
    copies = [make_copy() for _ in range(min(args.workers, len(numbered)))]
    try:
        clean: list = [None] * len(copies)
        threads = [threading.Thread(target=lambda i=i: clean.__setitem__(i, run_suite(copies[i], None, tests)))
                   for i in range(len(copies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if any(status != "survived" for status, _, _ in clean):
            raise SystemExit(f"the unit suite fails without a mutant: {clean}")
        timeout = 3 * max(seconds for _, seconds, _ in clean)
        print(f"clean run: {', '.join(f'{s:.1f} s' for _, s, _ in clean)}; timeout per mutant {timeout:.0f} s",
              flush=True)
        todo: queue.Queue = queue.Queue()
        results: dict[int, tuple[str, float, str]] = {}
        for i, m in numbered:
            reason = EQUIVALENT.get((m.path, m.original, m.text))
            if reason:
                results[i] = ("equivalent", 0.0, reason)
            else:
                todo.put((i, m))

        def worker(workdir: str) -> None:
            while True:
                try:
                    i, m = todo.get_nowait()
                except queue.Empty:
                    return
                target = Path(workdir, m.path)
                original = target.read_bytes()
                target.write_bytes(apply(m, original))
                try:
                    results[i] = run_suite(workdir, timeout, tests)
                finally:
                    target.write_bytes(original)
                status, seconds, failed = results[i]
                print(f"{i:3} {status:8} {seconds:5.1f} s  {m.path}:{m.line}: {m.what}  {failed}", flush=True)

        threads = [threading.Thread(target=worker, args=(w,)) for w in copies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for workdir in copies:
            shutil.rmtree(workdir, ignore_errors=True)
    return report(numbered, results, lines, args.fail_under)


def report(numbered: list, results: dict, lines: dict, fail_under: float | None) -> int:
    per: dict[str, Counter] = {}
    for i, m in numbered:
        per.setdefault(m.path, Counter())[results[i][0]] += 1
    per["overall"] = sum(per.values(), Counter())
    print(f"\n{'module':32} {'killed':>6} {'(timeouts)':>10} {'survived':>8} {'equivalent':>10} {'score':>6}")
    for path, n in per.items():  # overall last: its score decides --fail-under
        killed, scored = n["killed"] + n["timeout"], n["killed"] + n["timeout"] + n["survived"]
        score = 100 * killed / scored if scored else 100.0
        print(f"{path:32} {killed:6} {n['timeout']:10} {n['survived']:8} {n['equivalent']:10} {score:5.1f}%")
    for status in ("survived", "equivalent"):
        chosen = [(i, m) for i, m in numbered if results[i][0] == status]
        if chosen:
            print(f"\n{status}:")
        for i, m in chosen:
            print(f"{i:3} {m.path}:{m.line}: {m.what} (-> {m.text!r})\n      {lines[m.path][m.line - 1].strip()}")
            if status == "equivalent":
                print(f"      why: {results[i][2]}")
    return 1 if fail_under is not None and score < fail_under else 0


if __name__ == "__main__":
    sys.exit(main())
