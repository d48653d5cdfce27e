"""Sessions for the rlworks workspace.

Every session installs from ``uv.lock`` into its own virtual environment, so what passes here is
what a user gets:

- ``tests(<member>)``: exactly that member's locked dependencies (its extras and groups, plus the
  root ``dev`` group) and its fast tests. A dependency the member forgot to declare fails here even
  though a sibling declares it. The app ``rl-train`` is tested here in its base install (no
  method), without ``tests/extras``.
- ``extra(<name>)``: ``rl-train`` with that one install extra (``rl-train[mrq-drq]``, ...) and the
  tests of that extra (``apps/rl-train/tests/extras/test_<name>_*.py``), so each extra installs and
  works on its own.
- ``slow``: the tests marked ``slow`` (learning runs, kill-and-resume, Ray), all members at once.
- ``lint``: ruff format --check and ruff check.
- ``typecheck``: pyright over every member and ``benchmarks/``; strict on rl-buffers and rl-nets
  (see pyproject).
- ``wheels``: every member builds a wheel that installs alone into a clean venv, from its own wheel,
  its sibling wheels and the registry, then imports.

``nox -s tests`` is the README's test command. Pytest writes a JUnit report per session under
``.nox-reports/`` so that ``.ci/run`` can print one total.
"""

from __future__ import annotations

import pathlib
import re
import tomllib

import nox

ROOT = pathlib.Path(__file__).parent
REPORTS = ROOT / ".nox-reports"

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "extra"]
nox.needs_version = ">=2025.2.9"


def _members() -> dict[str, pathlib.Path]:
    """Workspace members by project name, in a stable order."""
    found: dict[str, pathlib.Path] = {}
    for pattern in ("packages/*/pyproject.toml", "apps/*/pyproject.toml"):
        for pyproject in sorted(ROOT.glob(pattern)):
            name = tomllib.loads(pyproject.read_text())["project"]["name"]
            found[name] = pyproject.parent
    return found


MEMBERS = _members()
APP = "rl-train"
APP_EXTRAS = list(
    tomllib.loads((MEMBERS[APP] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
)


def _sync(session: nox.Session, *args: str) -> None:
    # nox's uv backend exports UV_PROJECT_ENVIRONMENT=<this session's venv>, so `uv sync` fills
    # this venv, exactly as locked (and removes anything the lock does not list).
    session.run_install("uv", "sync", "--locked", *args)


def _pytest(session: nox.Session, report: str, *args: str) -> None:
    REPORTS.mkdir(exist_ok=True)
    session.run(
        "pytest",
        f"--junitxml={REPORTS / (report + '.xml')}",
        *args,
        *session.posargs,
        # 5 = nothing collected (e.g. a member with no slow tests yet).
        success_codes=[0, 5],
    )


@nox.session
@nox.parametrize("member", list(MEMBERS), ids=list(MEMBERS))
def tests(session: nox.Session, member: str) -> None:
    """Fast tests of one member, in a venv holding only its locked dependencies."""
    if member == APP:  # the base install: no method extra
        _sync(session, "--package", member, "--all-groups")
        tests_dir = MEMBERS[member] / "tests"
        _pytest(session, f"tests-{member}", str(tests_dir), "--ignore", str(tests_dir / "extras"),
                "-m", "not slow")  # fmt: skip
        return
    _sync(session, "--package", member, "--all-extras", "--all-groups")
    _pytest(session, f"tests-{member}", str(MEMBERS[member]), "-m", "not slow")


@nox.session
@nox.parametrize("name", APP_EXTRAS, ids=APP_EXTRAS)
def extra(session: nox.Session, name: str) -> None:
    """rl-train with one install extra alone: it installs, imports, and its fast tests pass."""
    _sync(session, "--package", APP, "--extra", name, "--all-groups")
    files = sorted((MEMBERS[APP] / "tests" / "extras").glob(f"test_{name.replace('-', '_')}_*.py"))
    files += sorted((MEMBERS[APP] / "tests" / "extras").glob(f"test_{name.replace('-', '_')}.py"))
    if files:
        _pytest(session, f"extra-{name}", *(str(f) for f in files), "-m", "not slow")
    else:  # an extra without a test file of its own (ogbench, ray): it installs and imports
        module = {"ogbench": "ogbench", "ray": "ray"}.get(name, name.replace("-", "_"))
        session.run("python", "-c", f"import {module}")


@nox.session
def slow(session: nox.Session) -> None:
    """Tests marked `slow`, every member."""
    _sync(session, "--all-packages", "--all-extras", "--all-groups")
    _pytest(session, "slow", *(str(p) for p in MEMBERS.values()), "-m", "slow")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format --check and ruff check over the whole tree; the CI matrix lists every member."""
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    match = re.search(r"member: \[(.*?)\]", workflow)
    listed = sorted(m.strip() for m in match.group(1).split(",")) if match else []
    if listed != sorted(MEMBERS):
        session.error(
            f".github/workflows/ci.yml matrix lists {listed}, members are {sorted(MEMBERS)}"
        )
    _sync(session, "--only-group", "dev")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """pyright on every member's sources (strict for the shared packages)."""
    _sync(session, "--all-packages", "--all-extras", "--all-groups")
    python = pathlib.Path(session.virtualenv.location) / "bin" / "python"
    sources = [str(p / "src") for p in MEMBERS.values()] + ["benchmarks"]
    session.run("pyright", "--pythonpath", str(python), *sources)


def _workspace_deps(member: str) -> list[str]:
    """The member and, transitively, every workspace member it depends on."""
    todo, seen = [member], []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        pyproject = tomllib.loads((MEMBERS[name] / "pyproject.toml").read_text())
        sources = pyproject.get("tool", {}).get("uv", {}).get("sources", {})
        todo.extend(dep for dep, src in sources.items() if src.get("workspace") and dep in MEMBERS)
    return seen


@nox.session(venv_backend="none")
def wheels(session: nox.Session) -> None:
    """Build every member's wheel; install each alone (with its sibling wheels) and import it."""
    dist = ROOT / "dist"
    session.run("rm", "-rf", str(dist), external=True)
    session.run("uv", "build", "--all-packages", "--wheel", "-o", str(dist), external=True)
    for member in MEMBERS:
        wheel_files = []
        for dep in _workspace_deps(member):
            stem = dep.replace("-", "_")
            matches = sorted(dist.glob(f"{stem}-*.whl"))
            if len(matches) != 1:
                session.error(f"expected one wheel for {dep} in {dist}, found {matches}")
            wheel_files.append(str(matches[0]))
        venv = ROOT / ".nox" / f"wheel-{member}"
        session.run("rm", "-rf", str(venv), external=True)
        session.run("uv", "venv", "-q", "--python", "3.11", str(venv), external=True)
        # The wheel files are named explicitly, so siblings come from dist/, never from an index,
        # and nothing of the workspace (sources, lock) takes part: this is what `pip install` sees.
        session.run(
            "uv", "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
            *wheel_files, external=True,
        )  # fmt: skip
        module = member.replace("-", "_")
        session.run(
            str(venv / "bin" / "python"), "-c",
            f"import {module}, importlib.metadata as m; print('{member}', m.version('{member}'), 'imports')",
            external=True,
        )  # fmt: skip
