package stampede

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/envelope"
)

// TestXFetchProbability checks each decision against the formula: a read with left until expiry
// refreshes with probability P(-ln(U)*delta*beta >= left) = exp(-left/(delta*beta)).
func TestXFetchProbability(t *testing.T) {
	const delta = 100 * time.Millisecond
	const n = 200_000
	c := &Cache[string]{rand: rand.New(rand.NewPCG(1, 2)).Float64}
	for _, beta := range []float64{0.5, 1, 2} {
		for _, left := range []time.Duration{0, 10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond} {
			h := envelope.Header{FreshUntil: int64(time.Hour), LoadTime: delta}
			now := h.FreshUntil - int64(left)
			hits := 0
			for range n {
				if refreshEarly(&h, now, beta, c.rand) {
					hits++
				}
			}
			p := math.Exp(-float64(left) / (float64(delta) * beta))
			sigma := math.Sqrt(p * (1 - p) / n)
			require.InDelta(t, p, float64(hits)/n, 5*sigma+1e-9, "beta %v, %v left", beta, left)
		}
	}
}

// TestXFetchRefreshTimes simulates a key read once a millisecond as it nears expiry and compares
// the mean time before expiry of the first refresh with the formula's expectation,
// sum over reads i of left_i * P(read i refreshes first).
func TestXFetchRefreshTimes(t *testing.T) {
	const delta = 50 * time.Millisecond
	const step = time.Millisecond
	const trials = 20_000
	for _, beta := range []float64{0.5, 1, 2} {
		t.Run(fmt.Sprint("beta=", beta), func(t *testing.T) {
			expected, none := 0.0, 1.0 // none: probability that no earlier read refreshed
			for left := 2 * time.Second; left >= 0; left -= step {
				p := math.Exp(-float64(left) / (float64(delta) * beta))
				expected += none * p * float64(left)
				none *= 1 - p
			}

			c := &Cache[string]{rand: rand.New(rand.NewPCG(3, uint64(beta*10))).Float64}
			h := envelope.Header{FreshUntil: int64(time.Hour), LoadTime: delta}
			var sum float64
			for range trials {
				for left := 2 * time.Second; left >= 0; left -= step {
					if refreshEarly(&h, h.FreshUntil-int64(left), beta, c.rand) {
						sum += float64(left)
						break
					}
				}
			}
			mean := sum / trials
			require.InEpsilon(t, expected, mean, 0.02, "beta %v: mean %v, expected %v",
				beta, time.Duration(mean), time.Duration(expected))
			// Larger beta refreshes earlier: about delta*beta*ln(reads per delta*beta) ahead.
			t.Logf("beta %v: first refresh %v before expiry (formula %v)", beta, time.Duration(mean), time.Duration(expected))
		})
	}
}

func TestXFetchFarFromExpiryDrawsNothing(t *testing.T) {
	c := &Cache[string]{rand: func() float64 { panic("no random number is needed far from expiry") }}
	h := envelope.Header{FreshUntil: int64(time.Hour), LoadTime: 10 * time.Millisecond}
	require.False(t, refreshEarly(&h, 0, 1, c.rand))
}

func TestJitterBounds(t *testing.T) {
	for _, u := range []float64{0, 0.25, 0.999999} {
		c := &Cache[string]{jitter: 0.1, rand: func() float64 { return u }}
		got := c.jittered(time.Minute)
		require.LessOrEqual(t, got, time.Minute)
		require.GreaterOrEqual(t, got, 54*time.Second)
		require.Equal(t, time.Minute-time.Duration(float64(6*time.Second)*u), got)
	}
	c := &Cache[string]{jitter: 0.5, rand: func() float64 { return 0.999 }}
	require.Equal(t, time.Millisecond, c.jittered(time.Millisecond), "never below Redis's precision")
}
