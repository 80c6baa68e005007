"""TaskFlow static checker: judges an uploaded task file with Python's own `ast`. It never runs it.

Runs inside the sandbox image as `python3.11 -I -S /opt/taskflow/checker.py` (and with the host's
python3.11 in unit tests), stdlib only.

  stdin:  {"source_b64": str, "file_name": str, "max_bytes": int,
           "policy": {code: "error" | "warning" | "off"}}          (policy optional)
  stdout: one JSON line {"findings": [{"code", "severity", "message", "line"?, "col"?}],
                         "test_payloads": list | null}

Exit 0 whenever a report was written, error findings included. Exit 2 on a malformed request,
1 on a bug in the checker: callers must treat any non-zero exit as a rejection (fail closed).
`line` and `col` are 1-based; `col` counts characters, not bytes.

This check is a first filter and a source of clear messages for honest users. It is not the
security boundary: the gVisor sandbox and the agent's audit hook are. So the rules below aim to
catch every direct and aliased use of a dangerous API and every import-time side effect, and
accept that deliberately obfuscated code ("sys" + "tem") can slip past.
"""

import ast
import base64
import builtins
import json
import math
import posixpath
import re
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
MAX_TEST_PAYLOADS = 20
JSON_SAFE_INT = 2 ** 53 - 1  # beyond this JavaScript's JSON.parse silently changes the number

SPAWNS = "spawns processes"
NATIVE = "calls native code directly, bypassing every Python-level guard"
DYNAMIC_IMPORT = "imports modules by computed names, hiding them from this check"
NETWORK_WARN = "the sandbox has no network, so this will fail at run time"

