"""Giving back the library pages that start-up touched (Linux; standard library only).

Importing TensorFlow runs the static initialisers of its shared libraries (every op and kernel registers
itself), which touches about 0.35 GiB of their code and constants. Those pages stay mapped into the process
and count in its resident set for the whole run, although training uses few of them again. They are clean
copies of the library files, so the process can unmap them (`madvise(MADV_DONTNEED)`) and lose nothing: a
page that is used later is mapped back from the kernel's page cache (or read again from its file). The
train command does this after its imports and again after its first step (`--release_start_up_pages`).

Only read-only, private mappings of files with no copied-on-write pages are released, so nothing the
process wrote is dropped. Where this is not Linux, or /proc or libc's `madvise` is missing, nothing happens.
"""

import ctypes
import re

MADV_DONTNEED = 4  # Linux's value (asm-generic/mman-common.h)
SMAPS = "/proc/self/smaps"
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) \S+ \S+ \S+(?:\s+(.*))?$")


def releasable_ranges(smaps_lines):
    """The (start, end) addresses of the read-only, private mappings of files that hold no anonymous
    (copied-on-write) pages, from the lines of /proc/<pid>/smaps."""
    ranges, current = [], None
    for line in smaps_lines:
        header = _HEADER.match(line)
        if header:
            start, end, permissions, path = header.groups()
            candidate = permissions[1] == "-" and permissions[3] == "p" and (path or "").startswith("/")
            current = (int(start, 16), int(end, 16)) if candidate else None
        elif current and line.startswith("Anonymous:"):
            if int(line.split()[1]) == 0:
                ranges.append(current)
            current = None
    return ranges


def _file_resident_gib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 2 ** 20
    return None


def release_library_pages():
    """Unmaps the resident pages of this process's read-only private file mappings (libraries' code and
    constants); returns the GiB of file-backed resident memory that went, or None where this cannot run."""
    try:
        with open(SMAPS) as smaps:
            ranges = releasable_ranges(smaps)
        before = _file_resident_gib()
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for start, end in ranges:
        madvise(start, end - start, MADV_DONTNEED)  # a mapping it refuses (e.g. locked) keeps its pages
    after = _file_resident_gib()
    return None if before is None or after is None else before - after
