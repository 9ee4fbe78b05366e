package harness

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPick(t *testing.T) {
	all := []string{"a", "b", "c"}
	id := func(s string) string { return s }
	for _, tt := range []struct {
		list            string
		picked, unknown []string
	}{
		{"", all, nil},
		{"all", all, nil},
		{"c, a", []string{"a", "c"}, nil},
		{"b,b", []string{"b"}, nil},
		{"z,b,y,z", []string{"b"}, []string{"z", "y"}},
		{"a,,b", []string{"a", "b"}, []string{""}},
	} {
		picked, unknown := Pick(all, tt.list, id)
		require.Equal(t, tt.picked, picked, "%q", tt.list)
		require.Equal(t, tt.unknown, unknown, "%q", tt.list)
	}
}
