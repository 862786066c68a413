"""Is every package an external implementation needs pinned in its requirements.txt?

Run by the Python of the implementation's environment (the environment
builder runs it after ``pip install``; standard library and ``packaging``,
or pip's vendored copy, only)::

    python check_pins.py REQUIREMENTS.txt [--report PIP_REPORT.json]

It walks the dependency tree of the requirements' packages (their
``Requires-Dist``, with the environment's markers and the extras the
requirements name) through the installed distributions, the environment's
own and those the main environment lends it. Every package reached must be
pinned (``name==version``) in the file at the version installed, except
torch and what only torch needs: the environments reuse the main
environment's torch, whose version is part of the environment's key and of
``adapter_info.json``. ``--report``: a ``pip install --dry-run --report``
file, whose packages count as installed (to write the pins before
building). Prints JSON: ``closure`` (name -> installed version), ``unpinned``
(name -> installed version), ``mismatched`` (name -> [pinned, installed]),
``missing`` (required, not installed) and, without ``--report``,
``installed_unpinned`` (packages the environment holds itself, not lent by
the main one, that are not pinned, but pip and what ``venv`` puts in every
environment: e.g. the setuptools upgrade pip makes for torch's sake);
exits 1 when any of these is not empty.
"""
from __future__ import annotations

import json
import re
import sys
import sysconfig
from importlib import metadata

try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:  # pragma: no cover - pip's copy
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version

#: Reused from the main environment, not pinned here (see the module docstring).
FROM_MAIN = ("torch",)
#: pip's own tools, part of every venv.
TOOLS = ("pip",)


def venv_bundled() -> dict[str, str]:
    """What ``python -m venv`` itself puts into a new environment (ensurepip's pip and, up to
    Python 3.11, setuptools): name -> version. Held unpinned by every venv, so not counted."""
    try:
        import ensurepip
    except ImportError:  # pragma: no cover
        return {}
    out = {}
    for name in ("pip", "setuptools"):
        version = getattr(ensurepip, f"_{name.upper()}_VERSION", None)
        if version:
            out[name] = version
    return out


def normalize(name: str) -> str:
    """PEP 503: lower case, runs of '-', '_', '.' as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: str) -> tuple[dict[str, str], list[Requirement]]:
    """(name -> pinned version, the requirements) of a requirements file; refuses a line that is not ``name==version``."""
    pins, reqs = {}, []
    for n, line in enumerate(open(path).read().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        if len(spec) != 1 or spec[0].operator != "==":
            raise SystemExit(f"{path}:{n}: {line!r} is not an exact pin name==version")
        pins[normalize(req.name)] = spec[0].version
        reqs.append(req)
    return pins, reqs


def installed_from_report(path: str) -> dict[str, tuple[str, list[str]]]:
    report = json.load(open(path))
    return {normalize(i["metadata"]["name"]): (i["metadata"]["version"], i["metadata"].get("requires_dist") or [])
            for i in report.get("install", [])}


def closure(reqs: list[Requirement], planned: dict) -> tuple[dict[str, str], list[str]]:
    """Every package reached from ``reqs``: (name -> installed version, names not installed)."""
    env = default_environment()
    seen: dict[str, str] = {}
    missing: list[str] = []
    todo = [(r, frozenset(r.extras)) for r in reqs]
    expanded: set[tuple[str, frozenset]] = set()
    while todo:
        req, extras = todo.pop()
        name = normalize(req.name)
        if name in FROM_MAIN or (name, extras) in expanded:
            continue
        expanded.add((name, extras))
        if name in planned:
            version, requires = planned[name]
        else:
            try:
                dist = metadata.distribution(req.name)
            except metadata.PackageNotFoundError:
                missing.append(name)
                continue
            version, requires = dist.version, dist.requires or []
        seen[name] = version
        for text in requires:
            sub = Requirement(text)
            if sub.marker is not None and not any(
                    sub.marker.evaluate(dict(env, extra=e)) for e in (extras or {""}) | {""}):
                continue
            todo.append((sub, frozenset(sub.extras)))
    return seen, sorted(set(missing))


def check(requirements: str, report: str | None = None) -> dict:
    pins, reqs = read_pins(requirements)
    planned = installed_from_report(report) if report else {}
    seen, missing = closure(reqs, planned)
    unpinned = {n: v for n, v in sorted(seen.items()) if n not in pins and n not in TOOLS}
    mismatched = {n: [pins[n], v] for n, v in sorted(seen.items()) if n in pins and Version(pins[n]) != Version(v)}
    result = {"closure": dict(sorted(seen.items())), "unpinned": unpinned, "mismatched": mismatched,
              "missing": missing}
    if not report:  # what the environment holds itself (not lent by the main one) must be pinned too
        own = metadata.distributions(path=[sysconfig.get_paths()["purelib"]])
        bundled = venv_bundled()
        result["installed_unpinned"] = {
            n: d.version for d in own if (n := normalize(d.metadata["Name"])) not in pins
            and n not in TOOLS and bundled.get(n) != d.version}
    return result


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    report = None
    if "--report" in argv:
        i = argv.index("--report")
        report = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) != 1:
        raise SystemExit(__doc__)
    result = check(argv[0], report)
    print(json.dumps(result, indent=1))
    if any(result.get(k) for k in ("unpinned", "mismatched", "missing", "installed_unpinned")):
        sys.exit(1)


if __name__ == "__main__":
    main()
