"""TaskFlow static checker: judges an uploaded task file with Python's own `ast`. It never runs it.

Runs inside the sandbox image as `python3.11 -I -S /opt/taskflow/checker.py` (and with the host's
python3.11 in unit tests): the stdlib, plus Debian's pyflakes and packaging.

  stdin:  {"source_b64": str, "file_name": str, "max_bytes": int,
           "policy": {code: "error" | "warning" | "off"}}          (policy optional)
  stdout: one JSON line {"findings": [{"code", "severity", "message", "line"?, "col"?, "snippet"?}],
                         "test_payloads": list | null,
                         "script"?: {"dependencies": [str], "requires_python"?: str, "line": int},
                         "external_imports": [{"module", "line", "col", "guarded"}]}

`script` is the file's PEP 723 block, when it has a well-formed one; `external_imports` are the
top-level modules it imports that the standard library does not provide. Neither is a finding here:
the host judges them against the dependency layer it builds.

Exit 0 whenever a report was written, error findings included. Exit 2 on a malformed request,
1 on a bug in the checker: callers must treat any non-zero exit as a rejection (fail closed).
`line` and `col` are 1-based; `col` counts characters, not bytes. `snippet` is the source line
followed by a line with a caret under `col`, as a compiler shows it.

This check is a first filter and a source of clear messages for honest users. It is not the
security boundary: the gVisor sandbox, the child's seccomp filter and its audit hook are. So errors
are kept for what cannot work: syntax, the handler contract, an undefined name or a refused call
(a process, a signal) in the handler's own body, and imports of the modules that exist to spawn
processes, open sockets or load native code (FORBIDDEN_MODULES, the one list). Introspection and
code built at run time (`__mro__`, frames, `exec`, `compile`, `sys.modules`, `importlib`, ...) are
warnings, as are threads, network clients and refused calls elsewhere: ordinary Python does them,
and what they reach at run time meets the sandbox. Ordinary module-level code (calls, class
bodies, decorators, comprehensions) runs at load time inside the sandbox under its limits and is
accepted; loops there get a warning. Lint findings come from pyflakes (Debian's python3-pyflakes,
copied into the image).
"""

import ast
import base64
import builtins
import codecs
import json
import math
import posixpath
import re
import resource
import sys



def _load_registry():
    """The finding-code registry TaskFlow's TypeScript side reads too: next to this file in the
    image (/opt/taskflow), in domain/ when run from a checkout."""
    here = posixpath.dirname(posixpath.abspath(__file__))
    for path in (posixpath.join(here, "finding-codes.json"), posixpath.join(here, "..", "..", "domain", "finding-codes.json")):
        try:
            with open(path, "rb") as f:
                return json.load(f)["codes"]
        except FileNotFoundError:
            continue
    raise RuntimeError("finding-codes.json not found")


# Default severity of each code this checker reports (upload- and static-stage codes of the
# registry). Request `policy` overrides per code.
DEFAULT_POLICY = {code: info["severity"] for code, info in _load_registry().items() if info["stage"] in ("upload", "static")}
# After these nothing else can be analysed, so a policy may not hide or soften them: a file that
# "passed" with no findings only because it could not be read would be a silent fail-open.
UNANALYSABLE = {"not_utf8", "syntax_error", "too_complex"}

MAX_FINDINGS = 100
# The checker process's own limits, below its container's, so that a file whose check blows up ends
# only that check (a MemoryError is a finding; past the CPU time the kernel ends the process and the
# agent reports the check failed), never the shared checker container or its agent. Under gVisor
# /proc/meminfo's MemTotal is the container's memory limit.
MEMORY_SHARE = 0.5  # of MemTotal, as address space (the interpreter with pyflakes takes ~26 MiB of it)
CPU_SECONDS = 30  # a backstop: the agent's wall-clock timeout (the payload timeout) comes first
SNIPPET_WIDTH = 120  # characters of a source line shown in a finding
# Debian's python3-pyflakes and python3-packaging (pure Python, stdlib only), on the host and in the image.
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
MAX_TEST_PAYLOADS = 20
JSON_SAFE_INT = 2 ** 53 - 1  # beyond this JavaScript's JSON.parse silently changes the number

# --- What is an error and what is a warning ---------------------------------------------------
#
# An error rejects the file before it runs, so errors are kept for what cannot work: the tables
# below make an error only of importing a module that exists to do what the sandbox refuses, and
# of a refused call in the handler's own body (every call of the handler gets there and fails).
# Introspection and code built at run time are warnings ("metaprogramming"): the standard library
# itself does them every day, no list of names can catch every spelling of them, and whatever they
# reach at run time meets the sandbox (gVisor, the child's seccomp filter and audit hook).

SPAWNS = "exists to spawn processes, which the sandbox refuses"
SOCKETS = "exists to open network sockets, which the sandbox refuses (it has no network)"
NATIVE = "exists to load and call native code, which the sandbox refuses"
ENFORCED = "allowed, and run-time enforcement applies (the sandbox refuses any forbidden action it leads to)"
DYNAMIC_IMPORT = "imports modules by computed names"
NETWORK_WARN = "the sandbox has no network, so connecting will fail at run time"

