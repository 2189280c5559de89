"""The two checkouts of an A/B run: a git commit checked out as a worktree, or the working tree as it is."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROTOCOL = 1  # the driver's and the sides' message format (bench/ab/side.py); a BASE with another is refused

# What a measurement depends on. Two sides whose trees agree on these paths run the same code, so an accuracy
# trained on an epoch budget must come out bit-identical on one machine (bench/compare/accuracy.py).
CODE_PATHS = ("bench", "models", "datasets", "pyproject.toml")


class SourceError(ValueError):
    """A ref that cannot be checked out, or a checkout that cannot run an A/B side."""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode:
        raise SourceError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"git {' '.join(args)} failed")
    return done.stdout.strip()


def repo_root(start: Path) -> Path:
    try:
        return Path(git(start, "rev-parse", "--show-toplevel"))
    except SourceError:
        raise SourceError(f"{start}: not inside a git checkout (bench ab checks out BASE from git)") from None


def resolve(repo: Path, ref: str) -> str:
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except SourceError:
        shallow = git(repo, "rev-parse", "--is-shallow-repository") == "true"
        raise SourceError(f"{ref!r}: not a commit in {repo}" +
                          ("; this clone is shallow: `git fetch --unshallow` first" if shallow else "")) from None


@dataclass(frozen=True)
class Source:
    """One side's code: `path` holds its checkout, `commit` what it is (None: the working tree as it is)."""

    label: str  # "BASE" / "NEW"
    path: Path
    commit: str | None

    def describe(self) -> str:
        return f"{self.commit[:12]} ({self.path})" if self.commit else f"the working tree ({self.path})"


def checkout(repo: Path, commit: str, where: Path, label: str) -> Source:
    """`commit` as a detached worktree under `where` (reused when it is already there at that commit)."""
    import fcntl

    where.mkdir(parents=True, exist_ok=True)
    with open(where / ".lock", "w") as lock:  # two `bench ab` at once (make regress runs two) share a checkout
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _checkout(repo, commit, where, label)


def _checkout(repo: Path, commit: str, where: Path, label: str) -> Source:
    path = (where / commit[:12]).resolve()
    if path.is_dir():
        try:
            if git(path, "rev-parse", "HEAD") == commit and not git(path, "status", "--porcelain", "--untracked-files=no"):
                return Source(label, path, commit)
        except SourceError:
            pass
        if (path / ".git").exists():
            git(repo, "worktree", "remove", "--force", str(path))
        if path.exists():
            shutil.rmtree(path)
    git(repo, "worktree", "prune")
    git(repo, "worktree", "add", "--detach", "--force", str(path), commit)
    return Source(label, path, commit)


def check_runnable(source: Source) -> None:
    """A checkout from before `bench ab` existed cannot run a side: say so and what to do instead."""
    if not (source.path / "bench" / "ab" / "side.py").is_file():
        raise SourceError(f"{source.label} {source.describe()} predates `bench ab` (no bench/ab/side.py): "
                          f"measure it with `bench run` in a checkout of it and judge with `bench compare`")


def code_difference(repo: Path, base: Source, new: Source) -> list[str]:
    """The files under CODE_PATHS that differ between the two sides ([] = the same code)."""
    if base.commit and new.commit:
        changed = git(repo, "diff", "--name-only", base.commit, new.commit, "--", *CODE_PATHS)
        return changed.splitlines()
    if base.commit is None and new.commit is None:
        return []
    commit, tree = (base, new) if base.commit else (new, base)
    changed = git(tree.path, "diff", "--name-only", commit.commit, "--", *CODE_PATHS).splitlines()
    untracked = git(tree.path, "ls-files", "--others", "--exclude-standard", "--", *CODE_PATHS).splitlines()
    return changed + untracked
