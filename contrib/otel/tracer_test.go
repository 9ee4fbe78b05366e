package stampedeotel_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/stampede-cache/stampede"
	stampedeotel "github.com/stampede-cache/stampede/contrib/otel"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// traced is a TracerProvider whose spans a SpanRecorder keeps.
type traced struct {
	*sdktrace.TracerProvider
	rec *tracetest.SpanRecorder
}

func newTraced(t *testing.T) traced {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(context.Background())) })
	return traced{tp, rec}
}

// request starts the span of a request, the parent of what the cache emits.
func (tr traced) request() (context.Context, trace.Span) {
	return tr.Tracer("test").Start(context.Background(), "request")
}

// cache starts a cache on m, named "users", traced by tr.
func (tr traced) cache(t *testing.T, m *miniredis.Miniredis, topts stampedeotel.TracerOptions, opts ...stampede.Option) *stampede.Cache[string] {
	t.Helper()
	tracer, err := stampedeotel.NewTracer(tr, "users", topts)
	require.NoError(t, err)
	c, err := stampede.New[string](redistest.Client(t, m), append(opts, stampede.WithTracer(tracer))...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// ended returns the spans ended so far whose name starts with "stampede.", in the order they
// ended, by name.
func (tr traced) ended() ([]string, map[string][]sdktrace.ReadOnlySpan) {
	var names []string
	byName := make(map[string][]sdktrace.ReadOnlySpan)
	for _, s := range tr.rec.Ended() {
		if strings.HasPrefix(s.Name(), "stampede.") {
			names = append(names, s.Name())
			byName[s.Name()] = append(byName[s.Name()], s)
		}
	}
	return names, byName
}

func attrsOf(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := make(map[attribute.Key]string)
	for _, a := range s.Attributes() {
		m[a.Key] = a.Value.Emit()
	}
	return m
}

// TestTracerMiss: a miss under a request's span emits the GET that missed, the lease script, the
// load and the fill as its children; the loader's own spans are children of the load's. Hits,
// in the L1 and in Redis, emit nothing.
func TestTracerMiss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTraced(t)
		m := redistest.Mini(t)
		c := tr.cache(t, m, stampedeotel.TracerOptions{})
		ctx, req := tr.request()
		load := func(ctx context.Context, key string) (string, error) {
			_, query := tr.Tracer("db").Start(ctx, "db.query")
			query.End()
			return "Ann", nil
		}
		v, err := c.Get(ctx, "user:1", load)
		require.NoError(t, err)
		require.Equal(t, "Ann", v)
		req.End()

		names, spans := tr.ended()
		require.Equal(t, []string{"stampede.redis.get", "stampede.redis.lease", "stampede.load", "stampede.redis.fill"}, names)
		for _, name := range names {
			s := spans[name][0]
			require.Equal(t, req.SpanContext().SpanID(), s.Parent().SpanID(), "%s is a child of the request", name)
			require.Equal(t, req.SpanContext().TraceID(), s.SpanContext().TraceID())
			require.Equal(t, codes.Unset, s.Status().Code, name)
			a := attrsOf(s)
			require.Equal(t, "users", a["stampede.cache"], name)
			require.NotContains(t, a, attribute.Key("stampede.key"), "keys are left out by default")
			if strings.HasPrefix(name, "stampede.redis.") {
				require.Equal(t, trace.SpanKindClient, s.SpanKind(), name)
				require.Equal(t, "redis", a["db.system.name"], name)
			} else {
				require.Equal(t, trace.SpanKindInternal, s.SpanKind(), name)
			}
		}
		require.Equal(t, "GET", attrsOf(spans["stampede.redis.get"][0])["db.operation.name"])
		require.Equal(t, "ok", attrsOf(spans["stampede.load"][0])["stampede.load.result"])
		var query sdktrace.ReadOnlySpan
		for _, s := range tr.rec.Ended() {
			if s.Name() == "db.query" {
				query = s
			}
		}
		require.NotNil(t, query)
		require.Equal(t, spans["stampede.load"][0].SpanContext().SpanID(), query.Parent().SpanID(),
			"the loader's spans are children of the load")

		// Hits: the L1 of this instance; Redis, from another instance and from one without an L1.
		before := len(tr.rec.Started())
		ctx, req = tr.request()
		other := tr.cache(t, m, stampedeotel.TracerOptions{})
		noL1 := tr.cache(t, m, stampedeotel.TracerOptions{}, stampede.WithoutL1())
		for _, c := range []*stampede.Cache[string]{c, other, noL1} {
			for range 2 {
				v, err := c.Get(ctx, "user:1", load)
				require.NoError(t, err)
				require.Equal(t, "Ann", v)
			}
		}
		req.End()
		require.Len(t, tr.rec.Started(), before+1, "hits start no span: only the request's")
	})
}