# The one list of modules whose import is an error (a key matches "a" and its submodules "a.b"):
# they exist to spawn processes, open sockets or load native code, and the kin listed with them are
# the C modules behind them or modules that exist only to drive them. Matched on the names Python
# imports: `import`/`from` statements (whose identifiers the parser has already NFKC-folded, so
# `import ｓｕｂｐｒｏｃｅｓｓ` is subprocess) and `__import__`/`importlib.import_module` of a literal.
FORBIDDEN_MODULES = {
    "subprocess": SPAWNS, "_posixsubprocess": SPAWNS, "_bootsubprocess": SPAWNS, "asyncio.subprocess": SPAWNS,
    "multiprocessing": SPAWNS, "_multiprocessing": SPAWNS, "concurrent.futures.process": SPAWNS,
    "concurrent.futures.ProcessPoolExecutor": SPAWNS,  # a lazy attribute: importing it imports .process
    "pty": SPAWNS, "pipes": SPAWNS, "webbrowser": SPAWNS, "antigravity": SPAWNS,
    "socket": SOCKETS, "_socket": SOCKETS, "socketserver": SOCKETS, "ssl": SOCKETS, "_ssl": SOCKETS,
    "ctypes": NATIVE, "_ctypes": NATIVE, "cffi": NATIVE, "_cffi_backend": NATIVE,
}
# Importing these is a warning (risky_import).
RISKY_MODULES = {
    "threading": "threads outlive the call that started them; the sandbox caps their number",
    "_thread": "threads outlive the call that started them; the sandbox caps their number",
    "concurrent": "worker pools outlive the call that started them; the sandbox caps their number",
    "signal": "a handler may signal only its own process; signals to others are refused at run time",
    "_signal": "a handler may signal only its own process; signals to others are refused at run time",
    "http.client": NETWORK_WARN, "http.server": NETWORK_WARN, "urllib.request": NETWORK_WARN,
    "ftplib": NETWORK_WARN, "smtplib": NETWORK_WARN, "poplib": NETWORK_WARN, "imaplib": NETWORK_WARN,
    "nntplib": NETWORK_WARN, "telnetlib": NETWORK_WARN, "xmlrpc": NETWORK_WARN,
    "requests": NETWORK_WARN, "httpx": NETWORK_WARN, "aiohttp": NETWORK_WARN, "urllib3": NETWORK_WARN,
    "websockets": NETWORK_WARN,
}
# Importing these is a warning (metaprogramming).
META_MODULES = {
    "importlib": DYNAMIC_IMPORT, "imp": DYNAMIC_IMPORT, "_imp": DYNAMIC_IMPORT, "zipimport": DYNAMIC_IMPORT,
    "runpy": DYNAMIC_IMPORT, "pkgutil": DYNAMIC_IMPORT,
    "_frozen_importlib": DYNAMIC_IMPORT, "_frozen_importlib_external": DYNAMIC_IMPORT,
    "code": "compiles and runs source built at run time", "codeop": "compiles source built at run time",
    "pickle": "unpickling calls whatever the data names", "_pickle": "unpickling calls whatever the data names",
    "shelve": "unpickling calls whatever the data names", "marshal": "loads raw code objects",
    "gc": "reaches every live object", "__main__": "reaches the sandbox process's main module",
    "posix": "the C module behind os, with its process functions under their own names",
    "inspect": "reads frames and source", "builtins": "the builtins namespace itself",
}
# Names that start a process or signal another one: refused at run time (audit hook, seccomp). A use
# in the handler's own body is an error (forbidden_call: every call fails there), elsewhere a
# warning (risky_call: it fails only if that code runs). Keys match "a.b" and "a.b.anything"; a key
# ending in "*" matches any name with that prefix. posix.* are the same functions as os.*.
_REFUSED = {
    "os.system": "runs a shell command", "os.popen": "runs a shell command",
    "os.exec*": "replaces the process with another program", "os.spawn*": "spawns processes",
    "os.posix_spawn*": "spawns processes", "os.fork": "spawns processes", "os.forkpty": "spawns processes",
    "os.kill": "signals other processes", "os.killpg": "signals other processes",
}
REFUSED_REFS = {
    **_REFUSED, **{"posix" + k[len("os"):]: why for k, why in _REFUSED.items()},
    "asyncio.create_subprocess_*": "spawns processes", "asyncio.subprocess.create_subprocess_*": "spawns processes",
    "concurrent.futures.ProcessPoolExecutor": "spawns processes",
}
RISKY_REFS = {
    "os._exit": "ends the sandbox process; the run is reported as failed",
    "os.abort": "ends the sandbox process; the run is reported as failed",
    "builtins.globals": "exposes the module namespace for dynamic rebinding",
    "builtins.breakpoint": "starts an interactive debugger; the sandbox has no terminal",
}
META_REFS = {
    "builtins.eval": "runs code built at run time", "builtins.exec": "runs code built at run time",
    "builtins.compile": "builds code at run time", "builtins.__import__": DYNAMIC_IMPORT,
    "types.CodeType": "builds code objects", "types.FunctionType": "builds functions from code objects",
    "sys._getframe": "reads interpreter frames", "sys._current_frames": "reads interpreter frames",
    "sys.settrace": "hooks into the interpreter", "sys.setprofile": "hooks into the interpreter",
    "sys.addaudithook": "hooks into the interpreter's audit events",
    "sys.modules": "reaches every loaded module", "sys.meta_path": DYNAMIC_IMPORT, "sys.path_hooks": DYNAMIC_IMPORT,
}
# Calls that import the module named by their first argument: with a literal, an import like any other.
IMPORT_FUNCS = {"builtins.__import__", "importlib.import_module", "importlib.__import__"}
# Attribute names that lead from an object to builtins, other modules' globals, code objects or
# interpreter frames. Reported (metaprogramming) as `.name`, in `match` class patterns and inside
# string constants (getattr(x, "__globals__"), "{0.__globals__}".format(f)).
META_ATTRIBUTES = {
    "__subclasses__", "__globals__", "__builtins__", "__code__", "__loader__", "__spec__",
    "__bases__", "__base__", "__mro__", "__closure__", "__self__", "__getattribute__", "__import__",
    "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "tb_frame",
    "gi_frame", "cr_frame", "ag_frame", "gi_code", "cr_code", "ag_code",
}
# Module globals of the same kind.
META_GLOBALS = {"__builtins__", "__loader__", "__spec__"}
META_IN_STRINGS = re.compile(
    r"(?<![A-Za-z0-9_])(%s)(?![A-Za-z0-9_])" % "|".join(sorted(META_ATTRIBUTES)))
OPEN_FUNCS = {"builtins.open", "io.open", "os.open", "codecs.open"}
DYNAMIC_ATTR_FUNCS = {"builtins.getattr", "builtins.setattr", "builtins.delattr"}
BUILTIN_NAMES = set(dir(builtins))
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
# Python honours a coding cookie on the first two lines when it reads a file (not when it compiles
# a str, which is what the agent does). A non-UTF-8 cookie would make those two readings differ.
CODING_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


class RequestError(Exception):
    """The caller sent a malformed request (a host bug, not a property of the file)."""


