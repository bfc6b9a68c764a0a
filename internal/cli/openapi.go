package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/gpuspace/gpuspace/apiserver"
)

func newOpenAPICommand() *cobra.Command {
	var (
		format, specVersion, output string
	)
	cmd := &cobra.Command{
		Use:   "openapi",
		Short: "Print the REST API's OpenAPI document, without a cluster",
		Long: `openapi writes the document a running server serves at /openapi.json, built
from the same operation definitions, so clients can be generated offline.
--openapi-version 3.0 writes the 3.0.3 form for generators that do not read
OpenAPI 3.1 yet (oapi-codegen, older openapi-generator releases).`,
		Example: `  gpuspace openapi --openapi-version 3.0 -o openapi.json
  go tool oapi-codegen -generate types,client -package egs openapi.json > egs.gen.go`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := openAPIDocument(specVersion, format)
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				_, err = cmd.OutOrStdout().Write(doc)
				return err
			}
			// Write beside the target and rename, so a failed run never
			// leaves a truncated document behind.
			tmp := output + ".tmp"
			if err := os.WriteFile(tmp, doc, 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, output)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "json", "json or yaml")
	f.StringVar(&specVersion, "openapi-version", "3.1", "3.1 (as served) or 3.0 (downgraded for older generators)")
	f.StringVarP(&output, "output", "o", "-", "file to write; - for standard output")
	return cmd
}

// openAPIDocument renders the API's document in the given OpenAPI version
// and format, indented and ending in a newline so it diffs well when
// checked in.
func openAPIDocument(specVersion, format string) ([]byte, error) {
	spec := apiserver.Describe(Version).OpenAPI()
	var raw []byte
	var err error
	switch specVersion {
	case "3.1":
		raw, err = json.Marshal(spec)
	case "3.0":
		raw, err = spec.Downgrade()
	default:
		return nil, fmt.Errorf("--openapi-version %q: want 3.1 or 3.0", specVersion)
	}
	if err != nil {
		return nil, fmt.Errorf("render OpenAPI %s: %w", specVersion, err)
	}
	switch format {
	case "json":
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		out, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, err
		}
		return append(out, '\n'), nil
	case "yaml":
		return yaml.JSONToYAML(raw)
	default:
		return nil, fmt.Errorf("--format %q: want json or yaml", format)
	}
}