// TestTracerLeaseWait: an instance that waits for another's load emits stampede.lease_wait in
// its caller's trace, with its looks at Redis as children, and no load.
func TestTracerLeaseWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		holderTr, waiterTr := newTraced(t), newTraced(t)
		m := redistest.Mini(t)
		holder := holderTr.cache(t, m, stampedeotel.TracerOptions{})
		waiter := waiterTr.cache(t, m, stampedeotel.TracerOptions{})
		gate, started := make(chan struct{}), make(chan struct{})
		load := func(ctx context.Context, key string) (string, error) {
			close(started)
			<-gate
			return "Ann", nil
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			ctx, req := holderTr.request()
			defer req.End()
			_, err := holder.Get(ctx, "user:1", load)
			require.NoError(t, err)
		})
		<-started
		ctx, req := waiterTr.request()
		wg.Go(func() {
			v, err := waiter.Get(ctx, "user:1", load)
			require.NoError(t, err)
			require.Equal(t, "Ann", v)
		})
		synctest.Wait()
		time.Sleep(250 * time.Millisecond) // the waiter looks again, twice
		close(gate)
		wg.Wait()
		req.End()

		names, spans := waiterTr.ended()
		require.NotContains(t, names, "stampede.load")
		require.Len(t, spans["stampede.lease_wait"], 1)
		wait := spans["stampede.lease_wait"][0]
		require.Equal(t, req.SpanContext().SpanID(), wait.Parent().SpanID())
		require.Equal(t, codes.Unset, wait.Status().Code)
		require.GreaterOrEqual(t, wait.EndTime().Sub(wait.StartTime()), 250*time.Millisecond)
		var looks int
		for _, s := range spans["stampede.redis.lease"] {
			if s.Parent().SpanID() == wait.SpanContext().SpanID() {
				looks++
			}
		}
		require.GreaterOrEqual(t, looks, 2, "the looks at Redis during the wait are its children")
		names, _ = holderTr.ended()
		require.Contains(t, names, "stampede.load")
	})
}

// TestTracerStaleServe: a stale value served adds an event, with its age, to the caller's span.
func TestTracerStaleServe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTraced(t)
		c := tr.cache(t, redistest.Mini(t), stampedeotel.TracerOptions{KeyAttribute: stampedeotel.HashKey},
			stampede.WithTTL(time.Second), stampede.WithJitter(0), stampede.WithStaleWhileRevalidate(time.Minute))
		load := func(context.Context, string) (string, error) { return "Ann", nil }
		_, err := c.Get(context.Background(), "user:1", load)
		require.NoError(t, err)
		time.Sleep(3 * time.Second)
		ctx, req := tr.request()
		_, err = c.Get(ctx, "user:1", load)
		require.NoError(t, err)
		req.End()
		synctest.Wait() // the background refresh

		var request sdktrace.ReadOnlySpan
		for _, s := range tr.rec.Ended() {
			if s.Name() == "request" {
				request = s
			}
		}
		require.Len(t, request.Events(), 1)
		ev := request.Events()[0]
		require.Equal(t, stampedeotel.StaleServeEvent, ev.Name)
		got := map[attribute.Key]attribute.Value{}
		for _, a := range ev.Attributes {
			got[a.Key] = a.Value
		}
		require.Equal(t, 2.0, got[stampedeotel.StaleAgeKey].AsFloat64())
		require.Equal(t, "users", got[stampedeotel.CacheKey].AsString())
		require.Equal(t, stampedeotel.HashKey("user:1"), got[stampedeotel.KeyKey].AsString())
		_, spans := tr.ended()
		require.Len(t, spans["stampede.load"], 2, "the miss, then the refresh")
		require.Equal(t, req.SpanContext().SpanID(), spans["stampede.load"][1].Parent().SpanID(),
			"the refresh is a child of the Get that started it")
	})
}

