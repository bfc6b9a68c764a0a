package apiserver

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/apiserver/auth"
)

// TestSigningKeyRotation rotates the token signing key under two replicas
// sharing one namespace: neither restarts, both follow the Secret through
// their caches; tokens of the replaced key work until a rotation drops it.
func TestSigningKeyRotation(t *testing.T) {
	ctx := context.Background()
	a := newTestServer(t)
	b := newTestServerIn(t, a.ns)
	accepted := func(ts *testServer, tok string) bool {
		t.Helper()
		r := ts.do(http.MethodGet, "/api/v1/slice-workspace/list", tok, nil)
		if r.code != http.StatusOK && r.code != http.StatusUnauthorized {
			t.Fatalf("list with a token: %d %s", r.code, r.raw)
		}
		return r.code == http.StatusOK
	}
	signingKey := func() []byte {
		t.Helper()
		sec, err := env.Kube.CoreV1().Secrets(a.ns).Get(ctx, auth.SigningKeySecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sec.Data["key"]
	}
	// signedWith reports whether tok was signed with key.
	signedWith := func(tok string, key []byte) bool {
		t.Helper()
		s, err := auth.NewSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Verify(tok, time.Now())
		if err != nil && !errors.Is(err, auth.ErrTokenSignature) {
			t.Fatalf("verify: %v", err)
		}
		return err == nil
	}

	key0 := signingKey()
	tok0 := a.token(a.ownKey)
	if !signedWith(tok0, key0) || !accepted(b, tok0) {
		t.Fatal("replicas do not share the signing key")
	}

	if err := auth.RotateSigningKey(ctx, env.Client, a.ns, false); err != nil {
		t.Fatal(err)
	}
	key1 := signingKey()
	var tok1 string
	waitFor(t, "replica a to sign with the new key", func() bool {
		tok1 = a.token(a.ownKey)
		return signedWith(tok1, key1)
	})
	waitFor(t, "replica b to accept the new key's token", func() bool { return accepted(b, tok1) })
	for name, ts := range map[string]*testServer{"a": a, "b": b} {
		if !accepted(ts, tok0) {
			t.Errorf("replica %s: a token of the replaced key was refused after a routine rotation", name)
		}
	}

	if err := auth.RotateSigningKey(ctx, env.Client, a.ns, true); err != nil {
		t.Fatal(err)
	}
	for name, ts := range map[string]*testServer{"a": a, "b": b} {
		waitFor(t, "replica "+name+" to refuse tokens of the dropped keys", func() bool {
			return !accepted(ts, tok0) && !accepted(ts, tok1)
		})
		if tok := ts.token(ts.ownKey); !accepted(a, tok) || !accepted(b, tok) {
			t.Errorf("replica %s: a token issued after the rotation is refused", name)
		}
	}
	if r := a.do(http.MethodGet, "/api/v1/slice-workspace/list", tok0, nil); r.errMsg() == "" {
		t.Errorf("refused token: no error message in %s", r.raw)
	}
}
