"""A pass-through FUSE file system whose writes can be made to fail, for the fault tests.

    python faultfs.py BACKING MOUNTPOINT CONTROL

Everything under MOUNTPOINT is BACKING's. CONTROL is a file outside the mount holding the fault
in force: empty (none), ``EROFS`` (the folder turned read-only: every write, sync, create, delete
fails as on a file system remounted read-only) or ``ENOSPC`` (the disk is full: writes that add
data fail). The fault is read on each operation, so a test flips it by rewriting CONTROL, with no
signal and no restart; unmount with ``umount MOUNTPOINT``.

Only the operations SQLite and the relay use are passed through.
"""

from __future__ import annotations

import errno
import os
import sys

import mfusepy as fuse


class FaultFS(fuse.Operations):  # type: ignore[misc]
    def __init__(self, backing: str, control: str):
        self.backing = backing
        self.control = control

    def _fault(self) -> int | None:
        try:
            with open(self.control) as f:
                name = f.read().strip()
        except OSError:
            return None
        return getattr(errno, name, None) if name else None

    def _refuse(self, *faults: int) -> None:
        fault = self._fault()
        if fault is not None and fault in faults:
            raise fuse.FuseOSError(fault)

    def _path(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    # reads pass through whatever the fault
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        st = os.lstat(self._path(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime", "st_mtime", "st_ctime")
        return {key: getattr(st, key) for key in keys}

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._path(path))]

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self._path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {key: getattr(sv, key) for key in keys}

    def access(self, path: str, amode: int) -> int:
        if amode & os.W_OK:
            self._refuse(errno.EROFS)
        if not os.access(self._path(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def open(self, path: str, flags: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR):
            self._refuse(errno.EROFS)
        return os.open(self._path(path), flags)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    # writes fail under the fault
    def create(self, path: str, mode: int, fi: object = None) -> int:
        self._refuse(errno.EROFS, errno.ENOSPC)
        return os.open(self._path(path), os.O_RDWR | os.O_CREAT, mode)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._refuse(errno.EROFS, errno.ENOSPC)
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self._refuse(errno.EROFS)
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._path(path), length)
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self._refuse(errno.EROFS)
        os.fsync(fh)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        self._refuse(errno.EROFS)
        return 0

    def unlink(self, path: str) -> int:
        self._refuse(errno.EROFS)
        os.unlink(self._path(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        self._refuse(errno.EROFS)
        os.rename(self._path(old), self._path(new))
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        self._refuse(errno.EROFS, errno.ENOSPC)
        os.mkdir(self._path(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        self._refuse(errno.EROFS)
        os.rmdir(self._path(path))
        return 0

    def chmod(self, path: str, mode: int) -> int:
        self._refuse(errno.EROFS)
        os.chmod(self._path(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        self._refuse(errno.EROFS)
        os.chown(self._path(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[float, float] | None = None) -> int:
        self._refuse(errno.EROFS)
        os.utime(self._path(path), times)
        return 0


def main() -> None:
    backing, mountpoint, control = sys.argv[1:4]
    fuse.FUSE(FaultFS(backing, control), mountpoint, foreground=True, nothreads=True, allow_other=False)


if __name__ == "__main__":
    main()
