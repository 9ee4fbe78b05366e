//go:build race

package stampede_test

// raceEnabled slows goroutines several times; timing bounds that tell a notified waiter from a
// polling one (100 ms) are looser under it.
const raceEnabled = true
