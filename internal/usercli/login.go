package usercli

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newLoginCommand(g *globals) *cobra.Command {
	var keyFile string
	c := &cobra.Command{
		Use:   "login --server URL [--api-key-file FILE]",
		Short: "Log in to a gpuspace server with an API key and make it the current context",
		Long: `Log in to a gpuspace server with an API key (from your administrator, or
the console's API keys page). The key is checked against the server, then
kept in the config file ($GPUSPACE_CONFIG, else ~/.config/gpuspace/config.yaml,
readable by you alone) under a context named after the server (--context to
name it), which becomes the current context.

The key is read from --api-key-file, else $GPUSPACE_API_KEY, else asked for
on the terminal (not echoed), else read from standard input.`,
		Example: `  gpuspace login --server https://gpuspace.example.com
  gpuspace login --server http://127.0.0.1:8080 --context dev --api-key-file .gpuspace/dev/owner-api-key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			server := g.server
			if server == "" {
				if cur, err := cfg.context(g.context); err == nil {
					server = cur.Server
				}
			}
			if server == "" {
				return errors.New("--server: which gpuspace server? e.g. --server https://gpuspace.example.com")
			}
			u, err := url.Parse(server)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("--server %q: want an http:// or https:// URL", server)
			}
			key, err := readKey(cmd, keyFile)
			if err != nil {
				return err
			}
			s := &session{server: strings.TrimRight(server, "/"), apiKey: key}
			s.http = defaultHTTP()
			if err := s.login(cmd.Context()); err != nil {
				return err
			}
			name := g.context
			if name == "" {
				name = u.Host
			}
			cfg.upsert(Context{Name: name, Server: s.server, APIKey: key})
			cfg.CurrentContext = name
			if err := cfg.save(path); err != nil {
				return err
			}
			printf(cmd.OutOrStdout(), "Logged in to %s (context %q).\n", s.server, name)
			return nil
		},
	}
	g.addFlags(c.Flags(), false)
	c.Flags().StringVar(&keyFile, "api-key-file", "", "File holding the API key")
	return c
}

// readKey reads the API key from the file, $GPUSPACE_API_KEY, the terminal
// or standard input.
func readKey(cmd *cobra.Command, file string) (string, error) {
	var key string
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--api-key-file: %w", err)
		}
		key = string(b)
	case os.Getenv("GPUSPACE_API_KEY") != "":
		key = os.Getenv("GPUSPACE_API_KEY")
	default:
		in := cmd.InOrStdin()
		if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			printf(cmd.ErrOrStderr(), "API key: ")
			b, err := term.ReadPassword(int(f.Fd()))
			printf(cmd.ErrOrStderr(), "\n")
			if err != nil {
				return "", err
			}
			key = string(b)
		} else {
			line, err := bufio.NewReader(in).ReadString('\n')
			if err != nil && line == "" {
				return "", errors.New("no API key: give --api-key-file, set $GPUSPACE_API_KEY, or type it on the terminal")
			}
			key = line
		}
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return "", errors.New("the API key is empty")
	}
	return key, nil
}

func newLogoutCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "logout",
		Short: "Forget the current context's API key (the server and context stay)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			cur, err := cfg.context(g.context)
			if err != nil {
				return err
			}
			cur.APIKey = ""
			if err := cfg.save(path); err != nil {
				return err
			}
			printf(cmd.OutOrStdout(), "Logged out of %s (context %q).\n", cur.Server, cur.Name)
			return nil
		},
	}
	c.Flags().StringVar(&g.context, "context", "", "Context to log out of (default: the current one)")
	return c
}

func newConfigCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Show and switch the gpuspace servers you are logged in to (contexts)",
	}
	c.AddCommand(
		&cobra.Command{
			Use: "get-contexts", Short: "List the contexts; * marks the current one", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, _, err := loadConfig()
				if err != nil {
					return err
				}
				t := &table{header: []string{"CURRENT", "NAME", "SERVER", "LOGGED IN"}}
				for _, x := range cfg.Contexts {
					cur, in := "", "no"
					if x.Name == cfg.CurrentContext {
						cur = "*"
					}
					if x.APIKey != "" {
						in = "yes"
					}
					t.add(cur, x.Name, x.Server, in)
				}
				return t.write(cmd.OutOrStdout())
			},
		},
		&cobra.Command{
			Use: "current-context", Short: "Print the current context's name", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, _, err := loadConfig()
				if err != nil {
					return err
				}
				if cfg.CurrentContext == "" {
					return errors.New("no current context: run gpuspace login")
				}
				printf(cmd.OutOrStdout(), "%s\n", cfg.CurrentContext)
				return nil
			},
		},
		&cobra.Command{
			Use: "use-context NAME", Short: "Make NAME the current context", Args: cobra.ExactArgs(1),
			ValidArgsFunction: completeContexts,
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, path, err := loadConfig()
				if err != nil {
					return err
				}
				if _, err := cfg.context(args[0]); err != nil {
					return err
				}
				cfg.CurrentContext = args[0]
				if err := cfg.save(path); err != nil {
					return err
				}
				printf(cmd.OutOrStdout(), "Switched to context %q.\n", args[0])
				return nil
			},
		},
		&cobra.Command{
			Use: "delete-context NAME", Short: "Forget the context NAME and its key", Args: cobra.ExactArgs(1),
			ValidArgsFunction: completeContexts,
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, path, err := loadConfig()
				if err != nil {
					return err
				}
				if !cfg.remove(args[0]) {
					return fmt.Errorf("no context %q", args[0])
				}
				if err := cfg.save(path); err != nil {
					return err
				}
				printf(cmd.OutOrStdout(), "Deleted context %q.\n", args[0])
				return nil
			},
		},
	)
	return c
}

func completeContexts(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, _, err := loadConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []string
	for _, x := range cfg.Contexts {
		names = append(names, x.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