def short(text, limit=60):
    """A quoted, length-capped rendering of user-controlled text for messages."""
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class Report:
    def __init__(self, policy, source_lines):
        self.policy = policy
        self.lines = source_lines  # bytes per line, to turn ast's byte offsets into characters
        self.findings = []
        self.seen = set()

    def add(self, code, message, node=None, line=None, col=None, key=None, severity=None, byte_col=None):
        """Records a finding. `key` deduplicates findings of one code on one line. `severity`
        replaces the code's default for this finding (an explicit request policy still wins).
        `byte_col` is a 0-based UTF-8 byte offset, as ast and pyflakes give it."""
        if node is not None and getattr(node, "lineno", None) is not None:
            line, byte_col = node.lineno, node.col_offset
        if line and byte_col is not None:
            col = self.char_col(line, byte_col)
        if key is not None:
            if (code, line, key) in self.seen:
                return
            self.seen.add((code, line, key))
        finding = {"code": code, "message": message}
        if severity:
            finding["severity"] = severity
        if line:
            finding["line"] = line
            if col:
                finding["col"] = col
        self.findings.append(finding)

    def text_line(self, line):
        if not 0 < line <= len(self.lines):
            return None
        return self.lines[line - 1].decode("utf-8", "replace")

    def char_col(self, line, byte_offset):
        if not 0 < line <= len(self.lines):
            return byte_offset + 1
        return len(self.lines[line - 1][:byte_offset].decode("utf-8", "ignore")) + 1

    def snippet(self, line, col):
        """The line as written and, under it, a caret at `col`. Tabs are kept in the caret line's
        indent so the caret lines up however the reader's terminal expands them. A long line is
        cut to a window around the column."""
        text = self.text_line(line)
        if text is None or not text.strip():
            return None
        col = col if col and 0 < col <= len(text) + 1 else None
        start = 0
        if len(text) > SNIPPET_WIDTH:
            start = max(0, min((col or 1) - 1 - SNIPPET_WIDTH // 2, len(text) - SNIPPET_WIDTH))
            text = ("..." if start else "") + text[start:start + SNIPPET_WIDTH] + ("..." if start + SNIPPET_WIDTH < len(text) else "")
            start -= 3 if start else 0
        # After the cut (one character for one, so the caret stays put): a long line costs only its window.
        text = "".join(c if c.isprintable() or c == "\t" else "?" for c in text)
        if col is None:
            return text
        pad = "".join(c if c == "\t" else " " for c in text[: col - 1 - start])
        return text + "\n" + pad + "^"

    def severity(self, code, default=None):
        return self.policy.get(code) or default or DEFAULT_POLICY[code]

    def render(self):
        out = []
        for f in sorted(self.findings, key=lambda f: (f.get("line", 0), f.get("col", 0))):
            severity = self.severity(f["code"], f.get("severity"))
            if severity != "off":
                out.append({**f, "severity": severity})
        if len(out) > MAX_FINDINGS:
            dropped = len(out) - MAX_FINDINGS
            # Errors first when cutting, so a cut list never hides why a file was rejected.
            out = sorted(out, key=lambda f: f["severity"] != "error")[:MAX_FINDINGS]
            out.sort(key=lambda f: (f.get("line", 0), f.get("col", 0)))
            severity = self.severity("too_many_findings")
            if severity != "off":
                out.append({"code": "too_many_findings", "severity": severity,
                            "message": "%d more findings were left out" % dropped})
        return [self.shown(f) for f in out]

    def shown(self, f):
        """The finding as reported: code and severity first, and the snippet of its line, made only
        for the findings that are reported (a hostile file can have thousands of the others)."""
        out = {"code": f["code"], "severity": f["severity"], "message": f["message"]}
        if f.get("line"):
            out["line"] = f["line"]
            if f.get("col"):
                out["col"] = f["col"]
            snippet = self.snippet(f["line"], f.get("col"))
            if snippet:
                out["snippet"] = snippet
        return out


# --- Reading the request ---------------------------------------------------------------------

def read_request(raw):
    try:
        req = json.loads(raw)
    except ValueError as exc:
        raise RequestError("stdin is not JSON: %s" % exc) from None
    if not isinstance(req, dict):
        raise RequestError("the request must be a JSON object")
    unknown = set(req) - {"source_b64", "file_name", "max_bytes", "policy"}
    if unknown:
        raise RequestError("unknown request keys: %s" % ", ".join(sorted(unknown)))
    if not isinstance(req.get("source_b64"), str):
        raise RequestError("source_b64 must be a string")
    if not isinstance(req.get("file_name"), str):
        raise RequestError("file_name must be a string")
    max_bytes = req.get("max_bytes")
    if type(max_bytes) is not int or max_bytes < 1:
        raise RequestError("max_bytes must be a positive integer")
    policy = req.get("policy") or {}
    if not isinstance(policy, dict):
        raise RequestError("policy must be an object")
    for code, severity in policy.items():
        if code not in DEFAULT_POLICY:
            raise RequestError("policy names an unknown code: %s" % short(code))
        if severity not in ("error", "warning", "off"):
            raise RequestError("policy for %s must be error, warning or off" % code)
        if code in UNANALYSABLE and severity != "error":
            raise RequestError("policy cannot lower %s: nothing can be checked after it" % code)
    try:
        source = base64.b64decode(req["source_b64"], validate=True)
    except ValueError as exc:
        raise RequestError("source_b64 is not base64: %s" % exc) from None
    return source, req["file_name"], max_bytes, policy


# --- Names and what they refer to -------------------------------------------------------------

def walk(tree):
    """Yields (node, enclosing function scopes, is the `.value` of an Attribute).

    Iterative because a hostile file can be nested deeper than Python's recursion limit. A def's
    decorators, defaults and annotations are evaluated in the enclosing scope, so they are walked
    with the outer scopes; only the body belongs to the function.
    """
    stack = [(tree, (), False)]
    while stack:
        node, scopes, inner = stack.pop()
        yield node, scopes, inner
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            outer = [*node.decorator_list, node.args] + ([node.returns] if node.returns else [])
            stack.extend((child, scopes, False) for child in outer)
            stack.extend((child, scopes + (node,), False) for child in node.body)
        elif isinstance(node, ast.Lambda):
            stack.append((node.args, scopes, False))
            stack.append((node.body, scopes + (node,), False))
        else:
            for child in ast.iter_child_nodes(node):
                stack.append((child, scopes, isinstance(node, ast.Attribute) and child is node.value))


def imported_names(node):
    """(local name, qualified name) pairs bound by an import statement."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                yield alias.asname, alias.name
            else:  # `import a.b` binds `a`
                yield alias.name.split(".")[0], alias.name.split(".")[0]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        for alias in node.names:
            if alias.name != "*":
                yield alias.asname or alias.name, node.module + "." + alias.name


class Names:
    """Resolves names and attribute chains to qualified names ("os.system", "builtins.eval").

    Deliberately conservative, ignoring scopes: a name means everything any import or simple
    assignment anywhere bound it to (`o = os` makes `o.system` os.system). A builtin is taken to
    be shadowed only by an import in the module's top level or in an enclosing function, or by a
    parameter or assignment of an enclosing function (Python makes such a name local to the whole
    function, so the builtin is unreachable there), and never if the name is ever declared
    global/nonlocal or deleted (that is how a file would unshadow it again).
    """

    ALIAS_PASSES = 8  # enough for `a = os; b = a; c = b`, bounded so `a = a.b` cannot grow forever
    # Names assigned from each other's attributes multiply their meanings with every pass (a dozen
    # such names in 2 KB of never-called code reached a GB). Past either bound the analysis stops
    # where it is, with what it has, and says so (analysis_limited): never an unbounded set.
    MAX_MEANINGS = 64  # qualified names one name may stand for
    MAX_ALIAS_WORK = 200_000  # meanings computed over all passes

    def __init__(self, tree):
        self.bindings = {}
        self.scope_imports = {}
        self.dynamic = set()
        self.module_imports = {name for stmt in tree.body for name, _ in imported_names(stmt)}
        aliases = []
        for node, scopes, _ in walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name, qualified in imported_names(node):
                    self.bindings.setdefault(name, set()).add(qualified)
                    if scopes:
                        self.scope_imports.setdefault(scopes[-1], set()).add(name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                self.dynamic.update(node.names)
            elif isinstance(node, ast.Delete):
                self.dynamic.update(t.id for t in node.targets if isinstance(t, ast.Name))
            if isinstance(node, SCOPES):
                self.scope_imports.setdefault(node, set()).update(function_locals(node))
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                aliases.extend((t.id, node.value, scopes) for t in targets if isinstance(t, ast.Name))
        self.limited = False
        work = 0
        for _ in range(self.ALIAS_PASSES):
            changed = False
            for name, value, scopes in aliases:
                meanings = self.resolve(value, scopes)
                work += len(meanings)
                known = self.bindings.get(name, set())
                if meanings <= known:
                    continue
                if work > self.MAX_ALIAS_WORK or len(known | meanings) > self.MAX_MEANINGS:
                    self.limited = True
                    return
                self.bindings.setdefault(name, set()).update(meanings)
                changed = True
            if not changed:
                break

    def of_name(self, name, scopes):
        found = set(self.bindings.get(name, ()))
        if name in BUILTIN_NAMES and not self.shadowed(name, scopes):
            found.add("builtins." + name)
        return found

    def shadowed(self, name, scopes):
        if name in self.dynamic:
            return False
        return name in self.module_imports or any(name in self.scope_imports.get(s, ()) for s in scopes)

    def resolve(self, node, scopes):
        """Qualified names an expression may denote; empty when it is not a name-like chain."""
        attrs = []
        while True:
            if isinstance(node, ast.Attribute):
                attrs.append(node.attr)
                node = node.value
            elif (isinstance(node, ast.Call) and len(node.args) >= 2 and str_const(node.args[1])
                  and "builtins.getattr" in self.resolve(node.func, scopes)):
                attrs.append(node.args[1].value)  # getattr(os, "system") is os.system
                node = node.args[0]
            elif isinstance(node, ast.NamedExpr):
                node = node.value  # (o := os).system is os.system
            elif (isinstance(node, ast.Call) and node.args and str_const(node.args[0])
                  and self.resolve(node.func, scopes) & IMPORT_FUNCS):
                # __import__("os").system is os.system. __import__("a.b") alone returns package a;
                # import_module("a.b") and __import__ with a fromlist return a.b.
                module = node.args[0].value
                if len(node.args) == 1 and not node.keywords and "importlib.import_module" not in self.resolve(node.func, scopes):
                    module = module.split(".")[0]
                return {module + "".join("." + a for a in reversed(attrs))}
            else:
                break
        if not isinstance(node, ast.Name):
            return set()
        suffix = "".join("." + a for a in reversed(attrs))
        return {base + suffix for base in self.of_name(node.id, scopes)}


def function_locals(func):
    """Names a def or lambda binds as its own locals: parameters, and names assigned, loop or
    `with` targets in its body outside nested scopes and comprehensions (a comprehension binds in
    a scope of its own; its walrus targets are left out, which only errs on the strict side)."""
    a = func.args
    found = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if x is not None}
    if isinstance(func, ast.Lambda):
        return found
    stack = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        if isinstance(node, (*SCOPES, ast.ClassDef)):
            if not isinstance(node, ast.Lambda):
                found.add(node.name)  # `def compile(): ...` binds the name; its body is another scope
            continue
        if not isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr)):
            stack.extend(ast.iter_child_nodes(node))
    return found


def str_const(node):
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def match_table(qualified, table):
    """The table key matching a qualified name (exact, dotted prefix, or "prefix*"), or None."""
    for key in table:
        if key.endswith("*"):
            if qualified.startswith(key[:-1]):
                return key
        elif qualified == key or qualified.startswith(key + "."):
            return key
    return None


def shown(qualified):
    return qualified[len("builtins."):] if qualified.startswith("builtins.") else qualified


# --- Imports, calls and attributes anywhere in the file ---------------------------------------

def check_module_name(report, node, module):
    for table, code in ((FORBIDDEN_MODULES, "forbidden_import"), (RISKY_MODULES, "risky_import"),
                        (META_MODULES, "metaprogramming")):
        key = match_table(module, table)
        if not key:
            continue
        if code == "forbidden_import":
            message = "import of %s is forbidden: it %s" % (short(module), table[key])
        elif code == "risky_import":
            message = "import of %s: %s" % (short(module), table[key])
        else:
            message = "import of %s (%s): %s" % (short(module), table[key], ENFORCED)
        report.add(code, message, node, key=key)
        return


def check_imports(report, node):
    if isinstance(node, ast.Import):
        for alias in node.names:
            check_module_name(report, node, alias.name)
        return
    if node.level or not node.module:
        return  # relative imports have no package to come from in the sandbox; they just fail
    check_module_name(report, node, node.module)
    for alias in node.names:
        if alias.name == "*":
            hidden = sorted(k for k in REFUSED_REFS if k.startswith(node.module + "."))
            if hidden:
                report.add("risky_import", "'from %s import *' brings in names the sandbox refuses at run "
                           "time: %s" % (node.module, ", ".join(hidden)), node, key="*")
            continue
        full = node.module + "." + alias.name
        check_module_name(report, node, full)  # `from http import client` imports http.client
        key = match_table(full, REFUSED_REFS)
        if key:  # the import alone fails nothing; a use in the handler's body is an error (check_reference)
            report.add("risky_import", "import of %s: it %s, which the sandbox refuses at run time"
                       % (short(full), REFUSED_REFS[key]), node, key=key)
        key = match_table(full, META_REFS)
        if key:
            report.add("metaprogramming", "import of %s (%s): %s" % (short(full), META_REFS[key], ENFORCED),
                       node, key=key)


def check_reference(report, node, names, scopes, in_handler):
    for qualified in sorted(names.resolve(node, scopes)):
        name = short(shown(qualified))
        key = match_table(qualified, REFUSED_REFS)
        if key and in_handler:
            report.add("forbidden_call", "use of %s in the handler's own body: it %s, which the sandbox "
                       "refuses, so every call of the handler that gets here fails" % (name, REFUSED_REFS[key]),
                       node, key=key)
        elif key:
            report.add("risky_call", "use of %s: it %s, which the sandbox refuses at run time if this code "
                       "runs" % (name, REFUSED_REFS[key]), node, key=key)
        key = match_table(qualified, RISKY_REFS)
        if key:
            report.add("risky_call", "use of %s: %s" % (name, RISKY_REFS[key]), node, key=key)
        key = match_table(qualified, META_REFS)
        if key:
            report.add("metaprogramming", "use of %s (%s): %s" % (name, META_REFS[key], ENFORCED), node, key=key)


def check_call(report, node, names, scopes):
    funcs = names.resolve(node.func, scopes)
    if funcs & IMPORT_FUNCS and node.args and str_const(node.args[0]) and not node.args[0].value.startswith("."):
        check_module_name(report, node, node.args[0].value)  # __import__("socket") imports socket
    if funcs & DYNAMIC_ATTR_FUNCS and not (len(node.args) >= 2 and str_const(node.args[1])):
        report.add("risky_call", "attribute access by a computed name hides what is used from this check",
                   node, key="getattr")
    if "builtins.vars" in funcs and not node.args:
        report.add("risky_call", "vars() without an argument exposes the namespace for dynamic rebinding",
                   node, key="vars")
    if funcs & OPEN_FUNCS:
        target = node.args[0] if node.args else next(
            (k.value for k in node.keywords if k.arg in ("file", "path", "filename")), None)
        if target is not None and str_const(target) and target.value.startswith("/"):
            path = posixpath.normpath(target.value)
            if path != "/tmp" and not path.startswith("/tmp/"):
                report.add("risky_call", "opening %s: only /tmp is writable in the sandbox and nothing "
                           "else of the host is visible there" % short(target.value), node, key=path)


def meta_attribute(report, attr, node, how):
    report.add("metaprogramming", "%s .%s (introspection: it leads to builtins, globals, code or frames): %s"
               % (how, attr, ENFORCED), node, key=attr)


def check_everywhere(report, tree, names, handler):
    """`handler` is the handler's def (or None): a refused call in its own body is an error."""
    # Docstrings and other bare string statements are prose: nothing can use them as a name.
    prose = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    for node, scopes, inner in walk(tree):
        in_handler = handler is not None and scopes == (handler,)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            check_imports(report, node)
        elif isinstance(node, ast.Attribute):
            if node.attr in META_ATTRIBUTES:
                meta_attribute(report, node.attr, node, "access to")
            if not inner:  # only the whole chain: `os.system.x` is checked once, as os.system.x
                check_reference(report, node, names, scopes, in_handler)
        elif isinstance(node, ast.Name):
            if node.id in META_GLOBALS:
                report.add("metaprogramming", "use of %s (introspection: the module's import machinery and "
                           "builtins): %s" % (node.id, ENFORCED), node, key=node.id)
            if not inner and not isinstance(node.ctx, ast.Store):
                check_reference(report, node, names, scopes, in_handler)
        elif isinstance(node, ast.Call):
            check_call(report, node, names, scopes)
            if not inner:  # getattr(os, "system") is os.system
                check_reference(report, node, names, scopes, in_handler)
        elif isinstance(node, ast.MatchClass):
            for attr in node.kwd_attrs:  # `case C(__globals__=g)` reads f.__globals__
                if attr in META_ATTRIBUTES:
                    meta_attribute(report, attr, node, "matching on")
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in prose:
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            hit = META_IN_STRINGS.search(text)
            if hit:
                meta_attribute(report, hit.group(1), node, "a string naming")


# --- What runs at import time -----------------------------------------------------------------

def is_main_guard(stmt):
    test = stmt.test if isinstance(stmt, ast.If) else None
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


LOOP_NAMES = {ast.For: "a for loop", ast.AsyncFor: "an async for loop", ast.While: "a while loop"}
# Statements whose blocks run when the module loads (a def's body does not; a class body does).
BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def check_import_time(report, tree, main_runs):
    """Module-level code is ordinary Python and runs inside the sandbox under its limits when the
    task loads. Only loops get a word: they are where load time usually goes."""
    work = list(tree.body)
    while work:
        stmt = work.pop()
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if is_main_guard(stmt) and not main_runs:
            work.extend(stmt.orelse)  # the else branch does run at import
            continue
        if type(stmt) in LOOP_NAMES:
            report.add("import_time_work", "%s runs when the module loads; its time counts against the "
                       "sandbox's load timeout (move it into a function if it need not run at load)"
                       % LOOP_NAMES[type(stmt)], stmt)
            continue
        for field in BLOCK_FIELDS:
            for child in getattr(stmt, field, None) or ():
                work.extend(child.body if isinstance(child, (ast.ExceptHandler, ast.match_case)) else [child])


# --- The handler contract ---------------------------------------------------------------------

def top_level_bindings(tree, name, main_runs):
    """Statements that bind `name` when the module is imported, in order (the last one wins)."""
    found, body = [], list(tree.body)
    i = 0
    while i < len(body):
        stmt = body[i]
        i += 1
        if is_main_guard(stmt) and not main_runs:
            body[i:i] = stmt.orelse
            continue
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name == name:
            found.append(stmt)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            if any(local == name for local, _ in imported_names(stmt)):
                found.append(stmt)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t)):
                found.append(stmt)
    return found


