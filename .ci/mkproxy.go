//go:build ignore

// mkproxy writes a file-based Go module proxy (GOPROXY=file://DIR) that serves every module of
// a git checkout at one version, made as the Go proxy makes them from tags: the zips come from
// the committed files (git archive), each module's without its nested modules, and a module in a
// subdirectory with no LICENSE gets the repository's. It also checks that each nested module
// requires the root module at that version, which is what makes them resolvable once published.
//
// .ci/release-check runs it in a module of its own (it needs golang.org/x/mod):
//
//	go run . -src CHECKOUT -version v0.1.0 -out DIR . contrib/codec contrib/otel ...
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/zip"
)

func main() {
	src := flag.String("src", "", "a git repository (not a worktree): the zips are made from its HEAD")
	version := flag.String("version", "v0.1.0", "the version every module is served at")
	out := flag.String("out", "", "the proxy's directory")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("mkproxy: ")
	if *src == "" || *out == "" || flag.NArg() == 0 || !semver.IsValid(*version) {
		log.Fatal("usage: mkproxy -src DIR -version vX.Y.Z -out DIR moduledir...")
	}
	commitTime, err := exec.Command("git", "-C", *src, "log", "-1", "--format=%cI").Output()
	if err != nil {
		log.Fatalf("git log: %v", err)
	}
	when, err := time.Parse(time.RFC3339, strings.TrimSpace(string(commitTime)))
	if err != nil {
		log.Fatal(err)
	}

	root := ""
	for _, dir := range flag.Args() {
		dir = path.Clean(dir)
		gomod, err := os.ReadFile(filepath.Join(*src, dir, "go.mod"))
		if err != nil {
			log.Fatal(err)
		}
		f, err := modfile.ParseLax(dir+"/go.mod", gomod, nil)
		if err != nil {
			log.Fatal(err)
		}
		modPath := f.Module.Mod.Path
		if dir == "." {
			root = modPath
		} else if err := requiresRoot(f, root, *version); err != nil {
			log.Fatalf("%s: %v", dir, err)
		}
		if err := write(*src, *out, dir, module.Version{Path: modPath, Version: *version}, gomod, when); err != nil {
			log.Fatalf("%s: %v", dir, err)
		}
	}
}

// requiresRoot checks that a nested module requires the root module at version. A replace
// directive may point it at the checkout: the go command ignores it in a dependency.
func requiresRoot(f *modfile.File, root, version string) error {
	if root == "" {
		return fmt.Errorf("list the root module (.) first")
	}
	for _, r := range f.Require {
		if r.Mod.Path == root {
			if r.Mod.Version != version {
				return fmt.Errorf("requires %s %s, not the %s being released: run go mod edit -require=%s@%s in it",
					root, r.Mod.Version, version, root, version)
			}
			return nil
		}
	}
	return nil // it does not use the root module
}

// write adds m to the proxy: @v/list, and the version's .info, .mod and .zip.
func write(src, out, dir string, m module.Version, gomod []byte, when time.Time) error {
	escaped, err := module.EscapePath(m.Path)
	if err != nil {
		return err
	}
	vdir := filepath.Join(out, filepath.FromSlash(escaped), "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(vdir, "list"), []byte(m.Version+"\n"), 0o644); err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{m.Version, when.UTC()})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(vdir, m.Version+".info"), info, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(vdir, m.Version+".mod"), gomod, 0o644); err != nil {
		return err
	}
	zipPath := filepath.Join(vdir, m.Version+".zip")
	z, err := os.Create(zipPath)
	if err != nil {
		return err
	}
	subdir := dir
	if subdir == "." {
		subdir = ""
	}
	if err := zip.CreateFromVCS(z, m, src, "HEAD", subdir); err != nil {
		z.Close()
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	checked, err := zip.CheckZip(m, zipPath)
	if err != nil {
		return err
	}
	st, err := os.Stat(zipPath)
	if err != nil {
		return err
	}
	fmt.Printf("%-62s %3d files, %6d bytes zipped\n", m.String(), len(checked.Valid), st.Size())
	return nil
}
