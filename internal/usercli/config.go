package usercli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"sigs.k8s.io/yaml"
)

// Config is the user CLI's file: the gpuspace servers it knows (contexts)
// and which one commands talk to. It holds API keys, so it is written
// 0600 in a 0700 directory.
type Config struct {
	CurrentContext string    `json:"currentContext,omitempty"`
	Contexts       []Context `json:"contexts,omitempty"`
}

// Context is one gpuspace server and the credential to reach it with.
type Context struct {
	Name   string `json:"name"`
	Server string `json:"server"`
	// APIKey is the key `gpuspace login` was given; empty after logout.
	APIKey string `json:"apiKey,omitempty"`
}

// configPath is $GPUSPACE_CONFIG, else gpuspace/config.yaml in the user's
// config directory ($XDG_CONFIG_HOME or ~/.config on Linux).
func configPath() (string, error) {
	if p := os.Getenv("GPUSPACE_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory (set GPUSPACE_CONFIG): %w", err)
	}
	return filepath.Join(dir, "gpuspace", "config.yaml"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig() (*Config, string, error) {
	path, err := configPath()
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Config{}, path, nil
	}
	if err != nil {
		return nil, path, err
	}
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, path, fmt.Errorf("%s: %w (fix or delete the file, then gpuspace login)", path, err)
	}
	return &c, path, nil
}

// save writes the config atomically (temp file, rename), readable by the
// user alone.
func (c *Config) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// context returns the named context, or the current one for "".
func (c *Config) context(name string) (*Context, error) {
	if name == "" {
		name = c.CurrentContext
	}
	if name == "" {
		return nil, errors.New("no gpuspace server configured: run gpuspace login --server URL (or set GPUSPACE_SERVER and GPUSPACE_API_KEY)")
	}
	i := slices.IndexFunc(c.Contexts, func(x Context) bool { return x.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("no context %q (gpuspace config get-contexts lists them)", name)
	}
	return &c.Contexts[i], nil
}

// upsert adds the context or replaces the one of the same name.
func (c *Config) upsert(x Context) {
	if i := slices.IndexFunc(c.Contexts, func(y Context) bool { return y.Name == x.Name }); i >= 0 {
		c.Contexts[i] = x
		return
	}
	c.Contexts = append(c.Contexts, x)
}

// remove deletes the named context; it reports whether there was one.
func (c *Config) remove(name string) bool {
	n := len(c.Contexts)
	c.Contexts = slices.DeleteFunc(c.Contexts, func(x Context) bool { return x.Name == name })
	if c.CurrentContext == name {
		c.CurrentContext = ""
	}
	return len(c.Contexts) != n
}