def direct_nodes(func):
    """Nodes of a function body, not descending into nested functions, lambdas or classes."""
    stack = list(func.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (*SCOPES, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def check_handler(report, tree, main_runs):
    """Checks the contract; returns the handler's def when `handler` is bound to one."""
    bindings = top_level_bindings(tree, "handler", main_runs)
    if not bindings:
        report.add("handler_missing", "no top-level handler: define `async def handler(payload):` or "
                   "`def handler(payload):` at module level")
        return None
    last = bindings[-1]
    if not isinstance(last, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if isinstance(last, ast.ClassDef):
            what = "a class"
        elif isinstance(last, (ast.Import, ast.ImportFrom)):
            what = "an import"
        elif getattr(last, "value", None) is not None and isinstance(last.value, ast.Lambda):
            what = "a lambda"
        elif isinstance(getattr(last, "value", None), ast.Constant):
            what = "the constant %s" % short(last.value.value, 30)
        else:
            what = "an assignment"
        report.add("handler_not_function", "handler is bound to %s; it must be a function defined with "
                   "`def handler(payload):` or `async def handler(payload):`" % what, last)
        return None
    if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in direct_nodes(last)):
        report.add("handler_not_function", "handler contains yield, so calling it returns a generator "
                   "instead of its result; return the result", last)
    a = last.args
    positional = [*a.posonlyargs, *a.args]
    required = positional[: len(positional) - len(a.defaults)]
    problems = []
    if a.vararg:
        problems.append("it takes *%s" % a.vararg.arg)
    kw_required = [arg.arg for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None]
    if kw_required:
        problems.append("keyword-only parameter%s %s ha%s no default" % (
            "s" if len(kw_required) > 1 else "", ", ".join(kw_required), "ve" if len(kw_required) > 1 else "s"))
    if len(required) != 1:
        problems.append("it has %d required positional parameters%s" % (
            len(required), " (%s)" % ", ".join(r.arg for r in required) if required else ""))
    if problems:
        report.add("handler_arity", "handler must take exactly one required positional parameter, the "
                   "payload (extra parameters need defaults): %s" % "; ".join(problems), last)
    return last


# --- TEST_PAYLOADS ----------------------------------------------------------------------------

def json_problem(value):
    """Why a literal would not survive a JSON round trip unchanged, or None."""
    stack = [(value, ())]
    while stack:
        v, path = stack.pop()
        if v is None or isinstance(v, (bool, str)):
            continue
        where = "TEST_PAYLOADS" + "".join("[%s]" % short(p, 30) if isinstance(p, str) else "[%d]" % p for p in path)
        if isinstance(v, int):
            if abs(v) > JSON_SAFE_INT:
                return "%s: integer is outside the range JSON numbers keep exactly" % where
        elif isinstance(v, float):
            if not math.isfinite(v):
                return "%s: %r is not a JSON number" % (where, v)
        elif isinstance(v, list):
            stack.extend((x, path + (i,)) for i, x in enumerate(v))
        elif isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    return "%s: key %s is not a string" % (where, short(k, 30))
                stack.append((x, path + (k,)))
        else:
            return "%s: a %s is not JSON (use lists, dicts, strings, numbers, booleans, None)" % (where, type(v).__name__)
    return None


def first_non_literal(node):
    for n in ast.walk(node):
        if not isinstance(n, (ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.UnaryOp,
                              ast.USub, ast.UAdd, ast.Load, ast.expr_context)):
            return n
    return node


def check_test_payloads(report, tree, main_runs):
    """Returns the payloads, read only with ast.literal_eval (never executed), or None."""
    bindings = top_level_bindings(tree, "TEST_PAYLOADS", main_runs)
    if not bindings:
        return None
    def bad(message, node):
        report.add("test_payloads_invalid", message, node)

    if len(bindings) > 1:
        return bad("TEST_PAYLOADS is assigned %d times; assign it once" % len(bindings), bindings[-1])
    stmt = bindings[0]
    simple = isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
    if not (simple or (isinstance(stmt, ast.AnnAssign) and stmt.value is not None)):
        return bad("TEST_PAYLOADS must be assigned on its own: `TEST_PAYLOADS = [{...}, ...]`", stmt)
    try:
        value = ast.literal_eval(stmt.value)  # literals only; nothing in the file runs
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        culprit = first_non_literal(stmt.value)
        what = {ast.Call: "a call", ast.Name: "a name", ast.BinOp: "an operator", ast.Attribute: "an attribute",
                ast.JoinedStr: "an f-string"}.get(type(culprit), "a %s expression" % type(culprit).__name__)
        return bad("TEST_PAYLOADS must be a plain literal (it is read with ast.literal_eval and never "
                   "run); found %s" % what, culprit)
    if not isinstance(value, list):
        return bad("TEST_PAYLOADS must be a list of dicts, not a %s" % type(value).__name__, stmt)
    if len(value) > MAX_TEST_PAYLOADS:
        return bad("TEST_PAYLOADS has %d entries; at most %d are allowed" % (len(value), MAX_TEST_PAYLOADS), stmt)
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            return bad("TEST_PAYLOADS[%d] is a %s; every payload must be a dict" % (i, type(entry).__name__), stmt)
    problem = json_problem(value)
    if problem:
        return bad(problem, stmt)
    return value


# --- PEP 723 inline script metadata -----------------------------------------------------------
#
# A handler declares its third-party packages in a `# /// script` block (PEP 723), read here by
# the PEP's rules: its reference regular expression, only the `script` type, two `script` blocks an
# error, the content TOML. The block is only read and validated here; resolving, locking and
# installing it happen on the host.

# The PEP's reference expression: a block is `# /// TYPE`, one or more comment lines (`#` alone or
# `# ` and text), and `# ///`, greedily (a block ends at the last `# ///` of its run of comments).
PEP723_REGEX = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
PEP723_START = re.compile(r"# /// ([a-zA-Z0-9-]+)\Z")
PEP723_FIELDS = {"dependencies", "requires-python", "tool"}
# Bounds on what one block costs to read: parsing each requirement, and placing each bad one.
MAX_DEPENDENCIES = 1000
MAX_SCRIPT_PROBLEMS = 20
TOML_POSITION = re.compile(r" \(at (?:line (\d+), column (\d+)|end of document)\)$")


def metadata_blocks(text):
    """[(type, first line index, closing line index, content)] of every block, as the reference
    regex finds them in `text` (lines split on line feeds only, as `(?m)^`/`$` do), in linear time: the
    regex itself, tried at every `# /// TYPE` line of a long run of comment lines, is quadratic."""
    lines = text.split("\n")
    n = len(lines)
    # A content line is followed by a line end: every line but the last.
    comment = [(line == "#" or line.startswith("# ")) and i < n - 1 for i, line in enumerate(lines)]
    run_end = [0] * n  # the last index of the run of content lines starting at i (i - 1 when none)
    last_close = [-1] * n  # the last `# ///` line at or before i
    for i in range(n - 1, -1, -1):
        run_end[i] = (run_end[i + 1] if i + 1 < n and comment[i + 1] else i) if comment[i] else i - 1
    for i in range(n):
        last_close[i] = i if lines[i] == "# ///" else (last_close[i - 1] if i else -1)
    blocks, i = [], 0
    while i < n:
        start = PEP723_START.match(lines[i]) if i < n - 1 else None
        if start and i + 1 < n and comment[i + 1]:
            # Content i+1 .. k-1 (at least one line, all comment lines), closed by line k = the last
            # `# ///` within the run of comment lines after the start line, or just after it (the
            # file's last line needs no line end).
            close = last_close[min(run_end[i + 1] + 1, n - 1)]
            if close >= i + 2:
                content = "".join(line[2:] + "\n" if line.startswith("# ") else line[1:] + "\n"
                                  for line in lines[i + 1:close])
                blocks.append((start.group(1), i, close, content))
                i = close + 1
                continue
        i += 1
    return blocks


def load_packaging():
    """packaging's requirements and specifiers (Debian's python3-packaging, in the image beside
    pyflakes). Without them a block cannot be judged: raise, and the check fails closed."""
    use_dist_packages()
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    return Requirement, InvalidRequirement, SpecifierSet, InvalidSpecifier


def sandbox_python():
    return "%d.%d.%d" % sys.version_info[:3]


def check_script_metadata(report, text):
    """The file's `script` block as {"dependencies", "requires_python"?, "line"} when there is one
    and it is well formed (requires-python may still exclude this interpreter: that is a finding of
    its own), else None. Line numbers are 1-based file lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # as Python reads a file: universal newlines
    blocks = [b for b in metadata_blocks(text) if b[0] == "script"]
    if not blocks:
        lines = text.split("\n")
        for number, line in enumerate(lines, 1):
            if line == "# /// script":
                report.add("script_metadata_invalid", "'# /// script' with no closing '# ///' line: by PEP 723 "
                           "an unclosed block is ignored, so this file declares no dependencies", line=number,
                           severity="warning")
                break
        return None
    if len(blocks) > 1:
        report.add("script_metadata_invalid", "%d '# /// script' blocks (lines %s); PEP 723 allows one"
                   % (len(blocks), ", ".join(str(b[1] + 1) for b in blocks)), line=blocks[1][1] + 1, col=1)
        return None
    _, start, close, content = blocks[0]
    file_lines = text.split("\n")

    def prefix(number):
        return 2 if file_lines[number - 1].startswith("# ") else 1

    def bad(message, number=None, col=None):
        report.add("script_metadata_invalid", message, line=number or start + 1, col=col)

    def key_at(key):
        """The file line and column of content line `key = ...` (bare or quoted key), or None."""
        for number in range(start + 2, close + 1):
            text = file_lines[number - 1][prefix(number):]
            found = re.match(r"[ \t]*([\"']?)%s\1[ \t]*=" % re.escape(key), text)
            if found:
                return number, prefix(number) + len(text) - len(text.lstrip(" \t")) + 1
        return None

    key_lines = {}

    def where(needle, after=None):
        """The file line and column of key `needle`, or (after key `after`, when given) of the first
        string holding `needle` at or below that key's line, or the block's first line."""
        if after is None:
            return key_at(needle) or (start + 1, None)
        if after not in key_lines:
            key_lines[after] = (key_at(after) or (start + 2,))[0]
        for number in range(key_lines[after], close + 1):
            line = file_lines[number - 1]
            at = line.find(needle, prefix(number))
            if at >= 0:
                return number, at + (0 if at and line[at - 1] in "\"'" else 1)  # at its opening quote
        return start + 1, None

    try:
        import tomllib
        data = tomllib.loads(content)
    except ValueError as exc:  # tomllib.TOMLDecodeError
        message = str(exc)
        pos = TOML_POSITION.search(message)
        number, col = close, None  # "at end of document": the block's last content line
        if pos and pos.group(1):
            number = start + 1 + int(pos.group(1))
            col = int(pos.group(2)) + prefix(number)
        bad("the '# /// script' block is not valid TOML: %s" % TOML_POSITION.sub("", message), number, col)
        return None
    problems = 0
    for key in sorted(set(data) - PEP723_FIELDS):
        number, col = where(key)
        report.add("script_metadata_invalid", "%s is not a PEP 723 field (dependencies, requires-python, tool); "
                   "it is ignored" % short(key), line=number, col=col, severity="warning")
    if "tool" in data and not isinstance(data["tool"], dict):
        problems += 1
        bad("'tool' must be a table", *where("tool"))
    Requirement, InvalidRequirement, SpecifierSet, InvalidSpecifier = load_packaging()
    dependencies = data.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        problems += 1
        bad("'dependencies' must be a list of strings (PEP 508 requirements)", *where("dependencies"))
        dependencies = []
    if len(dependencies) > MAX_DEPENDENCIES:
        problems += 1
        bad("%d dependencies; at most %d are read" % (len(dependencies), MAX_DEPENDENCIES), *where("dependencies"))
        dependencies = []
    parsed = []
    for dep in dependencies:
        if problems >= MAX_SCRIPT_PROBLEMS:
            break  # rejected already; placing each further bad entry would cost time, not tell more
        try:
            req = Requirement(dep)
        except InvalidRequirement as exc:
            problems += 1
            bad("dependency %s is not a PEP 508 requirement: %s" % (short(dep), str(exc).splitlines()[0]),
                *where(dep, after="dependencies"))
            continue
        if req.url:
            problems += 1
            bad("dependency %s names a URL; dependencies come from the package index, by name and version "
                "(a URL would bypass its lock and hashes)" % short(dep), *where(dep, after="dependencies"))
            continue
        parsed.append(str(req))
    requires = data.get("requires-python")
    spec = None
    if requires is not None:
        if not isinstance(requires, str):
            problems += 1
            bad("'requires-python' must be a string (a version specifier such as \">=3.10\")", *where("requires-python"))
        else:
            try:
                spec = SpecifierSet(requires)
            except InvalidSpecifier as exc:
                problems += 1
                bad("'requires-python' is not a version specifier: %s" % str(exc).splitlines()[0],
                    *where("requires-python"))
    if problems:
        return None
    if spec is not None and not spec.contains(sandbox_python(), prereleases=True):
        number, col = where("requires-python")
        report.add("requires_python_mismatch", "requires-python is %s, but the sandbox runs Python %s"
                   % (short(requires), sandbox_python()), line=number, col=col)
    script = {"dependencies": parsed, "line": start + 1}
    if spec is not None:
        script["requires_python"] = requires
    return script


# --- Imports the standard library does not provide --------------------------------------------

# Exceptions whose handler makes a failed import survivable.
IMPORT_ERROR_CATCHERS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
# Always importable in the sandbox though not stdlib modules: the interpreter's own main module.
ALWAYS_PRESENT = {"__main__"}


def catches_import_error(handler):
    if handler.type is None:
        return True
    types_ = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    for t in types_:
        name = t.attr if isinstance(t, ast.Attribute) else t.id if isinstance(t, ast.Name) else None
        if name in IMPORT_ERROR_CATCHERS:
            return True
    return False


def is_type_checking(test):
    """`if TYPE_CHECKING:` / `if typing.TYPE_CHECKING:`: its block never runs."""
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def external_imports(report, tree):
    """Every top-level module the file imports (absolute `import` / `from ... import`, anywhere)
    that the sandbox's standard library does not provide and that is not a forbidden import (those
    are findings already): [{"module", "line", "col", "guarded"}], one per module, at its first
    unguarded import if it has one. `guarded`: the file may load without it, because every import
    of it may not run at load (an `if`/`else` branch: `TYPE_CHECKING`, `PY2`, a platform test; a
    loop; a `match` case; a function's body: a lazy import of an optional package) or is in a `try`
    whose handlers catch ImportError (or its bases, or everything). Only an import that certainly
    runs at load makes an undeclared module an error. Iterative: a hostile file nests deeper than
    Python's recursion limit."""
    found = {}
    stack = [(tree, False)]
    while stack:
        node, guarded = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if (top in sys.stdlib_module_names or top in ALWAYS_PRESENT
                        or match_table(name, FORBIDDEN_MODULES)):
                    continue
                entry = {"module": top, "line": node.lineno, "col": node.col_offset, "guarded": guarded}
                seen = found.get(top)
                if seen is None or (seen["guarded"] and not guarded) or (
                        seen["guarded"] == guarded and (node.lineno, node.col_offset) < (seen["line"], seen["col"])):
                    found[top] = entry
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            # Decorators, defaults and annotations run where the def is; the body when it is called.
            head = [*getattr(node, "decorator_list", ()), node.args, *([node.returns] if getattr(node, "returns", None) else [])]
            stack.extend((child, guarded) for child in head)
            # The body runs only when called: a lazy import of an optional package is no load failure.
            body = node.body if isinstance(node.body, list) else [node.body]
            stack.extend((child, True) for child in body)
        elif isinstance(node, (ast.Try, ast.TryStar)):
            catches = any(catches_import_error(h) for h in node.handlers)
            stack.extend((child, guarded or catches) for child in node.body)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                stack.append((child, guarded))
        elif isinstance(node, ast.If) and is_type_checking(node.test):
            stack.extend((child, True) for child in node.body)
            stack.extend((child, guarded) for child in node.orelse)
        elif isinstance(node, (ast.If, ast.While, ast.For, ast.AsyncFor, ast.Match)):
            # Under a condition (six's `if PY2: import StringIO`, `if sys.platform == ...`), in a loop or
            # a case the file may load without it: an `undeclared_import` there is a warning, and the
            # sandbox run decides. The test, iterable or subject itself runs at load.
            head = node.subject if isinstance(node, ast.Match) else node.iter if isinstance(node, (ast.For, ast.AsyncFor)) else node.test
            stack.append((head, guarded))
            rest = node.cases if isinstance(node, ast.Match) else [*node.body, *node.orelse]
            stack.extend((child, True) for child in rest)
        else:
            stack.extend((child, guarded) for child in ast.iter_child_nodes(node))
    out = sorted(found.values(), key=lambda e: (e["line"], e["col"]))
    for e in out:
        e["col"] = report.char_col(e["line"], e["col"])  # ast's byte offset -> 1-based characters
    return out


# --- Lint (pyflakes) --------------------------------------------------------------------------

# pyflakes message class -> finding code; anything else is "lint".
LINT_CODES = {
    "UndefinedName": "undefined_name", "UndefinedLocal": "undefined_name", "UndefinedExport": "undefined_name",
    "UnusedImport": "unused_import", "UnusedVariable": "unused_variable",
    "RedefinedWhileUnused": "redefined_unused", "ImportShadowedByLoopVar": "redefined_unused",
}


def use_dist_packages():
    if DIST_PACKAGES not in sys.path:
        sys.path.append(DIST_PACKAGES)


def load_pyflakes():
    """pyflakes' checker module, or None. The checker runs with -I -S, so Debian's dist-packages
    (where python3-pyflakes installs, on the host and in the sandbox image) is added here, last,
    for this one import."""
    use_dist_packages()
    try:
        from pyflakes import checker as pyflakes_checker
    except ImportError:
        return None
    return pyflakes_checker


def handler_body_spans(handler):
    """(start, end) positions, as (line, byte col), of the handler's own body, and of the nested
    defs, lambdas and classes in it, whose code runs only if something calls them."""
    if handler is None or not handler.body:
        return None, []
    first, last = handler.body[0], handler.body[-1]
    body = ((first.lineno, first.col_offset), (last.end_lineno, last.end_col_offset))
    nested = [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset))
              for n in direct_nodes(handler) if isinstance(n, (*SCOPES, ast.ClassDef))]
    return body, nested


