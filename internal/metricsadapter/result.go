package metricsadapter

import (
	"errors"

	"github.com/stampede-cache/stampede"
)

// A Result is how a load ended: the value of the result label (or attribute) of the load
// latency histogram.
type Result int

const (
	OK       Result = iota // the loader returned a value
	NotFound               // the loader returned stampede.ErrNotFound
	Failed                 // any other error, a panic included
)

// Results lists every Result, so that an adapter can create the series of each in advance and
// index them by Result.
var Results = [...]Result{OK, NotFound, Failed}

// ResultOf returns the Result of a load that returned err.
func ResultOf(err error) Result {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, stampede.ErrNotFound):
		return NotFound
	}
	return Failed
}

// String returns the label value of r: ok, not_found or error.
func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case NotFound:
		return "not_found"
	}
	return "error"
}
