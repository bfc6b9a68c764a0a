package faultsuite

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// replica is one `gpuspace serve --leader-elect` process, supervised as a
// kubelet would: restarted a moment after it exits, whether it was killed
// or gave up its lease.
type replica struct {
	name, addr string
	args       []string
	logPath    string

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	starts   int
	stopping bool
	done     chan struct{}
}

// startReplica runs bin/gpuspace serve against kubeconfig, on a loopback
// port of its own, and keeps it running until stop.
func startReplica(binDir, dir, name, kubeconfig string) (*replica, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &replica{
		name: name, addr: fmt.Sprintf("127.0.0.1:%d", port),
		logPath: filepath.Join(dir, name+".log"),
		done:    make(chan struct{}),
	}
	r.args = []string{"serve", "--kubeconfig=" + kubeconfig, "--listen=" + r.addr, "--leader-elect",
		"--log-format=json", "--log-level=info"}
	bin := filepath.Join(binDir, "gpuspace")
	if err := r.spawn(bin); err != nil {
		return nil, err
	}
	go r.supervise(bin)
	return r, nil
}

func (r *replica) spawn(bin string) error {
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, r.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", r.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited = cmd, exited
	r.starts++
	r.mu.Unlock()
	return nil
}

// supervise restarts the process 500 ms after each exit, until stop.
func (r *replica) supervise(bin string) {
	defer close(r.done)
	for {
		r.mu.Lock()
		exited := r.exited
		r.mu.Unlock()
		<-exited
		time.Sleep(500 * time.Millisecond)
		r.mu.Lock()
		stopping := r.stopping
		r.mu.Unlock()
		if stopping {
			return
		}
		for r.spawn(bin) != nil {
			time.Sleep(time.Second)
		}
	}
}

// kill sends SIGKILL to the running process; the supervisor restarts it.
func (r *replica) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil && r.cmd.Process != nil {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// restarts is how many times the process was started again.
func (r *replica) restarts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts - 1
}

// stop ends the process (SIGTERM, then SIGKILL after 5 s) and its
// supervision.
func (r *replica) stop() {
	r.mu.Lock()
	r.stopping = true
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	<-r.done
}

// isLeader asks the replica's /metrics whether it leads: it holds the
// controllers' Lease (controller-runtime's leader_election_master_status)
// and its GPR controller has finished a plan pass since the process
// started (controller_runtime_reconcile_total). A replica that just won
// the Lease still syncs its caches before it can act, which takes
// seconds on a loaded machine; that is no time a deadline can be held
// to.
func (r *replica) isLeader(ctx context.Context, c *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/metrics", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	holds, passed := false, false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, `leader_election_master_status{name="gpuspace-controller"}`):
			holds = strings.HasSuffix(line, " 1")
		case strings.HasPrefix(line, `controller_runtime_reconcile_total{controller="gpuspace-gpr",`):
			passed = passed || !strings.HasSuffix(line, " 0")
		}
	}
	return holds && passed
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