def check_lint(report, tree, file_name, handler):
    flakes = load_pyflakes()
    if flakes is None:
        report.add("lint_unavailable", "pyflakes is not installed where the checker runs, so names "
                   "and imports were not linted")
        return
    try:
        messages = flakes.Checker(tree, filename=file_name).messages
    except (RecursionError, MemoryError):
        report.add("lint_unavailable", "the file is nested too deeply for the linter; names and "
                   "imports were not linted")
        return
    body, nested = handler_body_spans(handler)
    for m in sorted(messages, key=lambda m: (m.lineno, m.col)):
        code = LINT_CODES.get(type(m).__name__, "lint")
        severity = None
        where = (m.lineno, m.col)
        if (code == "undefined_name" and body and body[0] <= where <= body[1]
                and not any(a <= where <= b for a, b in nested)):
            severity = "error"  # every call of the handler reaches it and fails with a NameError
        message = m.message % m.message_args
        if type(m).__name__ == "UndefinedName":
            message = "%s is not defined" % short(m.message_args[0])  # as Python's NameError says it
        report.add(code, message, line=m.lineno, byte_col=m.col, severity=severity,
                   key=(m.col, m.message))


# --- Putting it together ----------------------------------------------------------------------

def compile_problem(text, file_name):
    """The SyntaxError Python's compiler raises for source the parser accepted ('return' outside
    a function, a duplicate argument, 'await' outside async...), or None. Compiling builds a
    code object and runs nothing; constant folding is size-capped by CPython. From the text, not
    the tree: turning a Python-level tree back into the compiler's own recurses much sooner."""
    try:
        compile(text, file_name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc
    return None


MEMORY_LIMIT = None  # set by main(); unit tests that import nothing see None


def out_of_memory():
    limit = " (%d MiB)" % (MEMORY_LIMIT >> 20) if MEMORY_LIMIT else ""
    return "checking the file needs more memory than the checker may use%s" % limit


def check(source, file_name, max_bytes, policy):
    """The report for one file: {"findings", "test_payloads", "script"?, "external_imports"}."""
    script, imports = None, []

    def finish(report, payloads=None):
        out = {"findings": report.render(), "test_payloads": payloads, "external_imports": imports}
        if script is not None:
            out["script"] = script
        return out

    size = len(source)
    if size > max_bytes and policy.get("too_large", DEFAULT_POLICY["too_large"]) == "error":
        # Rejected anyway: don't spend time parsing it.
        report = Report(policy, [])
        report.add("too_large", "the file is %d bytes; the limit is %d" % (size, max_bytes))
        return finish(report)
    # Python reads a leading UTF-8 byte order mark as a signature and skips it.
    if source.startswith(codecs.BOM_UTF8):
        source = source[len(codecs.BOM_UTF8):]
    report = Report(policy, re.split(rb"\r\n|\r|\n", source))
    lines = report.lines
    if size > max_bytes:
        report.add("too_large", "the file is %d bytes; the limit is %d" % (size, max_bytes))
    payloads = None
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(re.findall(rb"\r\n|\r|\n", source[:exc.start])) + 1
        report.add("not_utf8", "the file is not UTF-8 text (byte 0x%02x at offset %d)"
                   % (source[exc.start], exc.start), line=line)
        return finish(report)
    if b"\0" in source:
        nul = source.index(b"\0")
        report.add("null_bytes", "the file contains NUL bytes", line=len(re.findall(rb"\r\n|\r|\n", source[:nul])) + 1)
        if report.severity("null_bytes") == "error":
            return finish(report)
    script = check_script_metadata(report, text)
    for number, line in enumerate(lines[:2], 1):
        cookie = CODING_COOKIE.match(line)
        if cookie:
            codec = cookie.group(1).decode("ascii").lower().replace("_", "-")
            if codec not in ("utf-8", "utf8") and not codec.startswith("utf-8-"):
                report.add("encoding_declaration", "the coding declaration names %s; task files are "
                           "read as UTF-8, so remove it or declare utf-8" % short(codec), line=number)
            break
    try:
        tree = ast.parse(text, filename=file_name)
        problem = compile_problem(text, file_name)
    except SyntaxError as exc:  # IndentationError and TabError included
        problem = exc
    except ValueError as exc:  # e.g. NUL bytes when null_bytes is not an error
        report.add("syntax_error", str(exc))
        return finish(report)
    except RecursionError:
        report.add("too_complex", "the file is nested too deeply to be parsed")
        return finish(report)
    except MemoryError:
        report.add("too_complex", out_of_memory())
        return finish(report)
    if problem is not None:
        report.add("syntax_error", problem.msg, line=problem.lineno or None, col=problem.offset or None)
        return finish(report)

    # A module loaded as "__main__" runs its `if __name__ == "__main__":` block at import time.
    main_runs = re.sub(r"\.py$", "", posixpath.basename(file_name)) == "__main__"
    try:
        names = Names(tree)
        handler = check_handler(report, tree, main_runs)
        if names.limited:
            report.add("analysis_limited", "names in this file are assigned from each other's attributes in "
                       "too many ways to follow; the check stopped following them, so a use of a name through "
                       "such an alias may go unreported: run-time enforcement applies")
        check_everywhere(report, tree, names, handler)
        check_import_time(report, tree, main_runs)
        payloads = check_test_payloads(report, tree, main_runs)
        check_lint(report, tree, file_name, handler)
        imports = external_imports(report, tree)
    except RecursionError:
        report.add("too_complex", "the file is too deeply nested to be checked")
        payloads = None
    except MemoryError:
        report.add("too_complex", out_of_memory())
        payloads = None
    return finish(report, payloads)


def memory_limit_bytes():
    with open("/proc/meminfo", "rb") as f:
        for line in f:
            if line.startswith(b"MemTotal:"):
                return int(int(line.split()[1]) * 1024 * MEMORY_SHARE)
    raise RuntimeError("no MemTotal in /proc/meminfo")  # fail closed: no check without the limit


def limit_self():
    """Applies this process's limits before the untrusted request is read."""
    limits = {}
    for which, wanted in ((resource.RLIMIT_AS, memory_limit_bytes()), (resource.RLIMIT_CPU, CPU_SECONDS)):
        _, hard = resource.getrlimit(which)
        limits[which] = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)  # never raised
        resource.setrlimit(which, (limits[which], limits[which]))
    return limits[resource.RLIMIT_AS]


def main():
    # The agent starts each checker process ahead of its check: pay for the import (tens of ms under
    # runsc) while it waits for the request, not after.
    load_pyflakes()
    # packaging is not loaded ahead: it costs ~30 ms of CPU (its tags module), and only a file with
    # a `script` block needs it (without it, such a file's check fails: closed).
    global MEMORY_LIMIT
    MEMORY_LIMIT = limit_self()
    try:
        source, file_name, max_bytes, policy = read_request(sys.stdin.buffer.read())
    except RequestError as exc:
        sys.stderr.write("checker: bad request: %s\n" % exc)
        return 2
    result = check(source, file_name, max_bytes, policy)
    # ensure_ascii keeps the line pure ASCII whatever the sandbox's locale and the file's text.
    sys.stdout.write(json.dumps(result, ensure_ascii=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
