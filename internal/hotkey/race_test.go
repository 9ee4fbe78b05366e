//go:build race

package hotkey

// raceEnabled skips the single-goroutine accuracy test, which the plain test run covers.
const raceEnabled = true
