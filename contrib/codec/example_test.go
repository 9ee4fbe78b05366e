package stampedecodec_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
	stampedecodec "github.com/stampede-cache/stampede/contrib/codec"
)

// Example stores a cache's values in Redis as MessagePack, compressed from 1 KiB.
func Example() {
	mr, err := miniredis.Run() // in production: the service's Redis
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()

	type Article struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	}
	codec := stampedecodec.Compress(stampedecodec.Msgpack{StructTag: "json"}, stampedecodec.DefaultThreshold)
	articles, err := stampede.New[Article](rdb, stampede.WithNamespace("articles"), stampede.WithCodec(codec))
	if err != nil {
		log.Fatal(err)
	}
	defer articles.Close()

	load := func(ctx context.Context, id string) (Article, error) {
		return Article{Title: "On caches", Body: strings.Repeat("A cache in front of a slow source. ", 100)}, nil
	}
	a, err := articles.Get(context.Background(), "7", load)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.Title, len(a.Body))

	stored, err := rdb.Get(context.Background(), "articles:{7}").Bytes()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored under 1 KiB:", len(stored) < 1024)
	// Output:
	// On caches 3500
	// stored under 1 KiB: true
}

func ExampleMsgpack() {
	type User struct {
		Name     string `json:"name"`
		Password string `json:"-"`
	}
	codec := stampedecodec.Msgpack{StructTag: "json"} // honour the json tags: no password in Redis
	data, err := codec.Marshal(User{Name: "ann", Password: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	var u User
	if err := codec.Unmarshal(data, &u); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes: %+v\n", len(data), u)
	// Output:
	// 10 bytes: {Name:ann Password:}
}

func ExampleCompress() {
	codec := stampedecodec.Compress(stampede.JSONCodec{}, 1024)

	short, err := codec.Marshal("a short value")
	if err != nil {
		log.Fatal(err)
	}
	long, err := codec.Marshal(strings.Repeat("a long value ", 1000))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("short: %s\n", short)
	fmt.Println("long: 13002 bytes of JSON stored in fewer than 1,000:", len(long) < 1000)

	// Both decode, whatever the threshold of the codec that reads them.
	var s string
	if err := stampedecodec.Compress(stampede.JSONCodec{}, 0).Unmarshal(long, &s); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(s))
	// Output:
	// short: "a short value"
	// long: 13002 bytes of JSON stored in fewer than 1,000: true
	// 13000
}
