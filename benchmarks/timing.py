"""What the benchmark scripts share: the median wall-clock time of a callable after one warm-up call."""
import statistics
import time


def timed(fn, repeats):
    fn()  # warm-up (allocator, kernel choice)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
