package usercli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/apiserver/client"
	"github.com/gpuspace/gpuspace/internal/cli"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/server/servertest"
)

var env *testenv.Env

func TestMain(m *testing.M) { apiservertest.Main(m, &env) }

// run is one `gpuspace ARGS...` in process, the real command tree, with
// stdout to out (a buffer unless given).
func run(t *testing.T, ctx context.Context, out io.Writer, args ...string) (string, error) {
	t.Helper()
	var buf, errb bytes.Buffer
	if out == nil {
		out = &buf
	}
	root := cli.NewRootCommand()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(""))
	err := root.ExecuteContext(ctx)
	if err != nil {
		t.Logf("gpuspace %s: %v", strings.Join(args, " "), err)
	}
	return buf.String(), err
}

// must is run that fails the test on an error.
func must(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := run(t, ctx, nil, args...)
	if err != nil {
		t.Fatalf("gpuspace %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

type gprRow struct {
	client.GPR
	Position int `json:"position"`
}

// TestUserCLI drives the user commands end to end against the whole
// control plane (controllers, API) on a real kube-apiserver with a
// simulated H100 node: login, contexts, workspaces and their kubeconfig,
// estimate, a refused create naming its flag, create and wait, a second
// GPR queued behind the first with its position and both estimates, the
// queue drawing, gpr wait following it to Provisioned on a pseudo-terminal
// (one live line) and on a pipe (a line per change) after an early
// release, delete refused for a Provisioned GPR with the fix named, wait
// failing on a GPR that cannot be satisfied, and logout.
func TestUserCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sfx := apiservertest.Suffix()
	keyNS, cluster, ws, ns, node := "gs-ucli-"+sfx, "ucli-"+sfx, "ucli-"+sfx, "ucli-ns-"+sfx, "ucli-h100-"+sfx
	url := servertest.Start(t, env.Config, server.Options{Namespace: keyNS})
	ownerKey, _, err := auth.CreateKey(ctx, env.Client, keyNS, auth.KeyRequest{Name: "owner", Role: auth.RoleOwner}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: node, Cluster: cluster, InstanceType: "p5.48xlarge",
		Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Kube.CoreV1().Nodes().Delete(context.Background(), node, metav1.DeleteOptions{}) })

	dir := t.TempDir()
	t.Setenv("GPUSPACE_CONFIG", filepath.Join(dir, "gpuspace", "config.yaml"))
	t.Setenv("KUBECONFIG", filepath.Join(dir, "kube", "config"))
	t.Setenv("GPUSPACE_API_KEY", "")
	t.Setenv("GPUSPACE_SERVER", "")
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(ownerKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Not logged in: the error says what to do.
	if _, err := run(t, ctx, nil, "ws", "list"); err == nil || !strings.Contains(err.Error(), "gpuspace login") {
		t.Errorf("ws list before login: %v, want a hint to run gpuspace login", err)
	}
	if _, err := run(t, ctx, nil, "login", "--server", url, "--api-key-file", filepath.Join(dir, "key-typo")); err == nil {
		t.Error("login with a missing key file succeeded")
	}
	bad := filepath.Join(dir, "bad")
	_ = os.WriteFile(bad, []byte("gps_0123456789abcdef_"+strings.Repeat("A", 43)), 0o600)
	if _, err := run(t, ctx, nil, "login", "--server", url, "--api-key-file", bad); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("login with an unknown key: %v, want the 401", err)
	}
	must(t, ctx, "login", "--server", url, "--context", "test", "--api-key-file", keyFile)
	if fi, err := os.Stat(os.Getenv("GPUSPACE_CONFIG")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config file: %v, mode %v, want 0600", err, fi.Mode())
	}
	if out := must(t, ctx, "config", "get-contexts"); !strings.Contains(out, "*        test") {
		t.Errorf("get-contexts does not mark test current:\n%s", out)
	}

	// A workspace (an Owner's job, through the API), then the user's view.
	owner := servertest.Client(t, url, token(t, ctx, url, ownerKey))
	cr, err := owner.CreateWorkspaceWithResponse(ctx, client.CreateWorkspaceBody{
		WorkspaceName: ws, Username: "alice", Clusters: &[]string{cluster}, Namespaces: &[]string{ns}})
	if err != nil || cr.JSON200 == nil {
		t.Fatalf("create workspace: %v %s", err, cr.Body)
	}
	t.Cleanup(func() { _ = env.Kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	var wss []client.WorkspaceSummary
	decode(t, must(t, ctx, "ws", "list", "-o", "json"), &wss)
	if len(wss) != 1 || wss[0].Name != ws {
		t.Errorf("ws list: %+v, want %s", wss, ws)
	}
	if out := must(t, ctx, "ws", "get", ws, "-o", "yaml"); !strings.Contains(out, "name: "+ws) {
		t.Errorf("ws get -o yaml:\n%s", out)
	}
	if out := must(t, ctx, "__complete", "ws", "get", ""); !strings.Contains(out, ws+"\n") {
		t.Errorf("completion of ws get: %q, want %s", out, ws)
	}
	must(t, ctx, "ws", "kubeconfig", ws, "--cluster", cluster)
	kc, err := clientcmd.LoadFromFile(os.Getenv("KUBECONFIG"))
	if err != nil || kc.CurrentContext == "" || kc.Contexts[kc.CurrentContext] == nil || kc.Contexts[kc.CurrentContext].Namespace != ns {
		t.Errorf("merged kubeconfig: %v, current %q, contexts %v; want one for namespace %s", err, kc.CurrentContext, kc.Contexts, ns)
	}

	if out := must(t, ctx, "ws", "kubeconfig", ws, "--cluster", cluster, "--file", "-"); !strings.Contains(out, "namespace: "+ns) {
		t.Errorf("ws kubeconfig --file -:\n%s", out)
	}
	if _, err := run(t, ctx, nil, "ws", "kubeconfig", ws, "--cluster", "nope"); err == nil || !strings.Contains(err.Error(), "4") {
		t.Errorf("kubeconfig of an unknown cluster: %v, want a 4xx", err)
	}

	// Estimate, and a refusal that names the flag to fix.
	var est client.WaitTime
	decode(t, must(t, ctx, "gpr", "estimate", "-w", ws, "--shape", "H100", "--gpus", "8", "--duration", "1h", "-o", "json"), &est)
	if !est.Satisfiable || est.EstimatedWaitTime != "0h0m0s" {
		t.Errorf("estimate on a free node: %+v", est)
	}
	_, err = run(t, ctx, nil, "gpr", "create", "-w", ws, "--gpus", "8", "--duration", "1h", "--priority", "999")
	if err == nil || !strings.Contains(err.Error(), "priority") || !strings.Contains(err.Error(), "--priority") || !strings.Contains(err.Error(), "422") {
		t.Errorf("priority 999: %v, want a 422 naming priority and --priority", err)
	}
	if _, err := run(t, ctx, nil, "gpr", "create", "-w", ws, "--gpus", "8"); err == nil || !strings.Contains(err.Error(), "--duration") {
		t.Errorf("no duration: %v, want --duration named", err)
	}

	// A takes the node; wait sees it Provisioned.
	var a gprRow
	decode(t, must(t, ctx, "gpr", "create", "-w", ws, "--name", "big", "--shape", "H100", "--gpus", "8", "--duration", "2h", "-o", "json"), &a)
	if out := must(t, ctx, "gpr", "wait", a.GprId, "--timeout", "60s"); !strings.Contains(out, a.GprId+" Provisioned on "+node) {
		t.Errorf("wait A: %q", out)
	}

	// B queues behind A: position 1, a likely and a latest start.
	var b gprRow
	decode(t, must(t, ctx, "gpr", "create", "-w", ws, "--name", "next", "--shape", "H100", "--gpus", "8", "--duration", "1h", "-o", "json"), &b)
	servertest.WaitFor(t, "B's estimates", 30*time.Second, func() bool {
		var rows []gprRow
		out, err := run(t, ctx, nil, "gpr", "list", "-w", ws, "-o", "json")
		if err != nil || json.Unmarshal([]byte(out), &rows) != nil {
			return false
		}
		for _, r := range rows {
			if r.GprId == b.GprId {
				b = r
			}
		}
		return b.Position == 1 && b.EstimatedStartTime != "" && b.LatestStartTime != ""
	})
	list := must(t, ctx, "gpr", "list", "-w", ws)
	t.Logf("gpr list:\n%s", list)
	if out := list; !strings.Contains(out, "POSITION") || !strings.Contains(out, "LATEST START") || !strings.Contains(out, b.GprId) {
		t.Errorf("gpr list table:\n%s", out)
	}
	q := must(t, ctx, "queue", "--shape", "H100", "--cluster", cluster)
	t.Logf("queue:\n%s", q)
	if !strings.Contains(q, node) || !strings.Contains(q, "|A") || !strings.Contains(q, a.GprId) || !strings.Contains(q, b.GprId) {
		t.Errorf("queue:\n%s", q)
	}
	if _, err := run(t, ctx, nil, "gpr", "delete", a.GprId); err == nil || !strings.Contains(err.Error(), "gpr release "+a.GprId) {
		t.Errorf("delete of a Provisioned GPR: %v, want 409 with the release named", err)
	}

	// B followed on a pseudo-terminal and on a pipe while A is released.
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ptmx.Close() }()
	var screen lockedBuffer
	go func() { _, _ = io.Copy(&screen, ptmx) }()
	var pipe lockedBuffer
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, out := range []io.Writer{tty, &pipe} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = run(t, ctx, out, "gpr", "wait", b.GprId, "--timeout", "90s")
		}()
	}
	servertest.WaitFor(t, "both waits show B queued", 30*time.Second, func() bool {
		return strings.Contains(screen.String(), "Queued: position 1") && strings.Contains(pipe.String(), "Queued: position 1")
	})
	must(t, ctx, "gpr", "release", a.GprId)
	wg.Wait()
	_ = tty.Close()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("wait B: tty %v, pipe %v", errs[0], errs[1])
	}
	servertest.WaitFor(t, "the terminal shows the last line", 5*time.Second, func() bool {
		return strings.Contains(screen.String(), "Provisioned on "+node)
	})
	if s := screen.String(); !strings.Contains(s, "\r\x1b[K"+b.GprId+" Queued: position 1") || !strings.Contains(s, "\r\x1b[K"+b.GprId+" Provisioned on "+node) {
		t.Errorf("terminal: want one line rewritten in place (\\r, erase line), got %q", s)
	}
	lines := strings.Split(strings.TrimSpace(pipe.String()), "\n")
	if strings.Contains(pipe.String(), "\x1b") || len(lines) < 2 || !strings.HasPrefix(lines[0], b.GprId+" Queued: position 1") || lines[len(lines)-1] != b.GprId+" Provisioned on "+node {
		t.Errorf("pipe: want plain lines, queued then provisioned, got %q", pipe.String())
	}

	// A GPR no node can satisfy fails, and wait exits non-zero.
	var c gprRow
	decode(t, must(t, ctx, "gpr", "create", "-w", ws, "--name", "huge", "--shape", "H100", "--gpus", "8", "--nodes", "4", "--duration", "1h", "-o", "json"), &c)
	if _, err := run(t, ctx, nil, "gpr", "wait", c.GprId, "--timeout", "60s"); err == nil {
		t.Error("wait on an unsatisfiable GPR succeeded")
	}

	// --from-template: the template's values, the flags given over them;
	// a queued GPR is deleted.
	tmpl, shape, nodes := "ucli-tmpl-"+sfx, "H100", int32(1)
	tr, err := owner.CreateGPRTemplateWithResponse(ctx, client.GPRTemplateRequest{Name: tmpl, GpuShape: &shape,
		NumberOfGPUs: 4, NumberOfGPUNodes: &nodes, ExitDuration: "0d3h0m"})
	if err != nil || tr.JSON200 == nil {
		t.Fatalf("create template: %v %s", err, tr.Body)
	}
	var d gprRow
	decode(t, must(t, ctx, "gpr", "create", "-w", ws, "--from-template", tmpl, "--priority", "150", "-o", "json"), &d)
	if d.GprName != tmpl || d.GpuShape != "H100" || d.NumberOfGPUs != 4 || d.ExitDuration != "3h0m0s" || d.Priority != 150 {
		t.Errorf("from template: %+v, want the template's shape, GPUs, duration and name with priority 150", d.GPR)
	}
	if _, err := run(t, ctx, nil, "gpr", "create", "-w", ws, "--from-template", "nope-"+sfx); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown template: %v, want 404", err)
	}
	must(t, ctx, "gpr", "delete", d.GprId)
	if _, err := run(t, ctx, nil, "gpr", "get", d.GprId); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("get after delete: %v, want 404", err)
	}

	// A second context; switching and deleting.
	must(t, ctx, "login", "--server", url, "--context", "other", "--api-key-file", keyFile)
	if out := must(t, ctx, "config", "current-context"); out != "other\n" {
		t.Errorf("current context after a second login: %q", out)
	}
	must(t, ctx, "config", "use-context", "test")
	must(t, ctx, "config", "delete-context", "other")
	if _, err := run(t, ctx, nil, "config", "use-context", "other"); err == nil {
		t.Error("use-context of a deleted context succeeded")
	}

	must(t, ctx, "logout")
	if _, err := run(t, ctx, nil, "gpr", "list"); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Errorf("after logout: %v, want not logged in", err)
	}
}

func token(t *testing.T, ctx context.Context, url, key string) string {
	t.Helper()
	r, err := servertest.Client(t, url, "").AuthenticateWithResponse(ctx, client.AuthRequest{ApiKey: key})
	if err != nil || r.JSON200 == nil {
		t.Fatalf("auth: %v", err)
	}
	return r.JSON200.Data.Token
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
