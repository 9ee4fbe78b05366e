package stampedetest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/stampedetest"
)

// User is what the examples cache.
type User struct {
	ID   string
	Name string
}

// In your test, t is its *testing.T: the cache, and its Redis, are closed when the test ends.
// (An example has no t: test stands for your test function.)
func ExampleNew() {
	test(func(t testing.TB) {
		users := stampedetest.New[User](t)

		queries := 0
		loadUser := func(ctx context.Context, id string) (User, error) {
			queries++
			return User{ID: id, Name: "Grace Hopper"}, nil
		}
		for range 3 {
			u, err := users.Get(context.Background(), "42", loadUser)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println(u.Name)
		}
		fmt.Println("queries:", queries)
	})
	// Output:
	// Grace Hopper
	// Grace Hopper
	// Grace Hopper
	// queries: 1
}

// Two instances of a service share one Redis. A Delete on one evicts the key from the other's
// L1 too; the eviction travels over Redis pub/sub, so the other instance sees it moments later.
func ExampleNewFleet_delete() {
	test(func(t testing.TB) {
		fleet := stampedetest.NewFleet[string](t, 2)
		a, b := fleet[0], fleet[1]
		ctx := context.Background()

		var name atomic.Value
		name.Store("Grace")
		loadName := func(context.Context, string) (string, error) { return name.Load().(string), nil }

		v, _ := b.Get(ctx, "42", loadName) // b loads it, and keeps it in its L1
		fmt.Println("b:", v)

		name.Store("Ada") // the source changes, and the write path tells the cache through a
		if err := a.Delete(ctx, "42"); err != nil {
			t.Fatal(err)
		}
		for range 200 { // until the eviction reaches b: milliseconds; 2 s at most
			if v, _ = b.Get(ctx, "42", loadName); v == "Ada" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("b:", v)
	})
	// Output:
	// b: Grace
	// b: Ada
}

// A stampede: 100 concurrent requests for one key, spread over 4 instances of a service, load
// it once (with the default strategy, Lease).
func ExampleNewFleet_stampede() {
	test(func(t testing.TB) {
		fleet := stampedetest.NewFleet[string](t, 4)

		var queries atomic.Int64
		loadPost := func(ctx context.Context, id string) (string, error) {
			queries.Add(1)
			time.Sleep(50 * time.Millisecond) // a slow query
			return "post " + id, nil
		}
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				if _, err := fleet[i%4].Get(context.Background(), "viral", loadPost); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		fmt.Println("queries:", queries.Load())
	})
	// Output:
	// queries: 1
}

// A Server gives access to the Redis of several caches: to look at what they stored, or to lose
// it and see the caches answer through their loaders.
func ExampleNewOn() {
	test(func(t testing.TB) {
		srv := stampedetest.NewServer(t)
		users := stampedetest.NewOn[User](t, srv, stampede.WithNamespace("users"))
		ctx := context.Background()

		if err := users.Set(ctx, "42", User{ID: "42", Name: "Grace Hopper"}); err != nil {
			t.Fatal(err)
		}
		var keys []string // the key's value and fence (a write's eviction buffer comes and goes)
		for _, k := range srv.Miniredis().Keys() {
			if strings.HasPrefix(k, "users:{42}") {
				keys = append(keys, k)
			}
		}
		fmt.Println(keys)

		srv.Close() // Redis is lost
		u, err := users.Get(ctx, "7", func(ctx context.Context, id string) (User, error) {
			return User{ID: id, Name: "Ada Lovelace"}, nil
		})
		fmt.Println(u.Name, err)
	})
	// Output:
	// [users:{42} users:{42}:gen]
	// Ada Lovelace <nil>
}

// test runs f as a test function would run, with a t whose cleanups run when f returns. It is
// the examples' stand-in for a test; in yours, pass its *testing.T.
func test(f func(t testing.TB)) {
	t := &exampleT{}
	defer t.cleanup()
	f(t)
}

// exampleT implements what stampedetest and the examples call of a testing.TB; a failure
// panics, which fails the example.
type exampleT struct {
	testing.TB // not set: its other methods are not called
	mu         sync.Mutex
	cleanups   []func()
}

func (*exampleT) Helper()                        {}
func (*exampleT) Error(args ...any)              { panic(fmt.Sprint(args...)) }
func (*exampleT) Errorf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
func (*exampleT) Fatal(args ...any)              { panic(fmt.Sprint(args...)) }
func (*exampleT) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

func (t *exampleT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *exampleT) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