# Importing any of these (or a submodule: the key matches "a" and "a.b") is an error.
FORBIDDEN_MODULES = {
    "subprocess": SPAWNS, "_posixsubprocess": SPAWNS, "asyncio.subprocess": SPAWNS,
    "multiprocessing": SPAWNS, "_multiprocessing": SPAWNS, "concurrent.futures.process": SPAWNS,
    "pty": SPAWNS, "pipes": SPAWNS, "webbrowser": SPAWNS, "antigravity": SPAWNS,
    "posix": "exposes system, fork and exec without the os module's names",
    "ctypes": NATIVE, "_ctypes": NATIVE, "cffi": NATIVE,
    "socket": "opens sockets", "_socket": "opens sockets", "socketserver": "opens sockets",
    "ssl": "opens sockets",
    "signal": "signals interfere with the sandbox agent's timers", "_signal": "signals interfere with the sandbox agent's timers",
    "importlib": DYNAMIC_IMPORT, "imp": DYNAMIC_IMPORT, "zipimport": DYNAMIC_IMPORT,
    "runpy": DYNAMIC_IMPORT, "pkgutil": DYNAMIC_IMPORT, "_imp": DYNAMIC_IMPORT,
    "_frozen_importlib": DYNAMIC_IMPORT, "_frozen_importlib_external": DYNAMIC_IMPORT,
    "code": "compiles and runs source built at run time", "codeop": "compiles source built at run time",
    "pickle": "unpickling runs arbitrary callables", "_pickle": "unpickling runs arbitrary callables",
    "shelve": "unpickling runs arbitrary callables", "marshal": "loads raw code objects",
    "gc": "reaches every live object, the sandbox agent's included",
    "__main__": "reaches the sandbox agent's own module",
}
# Importing these is reported but allowed. shutil, tempfile and os are allowed silently: what they
# can do to files is confined by the read-only root and the small /tmp.
RISKY_MODULES = {
    "threading": "threads outlive the call that started them; the sandbox caps their number",
    "_thread": "threads outlive the call that started them; the sandbox caps their number",
    "concurrent": "worker pools outlive the call that started them; the sandbox caps their number",
    "http.client": NETWORK_WARN, "http.server": NETWORK_WARN, "urllib.request": NETWORK_WARN,
    "ftplib": NETWORK_WARN, "smtplib": NETWORK_WARN, "poplib": NETWORK_WARN, "imaplib": NETWORK_WARN,
    "nntplib": NETWORK_WARN, "telnetlib": NETWORK_WARN, "xmlrpc": NETWORK_WARN,
    "requests": NETWORK_WARN, "httpx": NETWORK_WARN, "aiohttp": NETWORK_WARN, "urllib3": NETWORK_WARN,
    "websockets": NETWORK_WARN,
    "inspect": "frame introspection reaches outside the handler",
    "builtins": "direct access to the builtins namespace",
}
# Any use of these names (a call, a reference, an alias, `from M import name`) is an error.
# Keys match "a.b" and "a.b.anything"; a key ending in "*" matches any name with that prefix.
FORBIDDEN_REFS = {
    "os.system": "runs a shell command", "os.popen": "runs a shell command",
    "os.exec*": "replaces the process with another program", "os.spawn*": SPAWNS,
    "os.posix_spawn*": SPAWNS, "os.fork": SPAWNS, "os.forkpty": SPAWNS,
    "os.kill": "signals other processes", "os.killpg": "signals other processes",
    "asyncio.create_subprocess_exec": SPAWNS, "asyncio.create_subprocess_shell": SPAWNS,
    "asyncio.subprocess": SPAWNS, "concurrent.futures.ProcessPoolExecutor": SPAWNS,
    "builtins.eval": "runs code built at run time, hiding it from this check",
    "builtins.exec": "runs code built at run time, hiding it from this check",
    "builtins.compile": "builds code at run time, hiding it from this check",
    "builtins.__import__": DYNAMIC_IMPORT,
    "builtins.breakpoint": "starts an interactive debugger",
    "types.CodeType": "builds code objects at run time", "types.FunctionType": "builds functions from raw code objects",
    "sys._getframe": "walks interpreter frames outside the handler",
    "sys._current_frames": "walks interpreter frames outside the handler",
    "sys.settrace": "hooks into the interpreter", "sys.setprofile": "hooks into the interpreter",
    "sys.addaudithook": "hooks into the interpreter's audit events",
    "sys.modules": "reaches every loaded module, the sandbox agent's included",
    "sys.meta_path": DYNAMIC_IMPORT, "sys.path_hooks": DYNAMIC_IMPORT,
}
RISKY_REFS = {
    "os._exit": "ends the sandbox process; the run is reported as failed",
    "os.abort": "ends the sandbox process; the run is reported as failed",
    "builtins.globals": "exposes the module namespace for dynamic rebinding",
}
# Attribute names that are escape gadgets: from any object they lead to builtins, other modules'
# globals, code objects or interpreter frames. Flagged as `.name`, in `match` class patterns and
# inside string constants (getattr(x, "__globals__"), "{0.__globals__}".format(f)).
FORBIDDEN_ATTRIBUTES = {
    "__subclasses__", "__globals__", "__builtins__", "__code__", "__loader__", "__spec__",
    "__bases__", "__base__", "__mro__", "__closure__", "__self__", "__getattribute__", "__import__",
    "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "tb_frame",
    "gi_frame", "cr_frame", "ag_frame", "gi_code", "cr_code", "ag_code",
}
# Module globals that are escape gadgets by themselves.
FORBIDDEN_GLOBALS = {"__builtins__", "__loader__", "__spec__"}
FORBIDDEN_IN_STRINGS = re.compile(
    r"(?<![A-Za-z0-9_])(%s)(?![A-Za-z0-9_])" % "|".join(sorted(FORBIDDEN_ATTRIBUTES)))
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

    def add(self, code, message, node=None, line=None, col=None, key=None):
        """Records a finding. `key` deduplicates findings of one code on one line."""
        if node is not None and getattr(node, "lineno", None) is not None:
            line, col = node.lineno, self.char_col(node.lineno, node.col_offset)
        if key is not None:
            if (code, line, key) in self.seen:
                return
            self.seen.add((code, line, key))
        finding = {"code": code, "message": ("line %d: %s" % (line, message)) if line else message}
        if line:
            finding["line"] = line
            if col:
                finding["col"] = col
        self.findings.append(finding)

    def char_col(self, line, byte_offset):
        if not 0 < line <= len(self.lines):
            return byte_offset + 1
        return len(self.lines[line - 1][:byte_offset].decode("utf-8", "ignore")) + 1

    def severity(self, code):
        return self.policy.get(code, DEFAULT_POLICY[code])

    def render(self):
        out = []
        for f in sorted(self.findings, key=lambda f: (f.get("line", 0), f.get("col", 0))):
            severity = self.severity(f["code"])
            if severity != "off":
                out.append({"code": f["code"], "severity": severity, **{k: v for k, v in f.items() if k != "code"}})
        if len(out) > MAX_FINDINGS:
            dropped = len(out) - MAX_FINDINGS
            # Errors first when cutting, so a cut list never hides why a file was rejected.
            out = sorted(out, key=lambda f: f["severity"] != "error")[:MAX_FINDINGS]
            out.sort(key=lambda f: (f.get("line", 0), f.get("col", 0)))
            if self.severity("too_many_findings") != "off":
                out.append({"code": "too_many_findings", "severity": self.severity("too_many_findings"),
                            "message": "%d more findings were left out" % dropped})
        return out


