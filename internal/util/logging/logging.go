// Package logging builds the zap logger every gpuspace binary uses and
// routes Kubernetes libraries' logging (klog, controller-runtime) through it.
package logging

import (
	"fmt"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

// Options selects the log format and level.
type Options struct {
	// Format is "json" (default; for clusters) or "console" (for people).
	Format string
	// Level is debug, info, warn or error; default info.
	Level string
	// OutputPath is a file to log to instead of stderr.
	OutputPath string
}

// New returns a zap logger for opts and its logr view, and makes klog log
// through it, so that client-go and friends write in the same format.
func New(opts Options) (*zap.Logger, logr.Logger, error) {
	var cfg zap.Config
	switch opts.Format {
	case "", "json":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "ts"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "console", "text":
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	default:
		return nil, logr.Logger{}, fmt.Errorf("log format %q: want json or console", opts.Format)
	}
	if opts.Level != "" {
		lvl, err := zapcore.ParseLevel(opts.Level)
		if err != nil {
			return nil, logr.Logger{}, fmt.Errorf("log level %q: %w", opts.Level, err)
		}
		cfg.Level = zap.NewAtomicLevelAt(lvl)
	}
	if opts.OutputPath != "" {
		cfg.OutputPaths = []string{opts.OutputPath}
		cfg.ErrorOutputPaths = []string{opts.OutputPath}
	}
	zl, err := cfg.Build()
	if err != nil {
		return nil, logr.Logger{}, fmt.Errorf("build logger: %w", err)
	}
	lr := zapr.NewLogger(zl)
	klog.SetLogger(lr)
	return zl, lr, nil
}
