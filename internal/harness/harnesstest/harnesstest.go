// Package harnesstest is what the tests of bench and of the examples share: the real services
// that the environment names, and the test's log as a writer.
package harnesstest

import (
	"bytes"
	"os"
	"testing"
)

// Env returns the environment variable name, or skips the test, saying why, when it is unset;
// with STAMPEDE_REQUIRE_INTEGRATION=1 (as CI sets) an unset variable fails the test.
func Env(t testing.TB, name, why string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("STAMPEDE_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("%s is not set and STAMPEDE_REQUIRE_INTEGRATION=1", name)
		}
		t.Skipf("%s is not set; %s", name, why)
	}
	return v
}

// Log writes to the log of the test T, one entry per Write, without its trailing newlines.
type Log struct{ T testing.TB }

// Write logs p.
func (w Log) Write(p []byte) (int, error) {
	w.T.Helper()
	w.T.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
