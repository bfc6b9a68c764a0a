package console_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// pageErrors records every console error, uncaught exception and error log
// entry (a failed resource, an invalid pattern attribute, a CSP violation)
// of a browser tab, so the browser test fails on any of them on any page it
// visits. An error the test causes on purpose (a forged request's 403) is
// declared with expect around the step that causes it.
type pageErrors struct {
	mu       sync.Mutex
	errs     []string
	expected []string // substrings of errors allowed now
}

// listenPageErrors starts recording the tab of ctx; the tab must be open.
func listenPageErrors(t *testing.T, ctx context.Context) *pageErrors {
	t.Helper()
	p := &pageErrors{}
	if err := chromedp.Listen(ctx, p.add); err != nil {
		t.Fatal(err)
	}
	return p
}

// add runs in the tab's read loop: it only appends.
func (p *pageErrors) add(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + exceptionText(e.ExceptionDetails)
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		args := make([]string, 0, len(e.Args))
		for _, a := range e.Args {
			if len(a.Value) > 0 {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		msg = "console." + string(e.Type) + ": " + strings.Join(args, " ")
	case *log.EventEntryAdded:
		if e.Entry == nil || e.Entry.Level != log.EntryLevelError {
			return
		}
		msg = fmt.Sprintf("log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL)
	default:
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range p.expected {
		if strings.Contains(msg, x) {
			return
		}
	}
	p.errs = append(p.errs, msg)
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "?"
	}
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d:%d)", s, d.URL, d.LineNumber+1, d.ColumnNumber+1)
}

// expect allows errors containing substr while fn runs: errors the test
// provokes on purpose.
func (p *pageErrors) expect(substr string, fn func()) {
	p.mu.Lock()
	p.expected = append(p.expected, substr)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.expected = p.expected[:len(p.expected)-1]
		p.mu.Unlock()
	}()
	fn()
}

// take returns the errors recorded since the last call.
func (p *pageErrors) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := p.errs
	p.errs = nil
	return errs
}

// check fails the test with every error recorded since the last check,
// naming the step after which they were seen.
func (p *pageErrors) check(t *testing.T, step string) {
	t.Helper()
	for _, e := range p.take() {
		t.Errorf("console error during %q: %s", step, e)
	}
}
