"""Filesystem targets for bench/compare: make a fresh filesystem, mount, remount cold, tear down.

Every target owns only what it started: daemons are tracked by PID, loop devices by the name
losetup returned, images live in the run's work directory.  Nothing here uses pkill/killall.
"""

import os
import shutil
import signal
import subprocess
import time

GiB = 1 << 30


def sh(cmd, check=True, timeout=600, **kw):
    r = subprocess.run(cmd, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
    return r


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 1 and parts[1].replace("\\040", " ") == path:
                return True
    return False


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def proc_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Target:
    name = "?"
    daemon = False  # a userspace daemon serves the mount (FUSE)

    def __init__(self, workdir, image_size, log):
        self.dir = os.path.join(workdir, self.name)
        self.image = os.path.join(self.dir, "image")
        self.mnt = os.path.join(self.dir, "mnt")
        self.size = image_size
        self.log = log
        self.proc = None

    # -- to override
    def check(self):
        """Returns None when the target can run here, else the reason it cannot."""
        return None

    def mkfs(self):
        pass

    def _mount(self):
        raise NotImplementedError

    def _umount(self):
        raise NotImplementedError

    def destroy(self):
        self._remove_image()

    # -- common
    def _remove_image(self):
        if os.path.exists(self.image):
            os.unlink(self.image)

    def _sparse_image(self):
        """A fresh sparse image file of the target's size."""
        self._remove_image()
        with open(self.image, "wb") as f:
            f.truncate(self.size)

    def pid(self):
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def peak_rss_kib(self):
        p = self.pid()
        return peak_rss_kib(p) if p else None

    def fresh(self):
        """A new, empty filesystem, mounted at self.mnt."""
        self.teardown()
        os.makedirs(self.mnt, exist_ok=True)
        self.mkfs()
        self._mount()
        wait_for(lambda: is_mounted(self.mnt), 30, f"{self.name} mount")

    def remount_cold(self):
        """Unmount, drop the page cache, mount again: nothing of the data is cached anywhere."""
        self._umount()
        drop_caches()
        self._mount()
        wait_for(lambda: is_mounted(self.mnt), 60, f"{self.name} remount")

    def teardown(self):
        if is_mounted(self.mnt):
            try:
                self._umount()
            except Exception as e:  # last resort: lazy unmount of our own mount point
                self.log(f"  {self.name}: unmount failed ({e}); lazy unmount")
                sh(["umount", "-l", self.mnt], check=False)
        self._stop_daemon()
        self.destroy()

    def _stop_daemon(self, timeout=60):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.log(f"  {self.name}: daemon {self.proc.pid} did not exit; SIGTERM")
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None

    def _fuse_unmount(self):
        sh(["fusermount3", "-u", self.mnt], check=False)
        if is_mounted(self.mnt):
            sh(["umount", self.mnt], check=False)
        # the daemon makes everything durable after the unmount: wait for it to exit
        self._stop_daemon(timeout=300)

    def _spawn(self, argv):
        logf = open(os.path.join(self.dir, "daemon.log"), "a")
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if is_mounted(self.mnt):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {self.proc.returncode}: "
                                   + tail(os.path.join(self.dir, "daemon.log")))
            time.sleep(0.05)
        raise RuntimeError(f"{argv[0]} did not mount within 30 s")


def tail(path, n=3):
    try:
        with open(path) as f:
            return " | ".join(l.strip() for l in f.readlines()[-n:])
    except OSError:
        return ""


URING_PARAM = "/sys/module/fuse/parameters/enable_uring"


class PermFS(Target):
    """PermFS over /dev/fuse (`permfs`, -o nouring) or over io_uring (`permfs-uring`, -o uring:
    per-CPU queues, Linux 6.14+; the mount turns fuse.enable_uring on, bench/compare puts the
    parameter back as it was at the end)."""
    name = "permfs"
    daemon = True

    def __init__(self, workdir, image_size, log, binary, options, uring=False):
        self.name = "permfs-uring" if uring else "permfs"
        super().__init__(workdir, image_size, log)
        self.bin = binary
        self.uring = uring
        self.options = ",".join(o for o in ("uring" if uring else "nouring", options) if o)

    def check(self):
        if not (self.bin and os.access(self.bin, os.X_OK)):
            return f"permfs binary not found ({self.bin}); build it with cmake --build --preset default"
        if not os.path.exists("/dev/fuse"):
            return "/dev/fuse missing"
        if self.uring and not os.path.exists(URING_PARAM):
            return "this kernel has no FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING)"
        return None

    def mkfs(self):
        self._remove_image()
        sh([self.bin, "mkfs", self.image, "--size", str(self.size), "-q"])

    def _mount(self):
        argv = [self.bin, "mount", self.image, self.mnt, "-f"]
        if self.options:
            argv += ["-o", self.options]
        self._spawn(argv)

    def _umount(self):
        self._fuse_unmount()


