package stampede_test

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/stampede-cache/stampede"
)

// GetMany reads many keys at once: the L1, then one MGET, then one BatchLoader call for the
// misses (here a stand-in for a PostgreSQL query; examples/postgres runs the real one with pgx:
// SELECT id, name FROM users WHERE id = ANY($1)). Keys the loader leaves out do not exist: they
// are absent from the map, and cached as not-found.
func ExampleCache_GetMany() {
	rdb, stop := exampleRedis()
	defer stop()
	users, err := stampede.New[User](rdb, stampede.WithNamespace("users"))
	if err != nil {
		panic(err)
	}
	defer users.Close()

	table := map[string]string{"1": "Ada Lovelace", "42": "Grace Hopper", "7": "Edsger Dijkstra"}
	queries := 0
	loadUsers := func(ctx context.Context, ids []string) (map[string]User, error) {
		queries++ // rows, err := db.Query(ctx, `SELECT id, name FROM users WHERE id = ANY($1)`, ids)
		found := make(map[string]User, len(ids))
		for _, id := range ids {
			if name, ok := table[id]; ok {
				found[id] = User{ID: id, Name: name}
			}
		}
		return found, nil
	}

	ctx := context.Background()
	for range 2 {
		got, err := users.GetMany(ctx, []string{"1", "42", "404", "7"}, loadUsers)
		if err != nil {
			panic(err)
		}
		for _, id := range slices.Sorted(maps.Keys(got)) {
			fmt.Println(id, got[id].Name)
		}
	}
	fmt.Println("queries:", queries)
	// Output:
	// 1 Ada Lovelace
	// 42 Grace Hopper
	// 7 Edsger Dijkstra
	// 1 Ada Lovelace
	// 42 Grace Hopper
	// 7 Edsger Dijkstra
	// queries: 1
}
