package usercli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/server/servertest"
)

// TestUserCLIWithIDToken: the CLI sends an ID token from $GPUSPACE_TOKEN
// to a server with single sign-on, with no config file and no API key; a
// token of another audience is refused with the API's 401.
func TestUserCLIWithIDToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	op, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Shutdown() })
	ns := "gs-ucli-sso-" + apiservertest.Suffix()
	url := servertest.Start(t, env.Config, server.Options{Namespace: ns,
		API: apiserver.Config{OIDC: &auth.OIDCConfig{IssuerURL: op.Issuer(), ClientID: op.ClientID}}})
	if err := env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: auth.DefaultOIDCRolesConfigMap},
		Data: map[string]string{auth.OIDCRolesKey: "groups:\n  readers: {role: Viewer}\n"}}); err != nil {
		t.Fatal(err)
	}
	sign := func(aud string) string {
		tok, err := op.Keypair.SignJWT(jwt.MapClaims{"iss": op.Issuer(), "aud": aud, "sub": "u", "email": "u@example.com",
			"groups": []string{"readers"}, "exp": time.Now().Add(5 * time.Minute).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	t.Setenv("GPUSPACE_CONFIG", t.TempDir()+"/none.yaml")
	t.Setenv("GPUSPACE_SERVER", url)
	t.Setenv("GPUSPACE_API_KEY", "")
	t.Setenv("GPUSPACE_TOKEN", sign(op.ClientID))
	must(t, ctx, "ws", "list")
	must(t, ctx, "queue")
	t.Setenv("GPUSPACE_TOKEN", sign("other"))
	if _, err := run(t, ctx, nil, "ws", "list"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a token of another audience: %v, want the 401", err)
	}
}
