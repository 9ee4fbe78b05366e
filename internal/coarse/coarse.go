// Package coarse provides a clock that is cheap to read: a goroutine reads the time once per
// resolution and readers load what it read last. Unlike otter's CoarseClock, it sleeps when
// nobody reads it, so that an idle cache costs no wake-ups: after idleTicks ticks without a
// read it stops, and the next read, which then reads the precise time itself, wakes it.
package coarse

import (
	"sync/atomic"
	"time"
)

// idleTicks is how many ticks without a read put the clock to sleep.
const idleTicks = 100

// A Clock is a coarse clock. It implements otter's Clock. Create one with New and Stop it when
// done; it is safe for concurrent use.
type Clock struct {
	resolution time.Duration
	now        atomic.Int64 // Unix nanoseconds read last; 0 while asleep
	read       atomic.Bool  // a read happened since the last tick
	wake       chan struct{}
	stop       chan struct{}
	done       chan struct{}
}

// New starts a clock that reads the time once per resolution.
func New(resolution time.Duration) *Clock {
	c := &Clock{
		resolution: resolution,
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	c.now.Store(time.Now().UnixNano())
	go c.run()
	return c
}

// NowNano returns the time, in Unix nanoseconds, at most a resolution old (plus scheduling
// delay) while the clock runs, and precise when it was asleep.
func (c *Clock) NowNano() int64 {
	if !c.read.Load() {
		c.read.Store(true)
	}
	if now := c.now.Load(); now != 0 {
		return now
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return time.Now().UnixNano()
}

// Tick returns ticks at interval d, for otter's periodic clean-up; they stop with the clock.
func (c *Clock) Tick(d time.Duration) <-chan time.Time {
	ticks := make(chan time.Time)
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case now := <-t.C:
				select {
				case ticks <- now:
				case <-c.done:
					return
				}
			}
		}
	}()
	return ticks
}

// Stop stops the clock's goroutines and waits for the main one; reads keep working (precise).
func (c *Clock) Stop() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

func (c *Clock) run() {
	defer close(c.done)
	t := time.NewTicker(c.resolution)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-c.stop:
			c.now.Store(0)
			return
		case <-t.C:
		}
		c.now.Store(time.Now().UnixNano())
		if c.read.Swap(false) {
			idle = 0
			continue
		}
		if idle++; idle < idleTicks {
			continue
		}
		// Nobody reads the clock: sleep until somebody does.
		c.now.Store(0)
		t.Stop()
		select {
		case <-c.stop:
			return
		case <-c.wake:
		}
		c.now.Store(time.Now().UnixNano())
		t.Reset(c.resolution)
		idle = 0
	}
}
