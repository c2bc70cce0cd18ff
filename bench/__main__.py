"""Run every benchmark and print its figures as ratios measured in this run."""
import importlib
import pkgutil
import sys
import time

import bench


def main() -> int:
    """Discover ``bench/bench_*.py`` modules, run each ``run()`` and print the figures it returns."""
    modules = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    print(f"jitportal benchmarks: {len(modules)} suite(s)")
    for name in modules:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        figures = module.run()
        print(f"\n[{name}] ({time.perf_counter() - started:.1f}s)")
        for label, value, goal in figures:
            print(f"  {label:<60} {value:>10.3f}   goal {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
