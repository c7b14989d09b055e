package main

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/goccy/go-yaml"
)

// openapi.yaml describes every route of routes.go; a test compares the two both ways and
// validates real responses against it. It is written in YAML for people and served as JSON.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON converts the document once per process (a quarter of a second under the
// race detector): tests build a router per test. Callers must not change the bytes.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	doc, err := yaml.YAMLToJSON(openAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return doc, nil
})
