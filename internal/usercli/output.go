package usercli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
	"sigs.k8s.io/yaml"
)

// Output formats (-o).
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

func validOutput(o string) error {
	switch o {
	case outTable, outJSON, outYAML:
		return nil
	}
	return fmt.Errorf("-o %q: want table, json or yaml", o)
}

// table is a header and rows, printed aligned.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// render prints v as JSON or YAML, or calls tab for a table.
func render(w io.Writer, format string, v any, tab func() *table) error {
	switch format {
	case outJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case outYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	default:
		return tab().write(w)
	}
}

// isTerminal reports whether w is a terminal (live lines, colours off
// otherwise).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// when shows an RFC 3339 time of the API relative to now ("in 12m",
// "3m ago"), or "-" when empty.
func when(s string, now time.Time) string {
	t := parseTime(s)
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	switch {
	case d > -time.Second && d < time.Second:
		return "now"
	case d > 0:
		return "in " + short(d)
	default:
		return short(-d) + " ago"
	}
}

// short prints a duration as 2h5m or 40s.
func short(d time.Duration) string {
	if d >= time.Hour {
		d = d.Round(time.Minute)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