class Fuse2fs(Target):
    name = "fuse2fs"
    daemon = True

    def check(self):
        if not shutil.which("fuse2fs"):
            return "fuse2fs not installed (Debian package fuse2fs)"
        if not shutil.which("mkfs.ext4"):
            return "mkfs.ext4 not installed (e2fsprogs)"
        return None

    def mkfs(self):
        self._sparse_image()
        sh(["mkfs.ext4", "-q", "-F", self.image])

    def _mount(self):
        # -f: foreground so the daemon is our child and we know its PID
        self._spawn(["fuse2fs", self.image, self.mnt, "-f"])

    def _umount(self):
        self._fuse_unmount()


class Ext4(Target):
    name = "ext4"
    loopdev = None

    def check(self):
        if not shutil.which("losetup"):
            return "losetup missing"
        if not os.path.exists("/dev/loop-control"):
            return "no loop devices"
        return None

    def mkfs(self):
        self._sparse_image()
        self.loopdev = sh(["losetup", "-f", "--show", self.image]).stdout.strip()
        sh(["mkfs.ext4", "-q", "-F", self.loopdev])

    def _mount(self):
        sh(["mount", "-t", "ext4", self.loopdev, self.mnt])

    def _umount(self):
        sh(["umount", self.mnt])

    def destroy(self):
        if self.loopdev:
            sh(["losetup", "-d", self.loopdev], check=False)
            self.loopdev = None
        self._remove_image()


class Tmpfs(Target):
    name = "tmpfs"

    def _mount(self):
        sh(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "bench-tmpfs", self.mnt])

    def remount_cold(self):
        # tmpfs data lives only in the page cache: a remount would lose it; it is the ceiling
        drop_caches()

    def _umount(self):
        sh(["umount", self.mnt])


class ZfsFuse(Target):
    """zfs-fuse: a pool on a file vdev, default dataset properties (compression, dedup off)."""
    name = "zfs-fuse"
    daemon = True

    def __init__(self, workdir, image_size, log, arc_mb):
        super().__init__(workdir, image_size, log)
        self.seq = 0
        self.pool = f"pcmp{os.getpid()}"
        self.arc_mb = arc_mb
        self.created = False

    def check(self):
        for b in ("zfs-fuse", "zpool", "zfs"):
            if not shutil.which(b):
                return f"{b} not installed (Debian package zfs-fuse)"
        if os.path.exists("/var/run/zfs/zfs_socket"):
            # another zfs-fuse daemon owns the socket; we do not touch daemons we did not start
            try:
                r = sh(["zpool", "list", "-H"], check=False, timeout=10)
                if r.returncode == 0:
                    return "another zfs-fuse daemon is running on this machine"
            except Exception:
                pass
        return None

    def _start_daemon(self):
        logf = open(os.path.join(self.dir, "daemon.log"), "a")
        argv = ["zfs-fuse", "-n", "--no-kstat-mount"]
        if self.arc_mb:
            argv += ["-m", str(self.arc_mb)]
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("zfs-fuse exited: " + tail(os.path.join(self.dir, "daemon.log")))
            return sh(["zpool", "list", "-H"], check=False, timeout=10).returncode == 0
        wait_for(ready, 30, "zfs-fuse daemon")

    def _stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self._stop_daemon(timeout=60)

    def mkfs(self):
        self._sparse_image()
        if not self.pid():
            self._start_daemon()
        # a new pool name each time, and no cache file: a restarted daemon imports nothing by itself
        self.seq += 1
        self.pool = f"pcmp{os.getpid()}x{self.seq}"
        sh(["zpool", "create", "-f", "-o", "cachefile=none", "-m", self.mnt, self.pool, self.image])
        self.created = True

    def _mount(self):
        if not self.pid():
            self._start_daemon()
            sh(["zpool", "import", "-o", "cachefile=none", "-d", self.dir, self.pool])
        elif not is_mounted(self.mnt):
            sh(["zfs", "mount", self.pool], check=False)

    def _umount(self):
        # the ARC lives in the daemon: export and restart it so that a remount is cold
        sh(["zpool", "export", self.pool], check=False)
        self._stop()

    def teardown(self):
        if self.pid():
            if self.created:
                r = sh(["zpool", "destroy", "-f", self.pool], check=False)
                if r.returncode:
                    self.log(f"  zfs-fuse: zpool destroy {self.pool}: {r.stderr.strip()[-200:]}")
            self._stop()
        self.created = False
        self._remove_image()


ALL = ["permfs", "permfs-uring", "fuse2fs", "zfs-fuse", "ext4", "tmpfs"]


def is_permfs(name):
    return name.startswith("permfs")


def make(name, workdir, image_size, log, args):
    if is_permfs(name):
        return PermFS(workdir, image_size, log, args.permfs_bin, args.permfs_options,
                      uring=name == "permfs-uring")
    if name == "fuse2fs":
        return Fuse2fs(workdir, image_size, log)
    if name == "zfs-fuse":
        return ZfsFuse(workdir, image_size, log, args.zfs_arc_mb)
    if name == "ext4":
        return Ext4(workdir, image_size, log)
    if name == "tmpfs":
        return Tmpfs(workdir, image_size, log)
    raise ValueError("unknown target " + name)
