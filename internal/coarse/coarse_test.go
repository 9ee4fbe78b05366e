package coarse

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClockFollowsTimeAndSleepsWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New(time.Millisecond)
		defer c.Stop()
		start := time.Now().UnixNano()
		require.Equal(t, start, c.NowNano())
		time.Sleep(10*time.Millisecond + time.Microsecond)
		require.Equal(t, start+int64(10*time.Millisecond), c.NowNano(), "the last tick's time")

		// Idle for longer than idleTicks: the clock sleeps, and a read is precise.
		time.Sleep(time.Second)
		synctest.Wait()
		require.Zero(t, c.now.Load(), "asleep")
		require.Equal(t, time.Now().UnixNano(), c.NowNano())
		synctest.Wait()
		require.NotZero(t, c.now.Load(), "woken by the read")
	})
}

func TestTickStopsWithTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New(time.Millisecond)
		ticks := c.Tick(time.Second)
		<-ticks
		c.Stop()
		synctest.Wait() // every goroutine of the clock has returned, or synctest fails the test
	})
}

func BenchmarkNowNano(b *testing.B) {
	c := New(time.Millisecond)
	defer c.Stop()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.NowNano()
		}
	})
}

func BenchmarkTimeNow(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = time.Now().UnixNano()
		}
	})
}