# --- Reading the request ---------------------------------------------------------------------

def read_request(raw):
    try:
        req = json.loads(raw)
    except ValueError as exc:
        raise RequestError("stdin is not JSON: %s" % exc)
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
        raise RequestError("source_b64 is not base64: %s" % exc)
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
    be shadowed only by an import in the module's top level or in an enclosing function, and
    never if the name is ever declared global/nonlocal or deleted (that is how a file would
    unshadow it again).
    """

    ALIAS_PASSES = 8  # enough for `a = os; b = a; c = b`, bounded so `a = a.b` cannot grow forever

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
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                aliases.extend((t.id, node.value, scopes) for t in targets if isinstance(t, ast.Name))
        for _ in range(self.ALIAS_PASSES):
            changed = False
            for name, value, scopes in aliases:
                meanings = self.resolve(value, scopes)
                if not meanings <= self.bindings.get(name, set()):
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
            else:
                break
        if not isinstance(node, ast.Name):
            return set()
        suffix = "".join("." + a for a in reversed(attrs))
        return {base + suffix for base in self.of_name(node.id, scopes)}


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
    for table, code in ((FORBIDDEN_MODULES, "forbidden_import"), (RISKY_MODULES, "risky_import")):
        key = match_table(module, table)
        if key:
            verb = "forbidden" if code == "forbidden_import" else "discouraged"
            report.add(code, "import of %s is %s: %s" % (short(module), verb, table[key]), node, key=key)
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
            hidden = sorted(k for k in FORBIDDEN_REFS if k.startswith(node.module + "."))
            if hidden:
                report.add("forbidden_import", "'from %s import *' brings in forbidden names: %s"
                           % (node.module, ", ".join(hidden)), node, key="*")
            continue
        full = node.module + "." + alias.name
        check_module_name(report, node, full)  # `from http import client` imports http.client
        for table, code in ((FORBIDDEN_REFS, "forbidden_import"), (RISKY_REFS, "risky_import")):
            key = match_table(full, table)
            if key:
                report.add(code, "import of %s is %s: %s" % (short(full),
                           "forbidden" if code == "forbidden_import" else "discouraged", table[key]),
                           node, key=key)


def check_reference(report, node, names, scopes):
    for qualified in sorted(names.resolve(node, scopes)):
        for table, code in ((FORBIDDEN_REFS, "forbidden_call"), (RISKY_REFS, "risky_call")):
            key = match_table(qualified, table)
            if key:
                verb = "forbidden" if code == "forbidden_call" else "discouraged"
                report.add(code, "use of %s is %s: %s" % (short(shown(qualified)), verb, table[key]),
                           node, key=key)


def check_call(report, node, names, scopes):
    funcs = names.resolve(node.func, scopes)
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


def check_everywhere(report, tree, names):
    for node, scopes, inner in walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            check_imports(report, node)
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_ATTRIBUTES:
                report.add("forbidden_attribute", "access to .%s is forbidden: it is a way out of the "
                           "handler to builtins, globals, code or frames" % node.attr, node, key=node.attr)
            if not inner:  # only the whole chain: `os.system.x` is checked once, as os.system.x
                check_reference(report, node, names, scopes)
        elif isinstance(node, ast.Name):
            if node.id in FORBIDDEN_GLOBALS:
                report.add("forbidden_attribute", "use of %s is forbidden: it is a way out of the "
                           "handler" % node.id, node, key=node.id)
            if not inner and not isinstance(node.ctx, ast.Store):
                check_reference(report, node, names, scopes)
        elif isinstance(node, ast.Call):
            check_call(report, node, names, scopes)
            if not inner:  # getattr(os, "system") is os.system
                check_reference(report, node, names, scopes)
        elif isinstance(node, ast.MatchClass):
            for attr in node.kwd_attrs:  # `case C(__globals__=g)` reads f.__globals__
                if attr in FORBIDDEN_ATTRIBUTES:
                    report.add("forbidden_attribute", "matching on .%s is forbidden: it is a way out of "
                               "the handler" % attr, node, key=attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            hit = FORBIDDEN_IN_STRINGS.search(text)
            if hit:
                report.add("forbidden_attribute", "the string mentions %s, which only serves dynamic "
                           "access to an escape gadget" % hit.group(1), node, key=hit.group(1))


# --- What runs at import time -----------------------------------------------------------------

def small_arithmetic(node):
    """True for arithmetic on number literals whose result cannot outgrow the source text, like
    64 * 1024 or 8 << 20. Excluded: `**` (10**10**10 spins), big shifts (1 << 10**9 allocates) and
    any string or bytes operand ("x" * 10**9 allocates)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Constant) and type(n.value) in (int, float):
            continue
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            stack.append(n.operand)
        elif isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)):
            stack.extend((n.left, n.right))
        elif (isinstance(n, ast.BinOp) and isinstance(n.op, (ast.LShift, ast.RShift))
              and isinstance(n.right, ast.Constant) and type(n.right.value) is int and 0 <= n.right.value <= 64):
            stack.append(n.left)
        else:
            return False
    return True


