"""Worker designs measured by server/bench/run.py --variants; not part of wsgate."""
