package traffic

import (
	"math"
	"time"
)

// NumBuckets is the number of latency buckets of a histogram.
const NumBuckets = 24

// Bounds are the upper bounds of the latency buckets: 250 µs growing by
// 2^0.75 (×1.68) per bucket up to 23 s; the last bucket takes everything
// slower. The bounds are part of what is stored: changing them makes old
// rows mean something else.
var Bounds = func() [NumBuckets - 1]time.Duration {
	var b [NumBuckets - 1]time.Duration
	for i := range b {
		b[i] = time.Duration(float64(250*time.Microsecond) * math.Pow(2, 0.75*float64(i)))
	}
	return b
}()

// Histogram counts requests per latency bucket.
type Histogram [NumBuckets]int64

// BucketOf returns the bucket of a latency: the first whose bound is at
// least d, or the last.
func BucketOf(d time.Duration) int {
	lo, hi := 0, len(Bounds) // binary search over the bounds
	for lo < hi {
		mid := (lo + hi) / 2
		if Bounds[mid] >= d {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// Add counts one request of latency d.
func (h *Histogram) Add(d time.Duration) { h[BucketOf(d)]++ }

// Merge adds counts (of another histogram, possibly stored with fewer
// buckets) into h; counts past NumBuckets go to the last bucket.
func (h *Histogram) Merge(counts []int64) {
	for i, n := range counts {
		h[min(i, NumBuckets-1)] += n
	}
}

// Quantile returns the upper bound of the bucket holding the q-quantile
// (nearest rank) of the counted latencies: at most one bucket above the
// true value. The slowest bucket has no upper bound and answers the bound
// below it. An empty histogram answers 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	var total int64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	rank = max(1, min(rank, total))
	var cum int64
	for i, n := range h {
		if cum += n; cum >= rank {
			return Bounds[min(i, len(Bounds)-1)]
		}
	}
	return Bounds[len(Bounds)-1]
}

// P95 is Quantile(0.95).
func (h *Histogram) P95() time.Duration { return h.Quantile(0.95) }
