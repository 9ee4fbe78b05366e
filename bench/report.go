package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-cache/stampede/internal/harness"
)

// table is a markdown table.
type table struct {
	header []string
	rows   [][]string
	left   int // leading columns aligned left; the others, numbers, align right
}

func newTable(header ...string) *table { return &table{header: header, left: 1} }

func (t *table) add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, row)
}

// write prints the table with its columns padded.
func (t *table) write(w io.Writer) {
	width := make([]int, len(t.header))
	for i, h := range t.header {
		width[i] = max(3, len(h))
	}
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i < t.left {
				b.WriteString(" " + c + pad + " |")
			} else {
				b.WriteString(" " + pad + c + " |")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(t.header)
	sep := make([]string, len(t.header))
	for i := range sep {
		if i < t.left {
			sep[i] = strings.Repeat("-", width[i])
		} else {
			sep[i] = strings.Repeat("-", width[i]-1) + ":"
		}
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	fmt.Fprintln(w)
}

// latencies are the durations of a set of requests.
type latencies []time.Duration

// percentile returns the p-th quantile (nearest rank), p in (0, 1]; 0 for no samples.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return harness.NearestRank(s, p)
}

func (l latencies) max() time.Duration {
	if len(l) == 0 {
		return 0
	}
	return slices.Max(l)
}

// atLeast counts the durations of at least d.
func (l latencies) atLeast(d time.Duration) int {
	n := 0
	for _, x := range l {
		if x >= d {
			n++
		}
	}
	return n
}

// ms formats d with about three significant digits.
func ms(d time.Duration) string { return harness.Duration(d, " ") }

// ns formats nanoseconds per operation.
func ns(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f ns", v)
	case v < 100:
		return fmt.Sprintf("%.1f ns", v)
	case v < 10_000:
		return fmt.Sprintf("%.0f ns", v)
	}
	return fmt.Sprintf("%.1f µs", v/1e3)
}

// thousands formats n with thousands separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ratio formats a/b as a multiple.
func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	r := a / b
	if r >= 10 {
		return fmt.Sprintf("%.1fx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

// span formats the range of ns: one number when they are equal.
func span(ns []int) string {
	if len(ns) == 0 {
		return "–"
	}
	lo, hi := slices.Min(ns), slices.Max(ns)
	if lo == hi {
		return thousands(int64(lo))
	}
	return thousands(int64(lo)) + "–" + thousands(int64(hi))
}
