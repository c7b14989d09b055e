// Package static holds Lupa's browser side: the consent widget's sources (widget/) and its
// built, content-hashed files (dist/), embedded. It is a leaf: it imports nothing of ours.
//
// Build with `go generate ./static` (esbuild's Go API; no Node or npm); the output is
// committed and reproducible. Serve Files under /v1/static/ with a long immutable cache (the
// names carry a content hash) and redirect /v1/widget.js to /v1/static/ + WidgetJS.
package static

import (
	"embed"
	"io/fs"
)

//go:generate go run ./internal/build

//go:embed dist
var dist embed.FS

// Files holds exactly the current build: WidgetJS and WidgetCSS, at its root.
var Files fs.FS = sub()

func sub() fs.FS {
	f, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // cannot happen: "dist" is a valid path and is embedded
	}
	return f
}