// TestTracerErrors: a failed load, a failed Redis call and a wait that timed out have an error
// status; a not-found does not.
func TestTracerErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTraced(t)
		m := redistest.Mini(t)
		c := tr.cache(t, m, stampedeotel.TracerOptions{}, stampede.WithFailureBackoff(0, 0),
			stampede.WithLoadTimeout(time.Second), stampede.WithLeaseTTL(time.Second))
		ctx, req := tr.request()
		defer req.End()
		errDB := errors.New("database is down")
		_, err := c.Get(ctx, "failing", func(context.Context, string) (string, error) { return "", errDB })
		require.ErrorIs(t, err, errDB)
		_, err = c.Get(ctx, "absent", func(context.Context, string) (string, error) { return "", stampede.ErrNotFound })
		require.ErrorIs(t, err, stampede.ErrNotFound)
		_, spans := tr.ended()
		require.Len(t, spans["stampede.load"], 2)
		failed, absent := spans["stampede.load"][0], spans["stampede.load"][1]
		require.Equal(t, codes.Error, failed.Status().Code)
		require.Equal(t, "database is down", failed.Status().Description)
		require.Equal(t, "error", attrsOf(failed)["stampede.load.result"])
		require.Equal(t, "exception", failed.Events()[0].Name)
		require.Equal(t, codes.Unset, absent.Status().Code)
		require.Equal(t, "not_found", attrsOf(absent)["stampede.load.result"])

		// Another instance holds the lease for an hour: the wait times out.
		m.Set("stampede:{held}:lock", fmt.Sprintf("other:1|%d|0", time.Now().Add(time.Hour).UnixMilli()))
		_, err = c.Get(ctx, "held", func(context.Context, string) (string, error) { return "v", nil })
		require.ErrorIs(t, err, stampede.ErrWaitTimeout)
		_, spans = tr.ended()
		require.Len(t, spans["stampede.lease_wait"], 1)
		require.Equal(t, codes.Error, spans["stampede.lease_wait"][0].Status().Code)

		m.SetError("ERR down")
		_, err = c.Get(ctx, "k", func(context.Context, string) (string, error) { return "v", nil })
		require.NoError(t, err, "Redis down: the loader answers")
		_, spans = tr.ended()
		gets := spans["stampede.redis.get"]
		get := gets[len(gets)-1]
		require.Equal(t, codes.Error, get.Status().Code)
		require.Contains(t, get.Status().Description, "down")
	})
}

// TestTracerKeys: the key attribute is left out by default, and otherwise what KeyAttribute
// makes of the key; an empty result leaves it out.
func TestTracerKeys(t *testing.T) {
	for name, tc := range map[string]struct {
		attr func(string) string
		want string // "" for none
	}{
		"default": {nil, ""},
		"raw":     {func(k string) string { return k }, "user:1"},
		"hashed":  {stampedeotel.HashKey, stampedeotel.HashKey("user:1")},
		"empty":   {func(string) string { return "" }, ""},
		"invalid": {func(string) string { return "a\xffb" }, "a\uFFFDb"},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := newTraced(t)
				c := tr.cache(t, redistest.Mini(t), stampedeotel.TracerOptions{KeyAttribute: tc.attr})
				_, err := c.Get(context.Background(), "user:1", func(context.Context, string) (string, error) { return "Ann", nil })
				require.NoError(t, err)
				names, spans := tr.ended()
				require.Len(t, names, 4)
				for _, name := range names {
					a := attrsOf(spans[name][0])
					if tc.want == "" {
						require.NotContains(t, a, stampedeotel.KeyKey, name)
					} else {
						require.Equal(t, tc.want, a[stampedeotel.KeyKey], name)
					}
				}
			})
		})
	}
	require.Len(t, stampedeotel.HashKey("user:1"), 16)
	require.NotEqual(t, stampedeotel.HashKey("user:1"), stampedeotel.HashKey("user:2"))
}

// records is a slog.Handler that keeps the messages logged.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}

// TestTracerPanicIsLoggedOnce: a KeyAttribute that panics makes the Tracer panic; the cache
// recovers, logs it once, and serves every Get.
func TestTracerPanicIsLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTraced(t)
		log := &records{}
		c := tr.cache(t, redistest.Mini(t), stampedeotel.TracerOptions{KeyAttribute: func(string) string { panic("boom") }},
			stampede.WithLogger(slog.New(log)))
		for i := range 10 {
			v, err := c.Get(context.Background(), fmt.Sprint("user:", i), func(context.Context, string) (string, error) { return "Ann", nil })
			require.NoError(t, err)
			require.Equal(t, "Ann", v)
		}
		require.Len(t, log.msgs, 1)
		require.Contains(t, log.msgs[0], "Tracer panicked")
	})
}

func TestNewTracerErrors(t *testing.T) {
	_, err := stampedeotel.NewTracer(nil, "users", stampedeotel.TracerOptions{})
	require.ErrorContains(t, err, "stampedeotel: nil TracerProvider")
	_, err = stampedeotel.NewTracer(noop.NewTracerProvider(), "", stampedeotel.TracerOptions{})
	require.ErrorContains(t, err, "cache name")
	_, err = stampedeotel.NewTracer(noop.NewTracerProvider(), "\xff", stampedeotel.TracerOptions{})
	require.ErrorContains(t, err, "cache name")
}
