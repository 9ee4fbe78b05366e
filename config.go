package stampede

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/stampede-cache/stampede/internal/envelope"
)

// config is what the options set; New validates it.
type config struct {
	namespace      string
	policy         Policy
	policyFields   []string // the policy options given, for the check against WithPolicy
	policyFunc     func(key string) Policy
	policyFuncSet  bool
	l1Size         int
	l1TTL          time.Duration
	l1Bytes        int64 // if > 0, the L1 is bounded by bytes instead of l1Size
	jitter         float64
	leaseTTL       time.Duration
	loadTimeout    time.Duration
	redisTimeout   time.Duration
	codec          Codec
	maxValueBytes  int
	version        string
	hooks          Hooks
	tracer         Tracer
	logger         *slog.Logger
	loggerSet      bool
	failFast       bool
	refreshWorkers int
	backoffBase    time.Duration
	backoffMax     time.Duration
	writeReplicas  int
	evictionWindow time.Duration // 0: every eviction is published at once
	hotKeys        HotKeys
	hotKeysOff     bool
	replicaTTL     time.Duration
	batch          batchConfig // GetMany's (batchopts.go)
}

func defaultConfig() config {
	return config{
		namespace:      "stampede",
		policy:         DefaultPolicy(),
		l1Size:         10_000,
		l1TTL:          10 * time.Second,
		jitter:         0.1,
		leaseTTL:       3 * time.Second,
		loadTimeout:    10 * time.Second,
		redisTimeout:   250 * time.Millisecond,
		codec:          JSONCodec{},
		maxValueBytes:  1 << 20,
		logger:         slog.New(slog.DiscardHandler),
		refreshWorkers: 64,
		replicaTTL:     2 * time.Second,
		backoffBase:    100 * time.Millisecond,
		backoffMax:     5 * time.Second,
		writeReplicas:  1,
		evictionWindow: defaultEvictionWindow,
		batch:          defaultBatchConfig(),
	}
}

// maxNamespaceLen keeps namespace + key within Redis's comfortable key sizes.
const maxNamespaceLen = 256

func (c *config) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("stampede: "+format, args...))
		}
	}
	check(c.namespace == "" || len(c.namespace) > maxNamespaceLen,
		"namespace must have 1 to %d bytes", maxNamespaceLen)
	check(strings.ContainsAny(c.namespace, "{}"),
		"namespace %q contains a brace, which would change Redis Cluster's hash slot of its keys", c.namespace)
	check(c.l1Size <= 0 || c.l1TTL <= 0, "WithL1(%d, %v): size and TTL must be positive", c.l1Size, c.l1TTL)
	check(c.l1Bytes < 0, "WithL1Bytes(%d): must not be negative", c.l1Bytes)
	check(!(c.jitter >= 0 && c.jitter < 1), "WithJitter(%v): fraction must be in [0, 1)", c.jitter)
	check(c.leaseTTL < 10*time.Millisecond, "WithLeaseTTL(%v): must be at least 10ms", c.leaseTTL)
	check(c.loadTimeout <= 0, "WithLoadTimeout(%v): must be positive", c.loadTimeout)
	check(c.redisTimeout <= 0, "WithRedisTimeout(%v): must be positive", c.redisTimeout)
	check(c.codec == nil, "WithCodec: nil codec")
	check(c.maxValueBytes <= 0, "WithMaxValueBytes(%d): must be positive", c.maxValueBytes)
	check(len(c.version) > envelope.MaxTag, "WithVersion: %d bytes, at most %d", len(c.version), envelope.MaxTag)
	check(c.logger == nil, "WithLogger: nil logger")
	check(c.writeReplicas < 0, "WithWriteReplicas(%d): must not be negative", c.writeReplicas)
	check(c.evictionWindow < 0 || c.evictionWindow > maxEvictionWindow,
		"WithEvictionWindow(%v): must be between 0 and %v", c.evictionWindow, maxEvictionWindow)
	check(c.refreshWorkers <= 0, "WithRefreshWorkers(%d): must be positive", c.refreshWorkers)
	check(c.backoffBase < 0 || c.backoffMax < c.backoffBase || c.backoffBase == 0 && c.backoffMax != 0,
		"WithFailureBackoff(%v, %v): need 0 <= base <= max, or both 0 (off)", c.backoffBase, c.backoffMax)
	h := c.hotKeys
	check(!(h.Threshold >= 0) || math.IsInf(h.Threshold, 0) || h.Window < 0 || h.TopK < 0 || h.SampleRate < 0 || h.PromotedL1TTL < 0 ||
		h.Replicas < 0 || h.Replicas > maxReplicas,
		"WithHotKeys(%+v): fields must be finite, not negative, and Replicas at most %d", h, maxReplicas)
	check(c.replicaTTL <= 0, "WithReplicaTTL(%v): must be positive", c.replicaTTL)
	if c.policyFuncSet {
		check(c.policyFunc == nil, "WithPolicy: nil function")
		for _, f := range c.policyFields {
			check(f != "TTL", "WithPolicy decides %s for every key; drop the cache-wide option", f)
		}
	}
	if err := c.policy.validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.batch.validate()...)
	return errors.Join(errs...)
}

// loud returns the logger of what the user must hear about even without WithLogger.
func (c *config) loud() *slog.Logger {
	if c.loggerSet {
		return c.logger
	}
	return slog.Default()
}

// usesL1 reports whether any key may use the L1.
func (c *config) usesL1() bool {
	return c.policyFunc != nil || !c.policy.SkipL1 || !c.hotKeysOff && c.hotKeys.Promote
}

// floorTTL is how long the L1 keeps the generation floor of a key after a message evicted it:
// longer than a read that began before the message can take to reach the L1 (a Redis call is
// bounded by the Redis timeout, and a coalesced read may wait for one before its own).
func (c *config) floorTTL() time.Duration {
	return max(time.Second, 4*c.redisTimeout)
}

// genTTL is how long a fence outlives its last write: longer than any load that read it can
// run, so that such a load always finds it changed.
func (c *config) genTTL() time.Duration {
	return 2 * (c.loadTimeout + c.leaseTTL)
}