def inert(node):
    """True for expressions that compute nothing worth the name: literals, small arithmetic on
    numbers, names, attribute chains, subscripts (type hints like dict[str, int]) and `|` unions.
    No calls, no comprehensions, nothing that could allocate or spin at import time."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Constant, ast.Name)):
            continue
        if isinstance(n, ast.BinOp) and not isinstance(n.op, ast.BitOr):
            if not small_arithmetic(n):
                return False
            continue
        if isinstance(n, ast.Attribute):
            stack.append(n.value)
        elif isinstance(n, ast.Subscript):
            stack.extend((n.value, n.slice))
        elif isinstance(n, (ast.Tuple, ast.List, ast.Set)):
            stack.extend(n.elts)
        elif isinstance(n, ast.Dict):
            stack.extend(k for k in n.keys if k is not None)
            stack.extend(n.values)
        elif isinstance(n, ast.Lambda):  # defining one runs nothing but its defaults
            stack.extend(n.args.defaults)
            stack.extend(d for d in n.args.kw_defaults if d is not None)
        elif isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            stack.append(n.operand)
        elif isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
            stack.extend((n.left, n.right))
        else:
            return False
    return True


def dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def decorator_ok(node):
    """`@name`, `@mod.name` or `@name(literal args)` like @functools.lru_cache(maxsize=32)."""
    if isinstance(node, ast.Call):
        return dotted(node.func) is not None and all(
            inert(a) for a in [*node.args, *(k.value for k in node.keywords)])
    return dotted(node) is not None


def is_main_guard(stmt):
    test = stmt.test if isinstance(stmt, ast.If) else None
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def assign_targets_ok(targets):
    stack = list(targets)
    while stack:
        t = stack.pop()
        if isinstance(t, (ast.Tuple, ast.List)):
            stack.extend(t.elts)
        elif isinstance(t, ast.Starred):
            stack.append(t.value)
        elif not isinstance(t, ast.Name):
            return False  # x.attr = ... or x[k] = ... mutates something at import time
    return True


STATEMENT_NAMES = {
    ast.For: "a for loop", ast.AsyncFor: "an async for loop", ast.While: "a while loop",
    ast.If: "an if block", ast.With: "a with block", ast.AsyncWith: "an async with block",
    ast.Try: "a try block", ast.TryStar: "a try block", ast.Raise: "a raise statement",
    ast.Assert: "an assert", ast.Delete: "a del statement", ast.Global: "a global statement",
    ast.Nonlocal: "a nonlocal statement", ast.AugAssign: "an augmented assignment",
    ast.Match: "a match statement",
}


def side_effect(stmt, lazy_annotations):
    """(why, where) a module- or class-level statement would run code at import time, or None."""
    computed = "an assignment whose value is computed (a call, a comprehension, `**`...) runs at import time"
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass)):
        return None
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        for d in stmt.decorator_list:
            if not decorator_ok(d):
                return "a decorator that computes something runs when %s is defined" % stmt.name, d
        if isinstance(stmt, ast.ClassDef):
            for b in [*stmt.bases, *(k.value for k in stmt.keywords)]:
                if not inert(b):
                    return "class %s's bases are computed at import time" % stmt.name, b
            return None
        a = stmt.args
        for d in [*a.defaults, *(d for d in a.kw_defaults if d is not None)]:
            if not inert(d):
                return "a default value of %s() is computed at import time" % stmt.name, d
        if not lazy_annotations:
            annotations = [x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
                           if x is not None and x.annotation is not None]
            for x in annotations + ([stmt.returns] if stmt.returns else []):
                if not inert(x):
                    return "an annotation of %s() is computed at import time" % stmt.name, x
        return None
    if isinstance(stmt, ast.Expr):
        if isinstance(stmt.value, ast.Constant):
            return None  # docstrings, `...`
        if isinstance(stmt.value, ast.Call):
            name = dotted(stmt.value.func)
            return "a call%s runs at import time" % (" to %s" % short(name) if name else ""), stmt
        return "an expression statement runs at import time", stmt
    if isinstance(stmt, ast.Assign):
        if not assign_targets_ok(stmt.targets):
            return "an assignment to an attribute or item mutates something at import time", stmt
        return None if inert(stmt.value) else (computed, stmt)
    if isinstance(stmt, ast.AnnAssign):
        if not isinstance(stmt.target, ast.Name):
            return "an assignment to an attribute or item mutates something at import time", stmt
        if not lazy_annotations and not inert(stmt.annotation):
            return "the annotation is computed at import time", stmt
        if stmt.value is not None and not inert(stmt.value):
            return computed, stmt
        return None
    return "%s runs at import time" % STATEMENT_NAMES.get(type(stmt), "this statement"), stmt


def check_top_level(report, tree, main_runs):
    lazy = any(isinstance(s, ast.ImportFrom) and s.module == "__future__"
               and any(a.name == "annotations" for a in s.names) for s in tree.body)
    allowed = ("only imports, defs, classes, docstrings, constant assignments and "
               "`if __name__ == \"__main__\":` blocks may be at top level")
    work = list(tree.body)
    while work:
        stmt = work.pop()
        if is_main_guard(stmt) and not main_runs:
            work.extend(stmt.orelse)  # the else branch does run at import
            continue
        if isinstance(stmt, ast.ClassDef):
            work.extend(stmt.body)  # a class body runs at import time, so it obeys the same rule
        problem = side_effect(stmt, lazy)
        if problem:
            report.add("top_level_statement", "%s; %s" % (problem[0], allowed), problem[1])


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
    bindings = top_level_bindings(tree, "handler", main_runs)
    if not bindings:
        report.add("handler_missing", "no top-level handler: define `async def handler(payload):` or "
                   "`def handler(payload):` at module level")
        return
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
        return
    if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in direct_nodes(last)):
        report.add("handler_not_function", "handler contains yield, so calling it returns a generator "
                   "instead of its result; return the result", last)
    a = last.args
    positional = [*a.posonlyargs, *a.args]
    required = positional[: len(positional) - len(a.defaults)]
    problems = []
    if a.vararg:
        problems.append("it takes *%s" % a.vararg.arg)
    kw_required = [arg.arg for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is None]
    if kw_required:
        problems.append("keyword-only parameter%s %s ha%s no default" % (
            "s" if len(kw_required) > 1 else "", ", ".join(kw_required), "ve" if len(kw_required) > 1 else "s"))
    if len(required) != 1:
        problems.append("it has %d required positional parameters%s" % (
            len(required), " (%s)" % ", ".join(r.arg for r in required) if required else ""))
    if problems:
        report.add("handler_arity", "handler must take exactly one required positional parameter, the "
                   "payload (extra parameters need defaults): %s" % "; ".join(problems), last)


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
    bad = lambda message, node: report.add("test_payloads_invalid", message, node)
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


# --- Putting it together ----------------------------------------------------------------------

def check(source, file_name, max_bytes, policy):
    """The report for one file: (findings, test_payloads)."""
    lines = re.split(rb"\r\n|\r|\n", source)
    report = Report(policy, lines)
    payloads = None
    if len(source) > max_bytes:
        report.add("too_large", "the file is %d bytes; the limit is %d" % (len(source), max_bytes))
        if report.severity("too_large") == "error":
            return report.render(), None  # rejected anyway: don't spend time parsing it
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = source.count(b"\n", 0, exc.start) + 1
        report.add("not_utf8", "the file is not UTF-8 text (byte 0x%02x at offset %d)"
                   % (source[exc.start], exc.start), line=line)
        return report.render(), None
    if b"\0" in source:
        report.add("null_bytes", "the file contains NUL bytes", line=source.count(b"\n", 0, source.index(b"\0")) + 1)
        if report.severity("null_bytes") == "error":
            return report.render(), None
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
    except SyntaxError as exc:  # IndentationError and TabError included
        hint = "; the file starts with a byte order mark: save it as UTF-8 without BOM" if text.startswith("\ufeff") else ""
        report.add("syntax_error", exc.msg + hint, line=exc.lineno or None, col=exc.offset or None)
        return report.render(), None
    except ValueError as exc:  # e.g. NUL bytes when null_bytes is not an error
        report.add("syntax_error", str(exc))
        return report.render(), None
    except (RecursionError, MemoryError):
        report.add("too_complex", "the file is nested too deeply to be parsed")
        return report.render(), None

    # A module loaded as "__main__" runs its `if __name__ == "__main__":` block at import time.
    main_runs = re.sub(r"\.py$", "", posixpath.basename(file_name)) == "__main__"
    try:
        names = Names(tree)
        check_everywhere(report, tree, names)
        check_top_level(report, tree, main_runs)
        check_handler(report, tree, main_runs)
        payloads = check_test_payloads(report, tree, main_runs)
    except (RecursionError, MemoryError):
        report.add("too_complex", "the file is too deeply nested to be checked")
        payloads = None
    return report.render(), payloads


def main():
    try:
        source, file_name, max_bytes, policy = read_request(sys.stdin.buffer.read())
    except RequestError as exc:
        sys.stderr.write("checker: bad request: %s\n" % exc)
        return 2
    findings, payloads = check(source, file_name, max_bytes, policy)
    # ensure_ascii keeps the line pure ASCII whatever the sandbox's locale and the file's text.
    sys.stdout.write(json.dumps({"findings": findings, "test_payloads": payloads}, ensure_ascii=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
