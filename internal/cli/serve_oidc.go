package cli

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/gpuspace/gpuspace/apiserver/auth"
)

// oidcFlags are serve's single sign-on flags (docs/sso.md).
type oidcFlags struct {
	cfg        auth.OIDCConfig
	secretFile string
}

func (o *oidcFlags) add(f *pflag.FlagSet) {
	f.StringVar(&o.cfg.IssuerURL, "oidc-issuer-url", "", "OpenID Provider whose ID tokens the API accepts beside its own bearer tokens (single sign-on); empty: API keys only")
	f.StringVar(&o.cfg.ClientID, "oidc-client-id", "", "client id of gpuspace at the provider: the audience ID tokens must have")
	f.StringVar(&o.secretFile, "oidc-client-secret-file", "", "file holding gpuspace's client secret at the provider, for the console's log-in; none: a public client (PKCE alone)")
	f.StringVar(&o.cfg.GroupsClaim, "oidc-groups-claim", "groups", "ID token claim with the user's groups")
	f.StringVar(&o.cfg.UsernameClaim, "oidc-username-claim", "email", "ID token claim that names the user (the mapping's users; the sub claim when absent)")
	f.StringVar(&o.cfg.RolesConfigMap, "oidc-roles-configmap", auth.DefaultOIDCRolesConfigMap, "ConfigMap in --namespace whose "+auth.OIDCRolesKey+" maps groups and users to a role and workspace")
}

// config is the OIDC configuration, nil without --oidc-issuer-url.
func (o *oidcFlags) config() (*auth.OIDCConfig, error) {
	if o.cfg.IssuerURL == "" {
		if o.cfg.ClientID != "" {
			return nil, fmt.Errorf("--oidc-client-id needs --oidc-issuer-url")
		}
		return nil, nil
	}
	u, err := url.Parse(o.cfg.IssuerURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("--oidc-issuer-url %q: want the provider's https:// issuer URL", o.cfg.IssuerURL)
	}
	if o.cfg.ClientID == "" {
		return nil, fmt.Errorf("--oidc-client-id: the client id ID tokens are issued for is required with --oidc-issuer-url")
	}
	c := o.cfg
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		c.ClientSecret = strings.TrimSpace(string(b))
	}
	return &c, nil
}
