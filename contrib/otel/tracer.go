package stampedeotel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
)

// The attributes of the spans a Tracer emits, besides the semantic conventions' (db.*,
// error.type).
const (
	// CacheKey is the attribute of every span and event: the cache name given to NewTracer.
	CacheKey = attribute.Key("stampede.cache")
	// KeyKey is the attribute that names the key, when TracerOptions.KeyAttribute is set.
	KeyKey = attribute.Key("stampede.key")
	// ResultKey is the attribute of stampede.load: ok, not_found or error.
	ResultKey = attribute.Key("stampede.load.result")
	// StaleAgeKey is the attribute of the stampede.stale_serve event: how long past its fresh
	// lifetime the value served was, in seconds.
	StaleAgeKey = attribute.Key("stampede.stale.age")
)

// StaleServeEvent is the name of the event a stale value served adds to the caller's span.
const StaleServeEvent = "stampede.stale_serve"

// TracerOptions tune a Tracer. The zero value gives the defaults.
type TracerOptions struct {
	// KeyAttribute maps a key to the value of the stampede.key attribute of the spans and
	// events about it; an empty result leaves the attribute out. It is called on each span,
	// with the key, and must be safe for concurrent use; its result is made valid UTF-8.
	//
	// If nil, the default, spans carry no key. Keys often hold personal data (a user's e-mail,
	// an ID), which a trace backend may keep longer, and show more widely, than the data itself;
	// and a backend that indexes attributes pays for every distinct key. To tell the spans of one
	// key apart without showing it, use HashKey; to show keys as they are, use
	// func(k string) string { return k }; to show their kind only, strip their IDs.
	KeyAttribute func(key string) string
}

// HashKey returns the first 16 hex digits of the SHA-256 of key: a TracerOptions.KeyAttribute
// that groups the spans of one key without showing it. It is a pseudonym, not a secret: a key
// drawn from a small set (user:1 to user:1000000) is found again by hashing every candidate.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}

// A Tracer is a stampede.Tracer that emits OpenTelemetry spans, in the trace of the ctx the
// cache was called with; give it to stampede.New through stampede.WithTracer:
//
//	t, err := stampedeotel.NewTracer(otel.GetTracerProvider(), "users", stampedeotel.TracerOptions{})
//	if err != nil { ... }
//	c, err := stampede.New[User](rdb, stampede.WithTracer(t))
//
// A Get that hits (in the L1 or in Redis) emits nothing. A Get that misses emits, as children of
// the caller's span:
//
//   - stampede.redis.get, stampede.redis.lease and stampede.redis.fill (span kind client, with
//     db.system.name redis and db.operation.name GET or EVALSHA): the GET that missed, the lease
//     script and the fill script, each with an error status when the call failed;
//   - stampede.load, the loader's call: the ctx the loader receives is in this span, so the
//     spans of its own queries are its children. stampede.load.result is ok, not_found or error;
//     only error sets an error status (a not-found is an answer, not a failure);
//   - stampede.lease_wait, when another instance holds the key's lease: the wait for its load,
//     with the lease script's looks at Redis as its children, and an error status when the
//     wait ended with an error (stampede.ErrWaitTimeout, the holder's failure).
//
// A stale value served adds the event stampede.stale_serve to the caller's span, with the
// value's age past its fresh lifetime (stampede.stale.age, in seconds); there is no event when
// the caller's ctx has no recording span.
//
// A load is shared by the callers that asked for the key meanwhile: its spans are children of
// the span of the caller that started it. A background refresh (stale-while-revalidate, early
// refresh) emits its lease, load and fill spans as children of the span of the Get that
// started it, which may have ended by then.
//
// Every span and event carries stampede.cache, the cache name; and stampede.key only with
// TracerOptions.KeyAttribute.
type Tracer struct {
	tracer  trace.Tracer
	cache   attribute.KeyValue
	keyAttr func(string) string
	starts  map[stampede.SpanOp][]trace.SpanStartOption // the options of each op's span
	results [len(metricsadapter.Results)]attribute.KeyValue
}

