"""One git worktree per task, on branch ``jetpack/<task-id>``, merged back on success.

Merges into the project's checked-out branch are serialised by a file lock
(``.jetpack/merge.lock``), so two ``jetpack start`` processes never merge at
once. A conflict aborts the merge and fails the task with the reason; the
branch stays for a look. A worktree whose claim was lost is kept for review
(:meth:`WorktreeManager.keep`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from jetpack.cli._process import run_process

__all__ = ["GitError", "Worktree", "WorktreeManager"]

logger = logging.getLogger(__name__)


class GitError(Exception):
    """A git command failed; the message holds its output."""


@dataclass(frozen=True, slots=True)
class Worktree:
    """A task's checkout."""

    path: Path
    branch: str
    base: str


class WorktreeManager:
    """Creates, commits, merges and removes task worktrees of one repository."""

    def __init__(self, repo: Path, *, merge: bool = True) -> None:
        self.repo = repo
        self.merge = merge
        self.root = repo / ".jetpack" / "worktrees"

    async def git(self, *args: str, cwd: Path | None = None) -> str:
        """Run git; raise GitError with its output on failure."""
        proc = await run_process(["git", *args], cwd=cwd or self.repo, timeout_s=120)
        output = "\n".join(proc.stdout_tail + proc.stderr_tail).strip()
        if not proc.ok:
            raise GitError(f"git {' '.join(args)}: {output or proc.spawn_error or 'failed'}")
        return "\n".join(proc.stdout_tail).strip()

    async def create(self, task_id: str) -> Worktree:
        """A fresh worktree for the task, branched from the current HEAD."""
        base = await self.git("rev-parse", "--abbrev-ref", "HEAD")
        branch = f"jetpack/{task_id}"
        path = self.root / task_id.replace("/", "_")
        if path.exists():
            await self._remove_path(path)
        self.root.mkdir(parents=True, exist_ok=True)
        exists = await self._branch_exists(branch)
        if exists:
            await self.git("worktree", "add", str(path), branch)
        else:
            await self.git("worktree", "add", "-b", branch, str(path), "HEAD")
        return Worktree(path, branch, base)

    async def _branch_exists(self, branch: str) -> bool:
        try:
            await self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        except GitError:
            return False
        return True

    async def _commit_all(self, tree: Worktree, message: str) -> None:
        """Commit every change in the worktree (nothing when it is clean)."""
        await self.git("add", "-A", cwd=tree.path)
        if await self.git("status", "--porcelain", cwd=tree.path):
            await self.git(
                "-c",
                "user.name=jetpack",
                "-c",
                "user.email=jetpack@localhost",
                "commit",
                "-q",
                "-m",
                message,
                cwd=tree.path,
            )

    async def finish(self, tree: Worktree, message: str) -> str:
        """Commit the worktree's changes, then merge its branch (or leave it for review).

        Returns what happened, for the task result. A conflict raises GitError
        after aborting the merge.
        """
        await self._commit_all(tree, message)
        if not self.merge:
            return f"left on branch {tree.branch} for review"
        lock_path = self.repo / ".jetpack" / "merge.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
            try:
                try:
                    await self.git(
                        "-c",
                        "user.name=jetpack",
                        "-c",
                        "user.email=jetpack@localhost",
                        "merge",
                        "--no-ff",
                        "-q",
                        "-m",
                        f"Merge {tree.branch}",
                        tree.branch,
                    )
                except GitError as exc:
                    try:
                        await self.git("merge", "--abort")
                    except GitError:
                        logger.warning("git merge --abort failed after a conflict")
                    raise GitError(f"merge of {tree.branch} failed: {exc}") from exc
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        return f"merged {tree.branch} into {tree.base}"

    async def keep(self, tree: Worktree, label: str) -> Worktree:
        """Keep a worktree for review (its claim was lost: the task runs again elsewhere).

        Its changes are committed on a new branch ``jetpack/kept/<task>-<label>``
        and the checkout moves to ``.jetpack/worktrees/kept/``, so the task's
        next attempt (which reuses the task's path and branch) leaves it alone.
        """
        name = f"{tree.path.name}-{label}".replace("/", "_")
        branch = f"jetpack/kept/{name}"
        await self.git("checkout", "-q", "-b", branch, cwd=tree.path)
        await self._commit_all(tree, f"Kept for review: the claim on {tree.path.name} was lost")
        target = self.root / "kept" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        await self.git("worktree", "move", str(tree.path), str(target))
        return Worktree(target, branch, tree.base)

    async def remove(self, tree: Worktree) -> None:
        """Remove the checkout (the branch stays)."""
        await self._remove_path(tree.path)

    async def _remove_path(self, path: Path) -> None:
        try:
            await self.git("worktree", "remove", "--force", str(path))
        except GitError:
            shutil.rmtree(path, ignore_errors=True)
            await self.git("worktree", "prune")
