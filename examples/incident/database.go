package main

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// hotKey is the celebrity whose profile the viral post sends everybody to.
const hotKey = "user:celeb"

// keyName returns the i-th key of the replay: the hot key first, then user:1, user:2, ...
func keyName(i int) string {
	if i == 0 {
		return hotKey
	}
	return "user:" + strconv.Itoa(i)
}

// profile is the row the service looks up. Version grows with every update, so the replay can
// tell an old value from a new one.
type profile struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version int64  `json:"version"`
}

// A source is the database behind the caches: the embedded model (memDB) or PostgreSQL
// (pgDB). Its methods are safe for concurrent use.
type source interface {
	// lookup runs the profile query of id, which costs the query latency, and calls started
	// once the query holds a database connection, that is, when the database begins to run
	// it. It returns stampede.ErrNotFound (wrapped) when there is no such profile, and the context's
	// error when ctx ends first, whether waiting for a connection or during the query.
	lookup(ctx context.Context, id string, started func()) (profile, error)
	// update is the write path's change of a profile: it increments its version and returns
	// the new one.
	update(ctx context.Context, id string) (int64, error)
	// rows reads the profiles of ids at once and without the query latency, to warm the caches
	// before the replay; it is not one of the queries the replay counts.
	rows(ctx context.Context, ids []string) (map[string]profile, error)
	// lookupMany runs the batch query of ids (WHERE id = ANY($1)), which costs the query
	// latency once, as lookup does: the profiles found, by id; ids left out do not exist.
	lookupMany(ctx context.Context, ids []string, started func()) (map[string]profile, error)
	// String says what the source is, for the report.
	String() string
	close()
}

// A database is the source as one strategy's replay sees it: every lookup is logged with its
// start time, so the report can count the queries the strategy sent and draw them over time.
type database struct {
	src source
	log *queryLog
}

func newDatabase(src source) *database {
	return &database{src: src, log: &queryLog{}}
}

// lookup is the loader every strategy calls on a miss: the profile query.
func (d *database) lookup(ctx context.Context, id string) (profile, error) {
	i := -1
	p, err := d.src.lookup(ctx, id, func() { i = d.log.add(id == hotKey, time.Now()) })
	if err == nil {
		d.log.read(i, 1)
	}
	return p, err
}

// lookupMany is the BatchLoader of the timeline scenario: one query for every id.
func (d *database) lookupMany(ctx context.Context, ids []string) (map[string]profile, error) {
	i := -1
	found, err := d.src.lookupMany(ctx, ids, func() { i = d.log.add(slices.Contains(ids, hotKey), time.Now()) })
	if err == nil {
		d.log.read(i, len(found))
	}
	return found, err
}

// A query is one lookup the database ran.
type query struct {
	at   time.Time
	hot  bool // it read the hot key
	rows int  // it returned to its caller (none if the caller gave up first)
}

// queryLog records the lookups a database ran. It is safe for concurrent use.
type queryLog struct {
	n atomic.Int64 // len(queries), readable without the lock, for the progress line

	mu      sync.Mutex
	queries []query // guarded by mu
}

// add logs a query that began at at, and returns its index for read.
func (l *queryLog) add(hot bool, at time.Time) int {
	l.mu.Lock()
	l.queries = append(l.queries, query{at: at, hot: hot})
	i := len(l.queries) - 1
	l.mu.Unlock()
	l.n.Add(1)
	return i
}

// read records that query i returned rows rows; i < 0 (no query began) is ignored.
func (l *queryLog) read(i, rows int) {
	if i < 0 {
		return
	}
	l.mu.Lock()
	l.queries[i].rows = rows
	l.mu.Unlock()
}

// count returns how many lookups ran so far.
func (l *queryLog) count() int64 { return l.n.Load() }

// all returns a copy of the lookups that ran so far.
func (l *queryLog) all() []query {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]query(nil), l.queries...)
}
