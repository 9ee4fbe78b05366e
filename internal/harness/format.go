package harness

import (
	"fmt"
	"math"
	"time"
)

// Duration formats d with about three significant digits: in µs below a millisecond, in ms
// below a second, in s above; sep stands between the number and its unit ("250 µs", "1.25ms").
func Duration(d time.Duration, sep string) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f%sµs", float64(d)/1e3, sep)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f%sms", float64(d)/1e6, sep)
	case d < time.Second:
		return fmt.Sprintf("%.0f%sms", float64(d)/1e6, sep)
	}
	return fmt.Sprintf("%.2f%ss", d.Seconds(), sep)
}

// NearestRank returns the p-th quantile of sorted, p in (0, 1], by the nearest-rank method: the
// smallest element that at least a share p of the elements are not above. sorted must not be
// empty.
func NearestRank(sorted []time.Duration, p float64) time.Duration {
	return sorted[max(0, int(math.Ceil(p*float64(len(sorted))))-1)]
}
