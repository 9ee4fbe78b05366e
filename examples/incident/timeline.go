package main

import (
	"context"
	"fmt"
)

// The timeline scenario: each request renders the viral post's timeline, the celebrity's post
// and its commenters, and reads their profiles at once (GetMany, where the strategy has it),
// after the write path deleted every one of them.

// Scenarios are the values of -scenario.
const (
	scenarioIncident = "incident" // a Get of the hot key per request
	scenarioTimeline = "timeline" // a read of the post's keys per request
)

// commenters is how many profiles a timeline shows beside the celebrity's.
const commenters = 50

// postKeys returns the keys a timeline reads: the hot key, then user:1 to user:50.
func postKeys() []string {
	keys := make([]string, 1+commenters)
	for i := range keys {
		keys[i] = keyName(i)
	}
	return keys
}

// renderTimeline reads the timeline's profiles through inst, and returns the version of the
// hot key's. A read that returns fewer profiles than it asked for is an error: every one
// exists.
func renderTimeline(ctx context.Context, inst instance, keys []string) (int64, error) {
	got, err := inst.GetMany(ctx, keys)
	if err != nil {
		return 0, err
	}
	if len(got) != len(keys) {
		return 0, fmt.Errorf("timeline: %d of the %d profiles", len(got), len(keys))
	}
	return got[hotKey].Version, nil
}