// NewTracer returns the Tracer of the cache named cache, the value of the stampede.cache
// attribute, with spans from the tracer ScopeName of tp. It returns an error if tp is nil or
// if cache is empty or not valid UTF-8.
func NewTracer(tp trace.TracerProvider, cache string, opts TracerOptions) (*Tracer, error) {
	if _, err := metricsadapter.Resolve("stampedeotel", "TracerProvider", tp, cache, metricsadapter.Options{}); err != nil {
		return nil, err
	}
	t := &Tracer{
		tracer:  tp.Tracer(ScopeName),
		cache:   CacheKey.String(cache),
		keyAttr: opts.KeyAttribute,
		starts:  make(map[stampede.SpanOp][]trace.SpanStartOption),
	}
	for _, r := range metricsadapter.Results {
		t.results[r] = ResultKey.String(r.String())
	}
	internal := trace.WithSpanKind(trace.SpanKindInternal)
	client := trace.WithSpanKind(trace.SpanKindClient)
	redis := func(op string) []trace.SpanStartOption {
		return []trace.SpanStartOption{client, trace.WithAttributes(t.cache, semconv.DBSystemNameRedis, semconv.DBOperationName(op))}
	}
	t.starts[stampede.SpanLoad] = []trace.SpanStartOption{internal, trace.WithAttributes(t.cache)}
	t.starts[stampede.SpanLeaseWait] = []trace.SpanStartOption{internal, trace.WithAttributes(t.cache)}
	t.starts[stampede.SpanRedisGet] = redis("GET")
	t.starts[stampede.SpanRedisLease] = redis("EVALSHA")
	t.starts[stampede.SpanRedisFill] = redis("EVALSHA")
	return t, nil
}

// Start begins the span of s, or adds the event of a stale value served to the span of ctx;
// see Tracer. The cache calls it.
func (t *Tracer) Start(ctx context.Context, s stampede.Span) (context.Context, func(error)) {
	if s.Op == stampede.SpanStaleServe {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			attrs := []attribute.KeyValue{t.cache, StaleAgeKey.Float64(s.Age.Seconds())}
			if k, ok := t.key(s.Key); ok {
				attrs = append(attrs, k)
			}
			span.AddEvent(StaleServeEvent, trace.WithAttributes(attrs...))
		}
		return ctx, nil
	}
	opts, ok := t.starts[s.Op]
	if !ok { // an op added to stampede after this adapter: a span all the same
		opts = []trace.SpanStartOption{trace.WithAttributes(t.cache)}
	}
	k, hasKey := t.key(s.Key)
	if hasKey || !s.Start.IsZero() {
		opts = opts[:len(opts):len(opts)] // appends copy: opts are shared
		if hasKey {
			opts = append(opts, trace.WithAttributes(k))
		}
		if !s.Start.IsZero() {
			opts = append(opts, trace.WithTimestamp(s.Start))
		}
	}
	ctx, span := t.tracer.Start(ctx, "stampede."+s.Op.String(), opts...)
	op := s.Op
	return ctx, func(err error) { t.end(span, op, err) }
}

// end ends span, of op, which ended with err.
func (t *Tracer) end(span trace.Span, op stampede.SpanOp, err error) {
	if op == stampede.SpanLoad {
		span.SetAttributes(t.results[metricsadapter.ResultOf(err)])
	}
	if err != nil && !errors.Is(err, stampede.ErrNotFound) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorType(err))
	}
	span.End()
}

// key returns the key attribute of key, if there is one.
func (t *Tracer) key(key string) (attribute.KeyValue, bool) {
	if t.keyAttr == nil {
		return attribute.KeyValue{}, false
	}
	v := t.keyAttr(key)
	if v == "" {
		return attribute.KeyValue{}, false
	}
	return KeyKey.String(strings.ToValidUTF8(v, "\uFFFD")), true
}

var _ stampede.Tracer = (*Tracer)(nil)
