package adaptertest

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/metricsadapter"
)

// named returns key, the key of a sample in Prometheus's names, in the adapter's names.
func (a Adapter) named(key string) string {
	name, labels := key, ""
	if i := strings.IndexByte(key, '{'); i >= 0 {
		name, labels = key[:i], key[i:]
	}
	for _, suffix := range []string{"", "_count", "_sum"} {
		for _, m := range metricsadapter.All() {
			if name == m.Prom+suffix {
				return a.Name(m) + suffix + labels
			}
		}
	}
	panic("adaptertest: no metric is named " + name)
}

// namedAll returns samples with their keys named by the adapter.
func (a Adapter) namedAll(samples map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(samples))
	for k, v := range samples {
		out[a.named(k)] = v
	}
	return out
}

// requireSamples checks that each of want, named as Prometheus names it, has its value in got.
func (a Adapter) requireSamples(t testing.TB, want, got map[string]float64) {
	t.Helper()
	RequireSamples(t, a.namedAll(want), got)
}

// withPrefix returns the samples of got whose name starts with the adapter's name of prefix.
func (a Adapter) withPrefix(got map[string]float64, prefix string) map[string]float64 {
	return WithPrefix(got, a.named(prefix))
}

// RequireSamples checks that each of want has its value in got.
func RequireSamples(t testing.TB, want, got map[string]float64) {
	t.Helper()
	for name, v := range want {
		g, ok := got[name]
		require.Truef(t, ok, "no sample %s in\n%s", name, dump(got))
		require.InDeltaf(t, v, g, 1e-9, "sample %s", name)
	}
}

// WithPrefix returns the samples of got whose name starts with prefix.
func WithPrefix(got map[string]float64, prefix string) map[string]float64 {
	out := make(map[string]float64)
	for name, v := range got {
		if strings.HasPrefix(name, prefix) {
			out[name] = v
		}
	}
	return out
}

// Labels returns the labels of a sample, given as pairs of name and value, as they stand in
// the sample's key: sorted, quoted, `{cache="users",layer="l1"}`.
func Labels(pairs ...string) string {
	var ls []string
	for i := 0; i+1 < len(pairs); i += 2 {
		ls = append(ls, fmt.Sprintf("%s=%q", pairs[i], pairs[i+1]))
	}
	sort.Strings(ls)
	return "{" + strings.Join(ls, ",") + "}"
}

func dump(samples map[string]float64) string {
	var lines []string
	for name, v := range samples {
		lines = append(lines, fmt.Sprintf("%s %v", name, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
