package traffic

import (
	"math"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestBucketsAreLogSpaced(t *testing.T) {
	for i := 1; i < len(Bounds); i++ {
		if r := float64(Bounds[i]) / float64(Bounds[i-1]); math.Abs(r-math.Pow(2, 0.75)) > 0.01 {
			t.Fatalf("bound %d / bound %d = %.3f", i, i-1, r)
		}
	}
	if Bounds[0] != 250*time.Microsecond || Bounds[len(Bounds)-1] < 20*time.Second {
		t.Errorf("bounds span %v to %v", Bounds[0], Bounds[len(Bounds)-1])
	}
}

func TestQuantileFromBuckets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		want    time.Duration
	}{
		{"empty", nil, 0},
		{"one fast request", []time.Duration{100 * time.Microsecond}, Bounds[0]},
		{"on a bound", []time.Duration{Bounds[5]}, Bounds[5]},
		{"just above a bound", []time.Duration{Bounds[5] + 1}, Bounds[6]},
		{"slower than every bound", []time.Duration{time.Minute}, Bounds[len(Bounds)-1]},
		{"95 fast, 5 slow", append(repeat(time.Millisecond, 95), repeat(time.Second, 5)...), Bounds[BucketOf(time.Millisecond)]},
		{"94 fast, 6 slow", append(repeat(time.Millisecond, 94), repeat(time.Second, 6)...), Bounds[BucketOf(time.Second)]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, d := range tc.samples {
				h.Add(d)
			}
			if got := h.P95(); got != tc.want {
				t.Errorf("p95 = %v, want %v", got, tc.want)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration { return slices.Repeat([]time.Duration{d}, n) }

// The p95 read from the histogram of any samples is within one bucket of
// their true p95 (nearest rank).
func TestQuantileWithinOneBucketProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		samples := rapid.SliceOfN(rapid.Int64Range(0, int64(time.Minute)), 1, 500).Draw(t, "samples")
		var h Histogram
		ds := make([]time.Duration, len(samples))
		for i, s := range samples {
			ds[i] = time.Duration(s)
			h.Add(ds[i])
		}
		slices.Sort(ds)
		truth := ds[int(math.Ceil(0.95*float64(len(ds))))-1]
		got := h.P95()
		if d := BucketOf(got) - BucketOf(truth); d < -1 || d > 1 {
			t.Fatalf("p95 %v is in bucket %d, the true p95 %v in bucket %d", got, BucketOf(got), truth, BucketOf(truth))
		}
	})
}

func TestMergeOfShorterAndLongerHistograms(t *testing.T) {
	var h Histogram
	h.Merge([]int64{1, 2})
	h.Merge(make([]int64, NumBuckets+2)) // more buckets than known: the excess goes last
	long := make([]int64, NumBuckets+1)
	long[NumBuckets] = 3
	h.Merge(long)
	if h[0] != 1 || h[1] != 2 || h[NumBuckets-1] != 3 {
		t.Errorf("merged = %v", h)
	}
}
