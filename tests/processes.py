"""Find and check processes through /proc by parent pid and start time, never by name."""

from __future__ import annotations

from pathlib import Path


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = proc_stat(pid)
    return int(fields[19]) if fields else None


def nice_of(pid: int) -> int | None:
    fields = proc_stat(pid)
    return int(fields[16]) if fields else None


def children_of(parent: int) -> set[tuple[int, int]]:
    """(pid, start ticks) of the live child processes of `parent`."""
    found: set[tuple[int, int]] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields and fields[0] != "Z" and int(fields[1]) == parent:
                found.add((int(entry.name), int(fields[19])))
    return found


def is_alive(process: tuple[int, int]) -> bool:
    """True while the process with this pid and start time exists and is not a zombie."""
    fields = proc_stat(process[0])
    return fields is not None and fields[0] != "Z" and int(fields[19]) == process[1]
