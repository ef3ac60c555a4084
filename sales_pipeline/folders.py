"""The pipeline's folders: created private to their user, and never opened to others.

Run as root, the embedded PostgreSQL runs as a system user of its own (PostgreSQL refuses root), which
must reach its data folder and its binaries through their parent folders. pgserver would make every one
of those parents readable by every local user (chmod o+rx); `let_user_traverse` grants that one user the
right to pass through a folder (an ACL entry, `--x`) and changes nothing else: what other users, and the
folder's group, may do stays as it was. The ACL is written as the kernel's `system.posix_acl_access`
attribute, so no `setfacl` is needed.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import struct
from contextlib import suppress
from pathlib import Path

ACL_ATTRIBUTE = "system.posix_acl_access"
ACL_VERSION = 2
# Entry tags of a POSIX ACL (linux/posix_acl.h), in the order the kernel wants them.
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
NO_ID = 0xFFFFFFFF
EXECUTE = 0o1
Entry = tuple[int, int, int]  # tag, permission bits (rwx), user or group id


class FolderAccessError(Exception):
    """A folder the embedded server's user cannot reach, and may not be let into without opening it to all."""


def make_private(folder: Path) -> Path:
    """Create `folder` and its missing parents readable by this user only (0700). Folders that exist
    keep their mode: they are not ours to change."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with suppress(FileExistsError):  # another command made it meanwhile
            path.mkdir(mode=0o700)
    return folder


def let_user_traverse(path: Path, user: str) -> None:
    """Let `user` pass through every parent folder of `path` that would stop it, by an ACL entry for that
    user alone; nothing changes where it can already pass."""
    account = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, account.pw_gid))
    for folder in path.resolve().parents:
        entries = _acl(folder)
        if not _can_traverse(folder.stat(), entries, account.pw_uid, groups):
            _write_acl(folder, _with_traverse(entries, account.pw_uid))


def _acl(folder: Path) -> list[Entry]:
    """The folder's ACL; without one, the three entries its mode stands for."""
    try:
        data = os.getxattr(folder, ACL_ATTRIBUTE)
    except OSError as error:
        if error.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            raise
        mode = folder.stat().st_mode
        return [(USER_OBJ, mode >> 6 & 7, NO_ID), (GROUP_OBJ, mode >> 3 & 7, NO_ID), (OTHER, mode & 7, NO_ID)]
    return [struct.unpack_from("<HHI", data, offset) for offset in range(4, len(data), 8)]


def _can_traverse(status: os.stat_result, entries: list[Entry], uid: int, groups: set[int]) -> bool:
    """Whether `uid` may pass through the folder, as the kernel decides it (owner, named user, groups, others)."""
    permissions = {(tag, ident): perm for tag, perm, ident in entries}
    mask = permissions.get((MASK, NO_ID), 7)
    if status.st_uid == uid:
        return bool(permissions[(USER_OBJ, NO_ID)] & EXECUTE)
    if (USER, uid) in permissions:
        return bool(permissions[(USER, uid)] & mask & EXECUTE)
    matching = [perm for (tag, ident), perm in permissions.items() if tag == GROUP and ident in groups]
    if status.st_gid in groups:
        matching.append(permissions[(GROUP_OBJ, NO_ID)])
    if matching:
        return any(perm & mask & EXECUTE for perm in matching)
    return bool(permissions[(OTHER, NO_ID)] & EXECUTE)


def _with_traverse(entries: list[Entry], uid: int) -> list[Entry]:
    """The ACL plus `uid:--x`, every other entry's effective rights unchanged.

    The mask bounds the group class (named users, the group, named groups). It gains x for the new entry;
    an entry whose x the old mask hid loses it, so that it gains nothing.
    """
    old_mask = next((perm for tag, perm, _ in entries if tag == MASK), None)
    hidden_x = old_mask is not None and not old_mask & EXECUTE
    changed = []
    for tag, perm, ident in entries:
        if tag == MASK or (tag == USER and ident == uid):
            continue
        if hidden_x and tag in (USER, GROUP_OBJ, GROUP):
            perm &= ~EXECUTE
        changed.append((tag, perm, ident))
    own = next((perm for tag, perm, ident in entries if tag == USER and ident == uid), 0)
    group_obj = next(perm for tag, perm, _ in entries if tag == GROUP_OBJ)
    mask = (group_obj if old_mask is None else old_mask) | EXECUTE
    changed += [(USER, own | EXECUTE, uid), (MASK, mask, NO_ID)]
    return sorted(changed, key=lambda entry: (entry[0], entry[2]))


def _write_acl(folder: Path, entries: list[Entry]) -> None:
    data = struct.pack("<I", ACL_VERSION) + b"".join(struct.pack("<HHI", *entry) for entry in entries)
    try:
        os.setxattr(folder, ACL_ATTRIBUTE, data)
    except OSError as error:
        mode = stat.filemode(folder.stat().st_mode)
        raise FolderAccessError(
            f"the embedded PostgreSQL runs as its own user when started as root, and that user cannot pass "
            f"through {folder} ({mode}); letting it in alone failed ({error.strerror}: this file system takes no "
            "ACL?) and opening the folder to every user is not an option: set SALES_PIPELINE_HOME to a folder "
            "other users may pass through, or run as another user, or set SALES_PIPELINE_DATABASE_URL"
        ) from None
