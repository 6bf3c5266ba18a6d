"""Giving back the library pages that start-up touched (Linux; standard library only).

Importing TensorFlow runs the static initialisers of its shared libraries (every op and kernel registers
itself), which leaves hundreds of MiB of their files resident in the process. Those pages would count in its
resident set for the whole run, although training uses few of them again. They are clean copies of the
library files, so the process can unmap them (`madvise(MADV_DONTNEED)`): a page that is used later is
faulted back in from the kernel's page cache (or read again from its file). The pages stay in the page cache
until the kernel needs the memory, so the machine's memory in use does not fall at once; the process's
resident set does. The train command does this after its imports and again after its first step
(`--release_start_up_pages`).

Only shared libraries (`*.so`, `*.so.N`) are released, and of them only read-only, private mappings with no
copied-on-write pages, resident or swapped out, and no huge pages: nothing the process wrote is dropped.
Libraries stay mapped for the life of the process (nothing unloads them during training), so the ranges read
from /proc/self/smaps are still theirs when they are released. Where this is not Linux, or /proc or libc's
`madvise` is missing, nothing happens.
"""

import ctypes
import re

MADV_DONTNEED = 4  # Linux's value (asm-generic/mman-common.h)
SMAPS = "/proc/self/smaps"
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) \S+ \S+ \S+(?:\s+(.*))?$")
_LIBRARY = re.compile(r"\.so(\.[0-9][^/]*)?$")
# Every one must be listed, and 0: pages the process wrote (resident or in swap) and huge pages (which
# smaps does not count as Anonymous) are never released.
_MUST_BE_ZERO = ("Anonymous", "Swap", "Private_Hugetlb", "Shared_Hugetlb")


def releasable_ranges(smaps_lines):
    """The (start, end) addresses of the read-only, private mappings of shared libraries that hold no anonymous
    (copied-on-write) pages, none swapped out and no huge pages, from the lines of /proc/<pid>/smaps."""
    ranges, current, fields = [], None, {}

    def close():
        if current and all(fields.get(name) == 0 for name in _MUST_BE_ZERO):
            ranges.append(current)

    for line in smaps_lines:
        header = _HEADER.match(line)
        if header:
            close()
            start, end, permissions, path = header.groups()
            library = _LIBRARY.search(path or "") is not None and (path or "").startswith("/")
            current = (int(start, 16), int(end, 16)) if permissions[1] == "-" and permissions[3] == "p" and library else None
            fields = {}
        elif current:
            name, _, value = line.partition(":")
            if name in _MUST_BE_ZERO:
                fields[name] = int(value.split()[0])
    close()
    return ranges


def _file_resident_gib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 2 ** 20
    return None


def release_library_pages():
    """Unmaps the resident pages of this process's read-only, private library mappings (code and constants);
    returns the GiB of file-backed resident memory that went, or None where this cannot run."""
    try:
        with open(SMAPS) as smaps:
            ranges = releasable_ranges(smaps)
        before = _file_resident_gib()
        madvise = ctypes.CDLL(None).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for start, end in ranges:
        madvise(start, end - start, MADV_DONTNEED)  # a mapping it refuses (e.g. locked) keeps its pages
    after = _file_resident_gib()
    return None if before is None or after is None else before - after
