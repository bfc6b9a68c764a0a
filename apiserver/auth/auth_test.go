package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

var key32 = []byte("0123456789abcdef0123456789abcdef")

func TestTokenVerify(t *testing.T) {
	s, err := NewSigner(key32)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	good, err := s.Sign(Claims{KeyID: "k", KeyUID: "u", Role: RoleEditor, Workspace: "w", IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewSigner([]byte("another key that is 32 bytes lon"))
	forged, _ := other.Sign(Claims{KeyID: "k", ExpiresAt: now.Add(time.Minute).Unix()})
	parts := strings.Split(good, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"gpuspace","sub":"k","role":"Owner","exp":1900000000}`)) + "." + parts[2]

	tests := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"valid", good, now, nil},
		{"expired at exp", good, now.Add(time.Minute), ErrTokenExpired},
		{"forged signature", forged, now, ErrTokenSignature},
		{"alg none", none, now, ErrTokenMalformed},
		{"claims changed", tampered, now, ErrTokenSignature},
		{"empty", "", now, ErrTokenMalformed},
		{"two parts", parts[0] + "." + parts[1], now, ErrTokenMalformed},
		{"four parts", good + ".x", now, ErrTokenMalformed},
		{"bad base64 signature", parts[0] + "." + parts[1] + ".!!", now, ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.Verify(tt.token, tt.at)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
			if err == nil {
				want := &Claims{Issuer: "gpuspace", KeyID: "k", KeyUID: "u", Role: RoleEditor, Workspace: "w", IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix()}
				if d := cmp.Diff(want, c); d != "" {
					t.Errorf("claims (-want +got):\n%s", d)
				}
			}
		})
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Error("NewSigner accepted a 5-byte key")
	}
	if _, err := NewSigner(key32, []byte("short")); err == nil {
		t.Error("NewSigner accepted a 5-byte previous key")
	}
	// A Signer with previous keys verifies their tokens and signs with
	// its own key only.
	rotated, err := NewSigner([]byte("the next key, also 32 bytes long"), key32)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Verify(good, now); err != nil {
		t.Errorf("token of the previous key: %v", err)
	}
	fresh, _ := rotated.Sign(Claims{KeyID: "k", ExpiresAt: now.Add(time.Minute).Unix()})
	if _, err := s.Verify(fresh, now); !errors.Is(err, ErrTokenSignature) {
		t.Errorf("rotated signer's token under the old key alone: %v, want ErrTokenSignature", err)
	}
}

func fakeClient(t *testing.T) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).Build()
}

func TestKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	c := fakeClient(t)
	now := time.Unix(1_800_000_000, 0)
	clock := now
	key, info, err := CreateKey(ctx, c, "ns", KeyRequest{Name: "ci", UserName: "bot", Role: RoleEditor, Workspace: "team-a", ValidUntil: now.Add(time.Hour)}, now)
	if err != nil {
		t.Fatal(err)
	}
	_, secretPart, ok := parseKey(key)
	if !ok {
		t.Fatalf("created key %q does not parse", key)
	}
	// Nothing stored reveals the key.
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: SecretPrefix + info.ID}, &sec); err != nil {
		t.Fatal(err)
	}
	for k, v := range sec.Data {
		// Not strings.Split(key, "_"): the base64url secret may hold "_".
		if strings.Contains(string(v), secretPart) {
			t.Errorf("secret data %s contains the key's secret part", k)
		}
	}

	signer, _ := NewSigner(key32)
	a := NewAuthenticator(signer, c, nil, "ns", 0, func() time.Time { return clock })
	tok, exp, err := a.Exchange(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(DefaultTokenTTL)) {
		t.Errorf("token expiry %v, want %v", exp, now.Add(DefaultTokenTTL))
	}
	p, err := a.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	want := &Principal{KeyID: info.ID, Name: "ci", Role: RoleEditor, Workspace: "team-a", TokenExpiry: now.Add(DefaultTokenTTL)}
	if d := cmp.Diff(want, p); d != "" {
		t.Errorf("principal (-want +got):\n%s", d)
	}
	// Change the last character (to one it is not: "A" would leave 1 key
	// in 64 as it was).
	wrong := key[:len(key)-1] + "A"
	if strings.HasSuffix(key, "A") {
		wrong = key[:len(key)-1] + "B"
	}
	if _, _, err := a.Exchange(ctx, wrong); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("wrong secret: %v, want ErrUnknownKey", err)
	}
	if _, _, err := a.Exchange(ctx, "ff37ed55-1e76-4117-8eb4-f3f1ee688a7c"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("EGS-style key: %v, want ErrUnknownKey", err)
	}

	// A token never outlives its key; an expired key's tokens stop.
	clock = now.Add(50 * time.Minute)
	tok2, exp2, err := a.Exchange(ctx, key)
	if err != nil || !exp2.Equal(now.Add(time.Hour)) {
		t.Errorf("token near key expiry: %v, expires %v, want %v", err, exp2, now.Add(time.Hour))
	}
	clock = now.Add(time.Hour)
	if _, _, err := a.Exchange(ctx, key); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("expired key: %v", err)
	}
	if _, err := a.Verify(ctx, tok2); err == nil {
		t.Error("token of an expired key verified")
	}

	// Deleting the key revokes its tokens.
	clock = now
	list, err := ListKeys(ctx, c, "ns", "")
	if err != nil || len(list) != 1 || list[0].ID != info.ID {
		t.Fatalf("ListKeys: %v %v", list, err)
	}
	if _, err := DeleteKey(ctx, c, "ns", "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token of a deleted key: %v, want ErrUnknownKey", err)
	}
	if _, err := DeleteKey(ctx, c, "ns", "ci"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestKeyRequestValidate(t *testing.T) {
	tests := []struct {
		req  KeyRequest
		want string
	}{
		{KeyRequest{Name: "a", Role: RoleOwner}, ""},
		{KeyRequest{Name: "a", Role: RoleViewer}, ""},
		{KeyRequest{Name: "a", Role: RoleViewer, Workspace: "w"}, ""},
		{KeyRequest{Name: "a", Role: RoleEditor}, "Editor key needs"},
		{KeyRequest{Name: "a", Role: RoleOwner, Workspace: "w"}, "not limited"},
		{KeyRequest{Role: RoleOwner}, "name: is required"},
		{KeyRequest{Name: "a", Role: "root"}, "role"},
	}
	for _, tt := range tests {
		err := tt.req.Validate()
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.req, err, tt.want)
		}
	}
}

func TestCreateKeyRoleCase(t *testing.T) {
	_, info, err := CreateKey(context.Background(), fakeClient(t), "ns", KeyRequest{Name: "a", Role: "owner"}, time.Now())
	if err != nil || info.Role != RoleOwner {
		t.Errorf("role \"owner\": %v %v, want Owner", info.Role, err)
	}
}

func TestEnsureSigningKey(t *testing.T) {
	ctx := context.Background()
	c := fakeClient(t)
	get := func() corev1.Secret {
		t.Helper()
		var sec corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: SigningKeySecret}, &sec); err != nil {
			t.Fatal(err)
		}
		return sec
	}
	if err := EnsureSigningKey(ctx, c, "ns"); err != nil {
		t.Fatal(err)
	}
	first := get()
	if len(first.Data["key"]) != 32 || first.Labels[LabelAPIKey] != LabelValueSigningKey {
		t.Errorf("created secret: %d-byte key, labels %v", len(first.Data["key"]), first.Labels)
	}
	if err := EnsureSigningKey(ctx, c, "ns"); err != nil || string(get().Data["key"]) != string(first.Data["key"]) {
		t.Errorf("second start got another key or failed: %v", err)
	}

	// A Secret an older gpuspace wrote without the label gets it, key kept.
	old := get()
	old.Labels = nil
	if err := c.Update(ctx, &old); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSigningKey(ctx, c, "ns"); err != nil {
		t.Fatal(err)
	}
	if sec := get(); sec.Labels[LabelAPIKey] != LabelValueSigningKey || string(sec.Data["key"]) != string(first.Data["key"]) {
		t.Errorf("unlabelled secret: labels %v, key kept %v", sec.Labels, string(sec.Data["key"]) == string(first.Data["key"]))
	}

	// A damaged key is an error, not silently replaced.
	bad := get()
	bad.Data["key"] = []byte("short")
	if err := c.Update(ctx, &bad); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSigningKey(ctx, c, "ns"); err == nil {
		t.Error("a 5-byte signing key was accepted")
	}
}

func TestSigningKeyRotation(t *testing.T) {
	ctx := context.Background()
	c := fakeClient(t)
	informers := &informertest.FakeInformers{Scheme: c.Scheme()}
	src, err := NewSecretKeySource(ctx, informers, c, "ns")
	if err != nil {
		t.Fatal(err)
	}
	inf, err := informers.FakeInformerForKind(ctx, corev1.SchemeGroupVersion.WithKind("Secret"))
	if err != nil {
		t.Fatal(err)
	}
	// deliver plays the watch: what the apiserver holds now reaches the
	// informer's handlers.
	deliver := func() {
		t.Helper()
		var sec corev1.Secret
		err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: SigningKeySecret}, &sec)
		switch {
		case err == nil:
			inf.Add(&sec)
		case apierrors.IsNotFound(err):
			inf.Delete(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: SigningKeySecret}})
		default:
			t.Fatal(err)
		}
	}
	sign := func(s *Signer) string {
		t.Helper()
		tok, err := s.Sign(Claims{KeyID: "k", ExpiresAt: 1 << 40})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	current := func() *Signer {
		t.Helper()
		s, err := src.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	verifies := func(tok string) bool {
		t.Helper()
		_, err := current().Verify(tok, time.Unix(0, 0))
		if err != nil && !errors.Is(err, ErrTokenSignature) {
			t.Fatalf("verify: %v", err)
		}
		return err == nil
	}

	// Nothing delivered and no Secret yet: the source creates one.
	s0 := current()
	tok0 := sign(s0)
	deliver()
	if s := current(); s == s0 {
		t.Error("the delivered Secret did not replace the start-up Signer")
	}
	if !verifies(tok0) {
		t.Error("the delivered Secret does not verify the start-up Signer's token")
	}

	if err := RotateSigningKey(ctx, c, "ns", false); err != nil {
		t.Fatal(err)
	}
	// A request reads no Secret: until the watch delivers the rotation,
	// the old key signs.
	if tok := sign(current()); tok != tok0 {
		t.Error("the source saw a rotation the informer has not delivered")
	}
	deliver()
	tok1 := sign(current())
	if tok1 == tok0 || !verifies(tok0) || !verifies(tok1) {
		t.Errorf("after a rotation: new key %v, old token verifies %v, new token verifies %v", tok1 != tok0, verifies(tok0), verifies(tok1))
	}

	// Only one previous key is kept: two rotations retire the first key.
	if err := RotateSigningKey(ctx, c, "ns", false); err != nil {
		t.Fatal(err)
	}
	deliver()
	if verifies(tok0) || !verifies(tok1) {
		t.Errorf("after a second rotation: first token verifies %v (want false), second %v (want true)", verifies(tok0), verifies(tok1))
	}

	// dropPrevious revokes every earlier token at once.
	tok2 := sign(current())
	if err := RotateSigningKey(ctx, c, "ns", true); err != nil {
		t.Fatal(err)
	}
	deliver()
	if verifies(tok1) || verifies(tok2) {
		t.Errorf("after a rotation dropping the previous key: earlier tokens still verify (%v, %v)", verifies(tok1), verifies(tok2))
	}

	// Deleting the Secret revokes everything too; the next use makes a key.
	tok3 := sign(current())
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: SigningKeySecret}}); err != nil {
		t.Fatal(err)
	}
	deliver()
	if verifies(tok3) {
		t.Error("a token signed before the Secret was deleted still verifies")
	}

	// A damaged Secret is reported, not signed around.
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: SigningKeySecret}, &sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["key"] = []byte("short")
	if err := c.Update(ctx, &sec); err != nil {
		t.Fatal(err)
	}
	deliver()
	if _, err := src.SigningKeys(ctx); err == nil {
		t.Error("a damaged signing key Secret gave a Signer")
	}

	// Other Secrets are none of its business.
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: SigningKeySecret}, Data: map[string][]byte{"key": key32}}
	inf.Add(other)
	if _, err := src.SigningKeys(ctx); err == nil {
		t.Error("a signing key Secret of another namespace was taken")
	}
}

func TestRotateSigningKeyWithoutSecret(t *testing.T) {
	ctx := context.Background()
	c := fakeClient(t)
	if err := RotateSigningKey(ctx, c, "ns", false); err != nil {
		t.Fatal(err)
	}
	src, err := NewSecretKeySource(ctx, &informertest.FakeInformers{Scheme: c.Scheme()}, c, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.SigningKeys(ctx); err != nil {
		t.Errorf("rotation without a Secret did not leave a usable key: %v", err)
	}
}

// FuzzVerify: no token, however malformed, panics or verifies without the
// key.
func FuzzVerify(f *testing.F) {
	s, _ := NewSigner(key32)
	good, _ := s.Sign(Claims{KeyID: "k", ExpiresAt: 1 << 40})
	for _, seed := range []string{good, "", ".", "..", "a.b.c", good + "x", strings.Replace(good, ".", "..", 1)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		// The only token ever signed with this key is good: nothing else
		// may verify.
		if _, err := s.Verify(tok, time.Unix(0, 0)); err == nil && tok != good {
			t.Fatalf("verified a token we did not sign: %q", tok)
		}
	})
}

// FuzzParseKey: parsing never panics, and what parses round-trips.
func FuzzParseKey(f *testing.F) {
	for _, seed := range []string{"gps_0123456789abcdef_" + strings.Repeat("A", 43), "gps_", "", "ff37ed55-1e76-4117-8eb4-f3f1ee688a7c"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		id, secret, ok := parseKey(key)
		if ok && "gps_"+id+"_"+secret != key {
			t.Fatalf("parse(%q) = %q, %q", key, id, secret)
		}
	})
}
