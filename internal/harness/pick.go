package harness

import (
	"slices"
	"strings"
)

// Pick returns the elements of all that list names by their slug, in the order of all, and
// the slugs of list that name none, in the order of list. list is comma-separated, with spaces
// around a slug ignored; empty or "all", it names every element.
func Pick[T any](all []T, list string, slug func(T) string) (picked []T, unknown []string) {
	if list == "" || list == "all" {
		return all, nil
	}
	var named []string
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); !slices.Contains(named, s) {
			named = append(named, s)
		}
	}
	found := map[string]bool{}
	for _, e := range all {
		if s := slug(e); slices.Contains(named, s) {
			picked = append(picked, e)
			found[s] = true
		}
	}
	for _, s := range named {
		if !found[s] {
			unknown = append(unknown, s)
		}
	}
	return picked, unknown
}
