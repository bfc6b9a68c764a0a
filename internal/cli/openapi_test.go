package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestOpenAPICommand(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    string // the document's "openapi" field
		wantErr string
	}{
		{name: "default is 3.1 JSON, as served", want: "3.1.0"},
		{name: "3.0 for generators", args: []string{"--openapi-version", "3.0"}, want: "3.0.3"},
		{name: "yaml", args: []string{"--format", "yaml"}, want: "3.1.0"},
		{name: "unknown version", args: []string{"--openapi-version", "2.0"}, wantErr: `--openapi-version "2.0"`},
		{name: "unknown format", args: []string{"--format", "toml"}, wantErr: `--format "toml"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := NewRootCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&bytes.Buffer{})
			cmd.SetArgs(append([]string{"openapi"}, tc.args...))
			err := cmd.Execute()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("openapi %v: %v", tc.args, err)
			}
			var doc struct {
				OpenAPI string         `json:"openapi"`
				Paths   map[string]any `json:"paths"`
			}
			if err := yaml.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatalf("output is not JSON/YAML: %v", err)
			}
			if doc.OpenAPI != tc.want {
				t.Errorf("openapi = %q, want %q", doc.OpenAPI, tc.want)
			}
			if _, ok := doc.Paths["/api/v1/gpr"]; !ok {
				t.Errorf("no /api/v1/gpr among %d paths", len(doc.Paths))
			}
		})
	}
}

func TestOpenAPICommandWritesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "openapi.json")
	cmd := NewRootCommand()
	cmd.SetArgs([]string{"openapi", "-o", path})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) || !bytes.HasSuffix(b, []byte("}\n")) {
		t.Errorf("%s: not an indented JSON document ending in a newline", path)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}
