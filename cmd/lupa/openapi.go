package main

import (
	_ "embed"
	"fmt"

	"github.com/goccy/go-yaml"
)

// openapi.yaml describes every route of routes.go; a test compares the two both ways and
// validates real responses against it. It is written in YAML for people and served as JSON.
//
//go:embed openapi.yaml
var openAPIYAML []byte

func openAPIJSON() ([]byte, error) {
	doc, err := yaml.YAMLToJSON(openAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return doc, nil
}
