package metricsadapter

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
)

func TestResultOf(t *testing.T) {
	require.Equal(t, OK, ResultOf(nil))
	require.Equal(t, NotFound, ResultOf(stampede.ErrNotFound))
	require.Equal(t, NotFound, ResultOf(fmt.Errorf("user 7: %w", stampede.ErrNotFound)))
	require.Equal(t, Failed, ResultOf(errors.New("database is down")))
}

func TestResultString(t *testing.T) {
	var got []string
	for i, r := range Results {
		require.Equal(t, Result(i), r, "Results index by Result")
		got = append(got, r.String())
	}
	require.Equal(t, []string{"ok", "not_found", "error"}, got)
}
