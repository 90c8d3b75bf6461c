"""Building the fused CPU step's library (csrc/fused_step.cpp: plain C++ with a C entry point) on first
use with the system C++ compiler (-O3 -march=native, OpenMP), and loading it with ctypes.

The library depends on the source, the flags, the compiler and the CPU only (no torch or Python headers),
so its file name hashes exactly those and one build serves every environment sharing the cache (a
checkout's venv, a wheel in another). It is compiled to a temporary file and renamed into place, so a
killed build leaves no half-written library; builders of one key take turns under a flock whose wait is
bounded (BuildError after LOCK_WAIT_S) and reported after a few seconds (safe_io.wait_for_lock); every
compile says so when it starts, every HEARTBEAT_S while it runs, and how long it took when it ends.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dsmexp.errors import DsmexpError
from dsmexp.safe_io import exclusive, notice

SOURCE = Path(__file__).resolve().parent / "csrc" / "fused_step.cpp"
CFLAGS = ["-O3", "-march=native", "-fopenmp", "-std=c++17", "-shared", "-fPIC", "-Wno-psabi"]
CACHE_ENV = "DSMEXP_KERNEL_CACHE"  # where builds are cached; default: $XDG_CACHE_HOME/dsmexp/kernels
HEARTBEAT_S = 30.0  # a compile is reported every this many seconds
LOCK_WAIT_S = 900.0  # the longest wait for another builder of the same key (reported: safe_io.wait_for_lock)
COMPILE_TIMEOUT_S = 900.0  # the longest a compile may run


class BuildError(RuntimeError):
    """The fused kernel cannot be built or loaded here; the message says why, in one line."""


def cache_root() -> Path:
    """Where built kernels are kept: $DSMEXP_KERNEL_CACHE, else $XDG_CACHE_HOME/dsmexp/kernels (~/.cache)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dsmexp" / "kernels"


def cache_problem() -> str | None:
    """One line when the kernel cache cannot be a directory (a regular file, or a file on its path)."""
    root = cache_root()
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                named = f"{CACHE_ENV}={root}" if os.environ.get(CACHE_ENV) else f"the kernel cache {root}"
                what = ("is not a directory" if path == root
                        else f"lies under {path}, which is not a directory")
                return f"{named}: {what}; name a directory (or unset {CACHE_ENV}), or use kernel=torch"
            return None
    return None


_loaded: ctypes.CDLL | BuildError | None = None


def load() -> ctypes.CDLL:
    """The compiled library, built on first use and cached on disk; BuildError when it cannot be."""
    global _loaded
    if _loaded is None:
        try:
            _loaded = _build()
        except BuildError as err:
            _loaded = err
    if isinstance(_loaded, BuildError):
        raise _loaded
    return _loaded


def library_path(compiler: str) -> Path:
    """The cached library for this source, compiler, flags and CPU."""
    return cache_root() / f"dsmexp_fused_{_build_key(compiler)}.so"


def _build() -> ctypes.CDLL:
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise BuildError(f"no C++ compiler (CXX={compiler} not found)")
    problem = cache_problem()
    if problem:
        raise BuildError(problem)
    target = library_path(compiler)
    if not target.exists():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BuildError(f"cannot create the kernel cache {target.parent} ({err.strerror})") from None
        doing = f"is compiling the fused CPU kernel into {target.parent}"
        try:
            with exclusive(target.with_suffix(".lock"), doing, LOCK_WAIT_S):  # one builder per key at once
                if not target.exists():  # not built by the process we waited for
                    _compile(compiler, target)
        except DsmexpError as err:  # the wait ran out, or the lock file is a link or cannot be written
            raise BuildError(f"{err}; use kernel=torch") from None
    try:
        return _bind(ctypes.CDLL(str(target)))
    except (OSError, AttributeError) as err:
        raise BuildError(f"cannot load {target} ({err}); delete it to rebuild") from None


def _compile(compiler: str, target: Path) -> None:
    """Compile SOURCE into a temporary file beside `target` and rename it into place (whole or not at all)."""
    for stale in target.parent.glob(f"{target.stem}.*.tmp"):  # left by a killed builder: we hold the lock
        stale.unlink(missing_ok=True)
    partial = target.with_name(f"{target.stem}.{os.getpid()}.tmp")
    command = [compiler, *CFLAGS, str(SOURCE), "-o", str(partial)]
    notice(f"compiling the fused CPU kernel with {compiler} into {target.parent} (first use of this "
           "source, compiler and CPU; some seconds to a minute; kernel=torch skips it)")
    start = time.monotonic()
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    except OSError as err:
        raise BuildError(f"the C++ compiler {compiler} does not run ({err.strerror})") from None
    try:
        while True:
            try:
                output, _ = proc.communicate(timeout=HEARTBEAT_S)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - start
                if elapsed > COMPILE_TIMEOUT_S:
                    proc.kill()
                    raise BuildError(f"the compile ran over {COMPILE_TIMEOUT_S:.0f} s; stopped") from None
                notice(f"still compiling the fused CPU kernel ({elapsed:.0f} s so far)")
        if proc.returncode != 0:
            lines = [line for line in output.splitlines() if "error" in line] or output.splitlines() or ["?"]
            raise BuildError(f"the build failed ({lines[0].strip()})")
        os.replace(partial, target)
    finally:
        if proc.poll() is None:  # interrupted while the compiler ran
            proc.kill()
            proc.wait()
        partial.unlink(missing_ok=True)
    notice(f"compiled the fused CPU kernel in {time.monotonic() - start:.1f} s ({target.name})")


def _die_with_parent() -> None:
    """In the compiler's process (Linux): be killed when dsmexp dies, however it dies, so no orphaned
    compile goes on writing into the cache."""
    ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the C entry point's signature (see fused_step.cpp)."""
    fn = lib.dsmexp_fused_step
    i64, i32, dbl, ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_double, ctypes.c_void_p
    fn.argtypes = [ptr, ptr, ptr, ptr, ptr, i64, i64, i32, i32, i32, dbl, ctypes.POINTER(ptr), ptr, i32, i32,
                   i32, i32, i32, ptr, ptr, ptr, ptr]
    fn.restype = i32
    return lib


def _build_key(compiler: str) -> str:
    """Hash of everything the library depends on: source, flags, compiler (path and version) and this
    CPU's features (a cache shared between machines holds one build per instruction set)."""
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise BuildError(f"the C++ compiler {compiler} does not run ({err})") from err
    parts = [SOURCE.read_bytes().decode(), " ".join(CFLAGS), shutil.which(compiler) or compiler, version,
             platform.machine(), _cpu_features()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _cpu_features() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()
