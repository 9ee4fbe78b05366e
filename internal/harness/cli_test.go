package harness

import (
	"errors"
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("n", 1, "")
	require.NoError(t, Parse(fs, []string{"-n", "2"}))
	require.Equal(t, 2, *n)
	require.EqualError(t, Parse(fs, []string{"-n", "3", "extra"}), `unexpected arguments: ["extra"]`)
	require.ErrorIs(t, Parse(fs, []string{"-h"}), flag.ErrHelp)
	require.Error(t, Parse(fs, []string{"-n", "x"}))
}

func TestProblems(t *testing.T) {
	var p Problems
	require.NoError(t, p.Err(), "none yet")
	p.Check(false, "not a problem")
	p.Add(nil)
	require.NoError(t, p.Err())
	p.Check(true, "-a must be positive")
	p.Add(errors.New("unknown b"))
	require.EqualError(t, p.Err(), "-a must be positive\nunknown b")
}
