package stampedecodec_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// small and profile are the values the tests and benchmarks encode: a small record whose JSON
// encoding is 96 bytes, and a profile page whose JSON encoding is about 10 KiB.

type small struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	Active  bool   `json:"active"`
	Created int64  `json:"created"`
}

func smallValue() small {
	return small{ID: 4242, Name: "Anna Example", Email: "ann42@example.com", Active: true, Created: 1764547200}
}

type post struct {
	ID     int64    `json:"id"`
	Title  string   `json:"title"`
	Body   string   `json:"body"`
	Tags   []string `json:"tags"`
	Likes  int      `json:"likes"`
	Posted int64    `json:"posted"`
}

type profile struct {
	ID        int64             `json:"id"`
	Handle    string            `json:"handle"`
	Name      string            `json:"name"`
	Bio       string            `json:"bio"`
	Followers int               `json:"followers"`
	Links     map[string]string `json:"links"`
	Posts     []post            `json:"posts"`
}

var words = strings.Fields(`the a of to and in is it that for on with as was at by this be from
	or have an are not but what all were when we there can your which their said if do will each
	about how up out them then she many some so these would other into has more her two like him
	see time could no make than first been its who now people my made over did down only way find
	use may water long little very after words called just where most know cache redis query load
	profile celebrity post viral database latency request server deploy update follow share`)

// sentence returns n words drawn from words: text that compresses as prose does, not better.
func sentence(r *rand.Rand, n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = words[r.IntN(len(words))]
	}
	return strings.Join(s, " ")
}

func profileValue() profile {
	r := rand.New(rand.NewPCG(1, 2))
	p := profile{
		ID: 1, Handle: "celeb", Name: "A. Celebrity", Bio: sentence(r, 31), Followers: 12_345,
		Links: map[string]string{"site": "https://celeb.example.com", "shop": "https://shop.example.com/celeb"},
	}
	for i := range 32 {
		p.Posts = append(p.Posts, post{
			ID:     int64(1000 + i),
			Title:  sentence(r, 6),
			Body:   sentence(r, 40),
			Tags:   []string{words[r.IntN(len(words))], words[r.IntN(len(words))]},
			Likes:  r.IntN(100_000),
			Posted: 1764547200 + int64(i)*3600,
		})
	}
	return p
}

func (p profile) String() string { return fmt.Sprintf("profile %d with %d posts", p.ID, len(p.Posts)) }
