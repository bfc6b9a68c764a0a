package apiserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/apiserver/auth"
)

// TestSSO runs the API with single sign-on against an OpenID Provider
// running in process (mockoidc: discovery, JWKS, authorization code and
// token endpoints) on a real kube-apiserver: an ID token from the code
// flow is an Owner by its group; a group maps to an Editor of one
// workspace; tokens with the wrong issuer, the wrong audience, expired,
// unsigned or signed by an unknown key are refused with a 401 envelope;
// after the provider rotates its key, new tokens work and the old key's
// are refused; a user removed from the group gets 403 with their next
// token; API keys keep working; and no token reaches the logs.
func TestSSO(t *testing.T) {
	ctx := context.Background()
	op, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Shutdown() })

	ns, ws := "gs-sso-"+suffix(), "team-a-"+suffix()
	core, logs := observer.New(zapcore.DebugLevel)
	srv, err := New(Config{RESTConfig: env.Config, Namespace: ns, OIDC: &auth.OIDCConfig{IssuerURL: op.Issuer(), ClientID: op.ClientID}},
		WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	h := apiservertest.Start(t, env.Client, ns, srv)
	roles := "groups:\n  platform: {role: Owner}\n  ml-team-a: {role: Editor, workspace: " + ws + "}\n"
	if err := env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: auth.DefaultOIDCRolesConfigMap},
		Data: map[string]string{auth.OIDCRolesKey: roles}}); err != nil {
		t.Fatal(err)
	}

	call := func(token, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.HTTP.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var issued []string
	sign := func(kp *mockoidc.Keypair, mod func(jwt.MapClaims)) string {
		t.Helper()
		now := time.Now()
		c := jwt.MapClaims{"iss": op.Issuer(), "aud": op.ClientID, "sub": "u-1", "email": "jane@example.com",
			"groups": []string{"ml-team-a"}, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		tok, err := kp.SignJWT(c)
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, tok)
		return tok
	}
	const ownerOnly, readAll = "/api/v1/api-key/list", "/api/v1/slice-workspace/list"

	// The authorization code flow (with PKCE) gives an ID token; its group
	// platform is Owner.
	op.QueueUser(&mockoidc.MockUser{Subject: "u-2", Email: "ops@example.com", Groups: []string{"platform"}})
	idToken := codeFlow(t, op)
	issued = append(issued, idToken)
	if code, body := call(idToken, ownerOnly); code != http.StatusOK {
		t.Errorf("Owner by group platform, from the code flow: %d %s", code, body)
	}

	// ml-team-a: Editor of ws, so no Owner operation.
	editor := sign(op.Keypair, nil)
	if code, body := call(editor, readAll); code != http.StatusOK {
		t.Errorf("Editor reads: %d %s", code, body)
	}
	if code, body := call(editor, ownerOnly); code != http.StatusForbidden || !strings.Contains(body, "role Editor") {
		t.Errorf("Editor lists API keys: %d %s, want 403", code, body)
	}

	other, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"wrong issuer":   sign(op.Keypair, func(c jwt.MapClaims) { c["iss"] = "http://127.0.0.1:1/other" }),
		"wrong audience": sign(op.Keypair, func(c jwt.MapClaims) { c["aud"] = "someone-else" }),
		"expired":        sign(op.Keypair, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }),
		"unknown key":    sign(other, nil),
		"unsigned":       unsigned(t, jwt.MapClaims{"iss": op.Issuer(), "aud": op.ClientID, "sub": "u-1", "groups": []string{"platform"}, "exp": time.Now().Add(time.Minute).Unix()}),
		"garbage":        "not-a-token",
	} {
		issued = append(issued, tok)
		code, body := call(tok, readAll)
		var env struct {
			Error struct{ ErrorKey, Message string } `json:"error"`
		}
		if code != http.StatusUnauthorized || json.Unmarshal([]byte(body), &env) != nil || env.Error.ErrorKey == "" {
			t.Errorf("%s: %d %s, want a 401 envelope", name, code, body)
		}
	}

	// Key rotation at the provider: the new key's tokens work (the JWKS is
	// fetched again for the unknown kid), the old key's no longer.
	oldKey := op.Keypair
	op.Keypair = other
	if code, body := call(sign(other, nil), readAll); code != http.StatusOK {
		t.Errorf("after rotation, a new-key token: %d %s", code, body)
	}
	if code, body := call(sign(oldKey, nil), readAll); code != http.StatusUnauthorized {
		t.Errorf("after rotation, an old-key token: %d %s, want 401", code, body)
	}

	// Removed from ml-team-a: the next token has no group, and no role.
	gone := sign(other, func(c jwt.MapClaims) { c["groups"] = []string{"unrelated"} })
	if code, body := call(gone, readAll); code != http.StatusForbidden || !strings.Contains(body, "no gpuspace role") {
		t.Errorf("user removed from the group: %d %s, want 403 naming the missing role", code, body)
	}

	// API keys stay.
	if code, body := call(h.Owner, ownerOnly); code != http.StatusOK {
		t.Errorf("API key's token: %d %s", code, body)
	}

	// No token in the logs.
	for _, e := range logs.All() {
		line := e.Message
		for _, f := range e.Context {
			line += " " + f.String + " " + f.Key
			if f.Interface != nil {
				if b, err := json.Marshal(f.Interface); err == nil {
					line += string(b)
				}
			}
		}
		for _, tok := range append(issued, h.Owner) {
			if sig := tok[strings.LastIndex(tok, ".")+1:]; len(sig) > 16 && strings.Contains(line, sig) {
				t.Errorf("a token is in the log: %s", line)
			}
		}
	}
}

// codeFlow runs the authorization code flow with PKCE against the
// provider, as a browser and the console's server side would, and returns
// the ID token.
func codeFlow(t *testing.T, op *mockoidc.MockOIDC) string {
	t.Helper()
	verifier := "a-code-verifier-of-at-least-forty-three-characters-xyz"
	challenge, err := mockoidc.GenerateCodeChallenge("S256", verifier)
	if err != nil {
		t.Fatal(err)
	}
	redirect := "http://127.0.0.1/callback"
	q := url.Values{"client_id": {op.ClientID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"scope": {"openid email groups"}, "state": {"st"}, "nonce": {"n"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(op.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = http.PostForm(op.TokenEndpoint(), url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"client_id": {op.ClientID}, "client_secret": {op.ClientSecret}, "redirect_uri": {redirect}, "code_verifier": {verifier}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.IDToken == "" {
		t.Fatalf("token endpoint: %d %v", resp.StatusCode, err)
	}
	return tok.IDToken
}

// unsigned is a JWT with alg none.
func unsigned(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(b) + "."
}
