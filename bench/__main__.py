"""Run every benchmark and print its figures as ratios measured in this run."""
import importlib
import pkgutil
import sys
import time

import bench


def main(argv: list[str]) -> int:
    """Discover ``bench/bench_*.py`` modules, run each ``run()`` and print the figures it returns.

    Names on the command line (``python -m bench bench_requests``) run only those suites.
    """
    modules = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    if argv:
        unknown = sorted(set(argv) - set(modules))
        if unknown:
            print(f"unknown suite(s): {', '.join(unknown)}; known: {', '.join(modules)}", file=sys.stderr)
            return 2
        modules = [name for name in modules if name in argv]
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
    sys.exit(main(sys.argv[1:]))
