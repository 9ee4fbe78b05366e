package harnesstest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEnv(t *testing.T) {
	t.Setenv("HARNESSTEST_VAR", "value")
	require.Equal(t, "value", Env(t, "HARNESSTEST_VAR", "unused"))
}

func TestLog(t *testing.T) {
	n, err := fmt.Fprintf(Log{T: t}, "line %d\n\n", 1)
	require.NoError(t, err)
	require.Equal(t, 8, n, "every byte counted as written")
}
