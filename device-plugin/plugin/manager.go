package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// KubeletSocketName is the kubelet's registration socket in the device
// plugin directory.
const KubeletSocketName = "kubelet.sock"

// Manager runs servers and keeps them registered with the kubelet.
//
// A restarting kubelet deletes every socket in the device plugin directory
// and creates a new kubelet.sock; it then knows no plugins until they
// register again. The Manager notices by polling: kubelet.sock with a new
// inode or change time, or one of our sockets gone, restarts the servers
// and registers them again. Polling (rather than inotify) needs no extra
// module and also catches a socket replaced between two checks (a new
// inode); its interval bounds how long a restarted kubelet waits for our
// resources.
type Manager struct {
	servers []*Server
	dir     string
	poll    time.Duration
	log     logr.Logger

	registered  fileID // kubelet.sock we registered with
	ourSockets  []fileID
	needRestart bool
	waiting     bool // "waiting for the kubelet" was logged
}

// fileID tells a file from the one that replaced it at the same path.
type fileID struct {
	ino   uint64
	ctime int64
}

func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{ino: st.Ino, ctime: st.Ctim.Nano()}, nil
}

// NewManager returns a Manager for servers, which must all use the
// kubelet's device plugin directory dir. poll is how often kubelet.sock
// is checked (default 1s).
func NewManager(dir string, poll time.Duration, log logr.Logger, servers ...*Server) *Manager {
	if poll <= 0 {
		poll = time.Second
	}
	return &Manager{servers: servers, dir: dir, poll: poll, log: log}
}

// KubeletSocket is the path of the kubelet's registration socket.
func (m *Manager) KubeletSocket() string { return filepath.Join(m.dir, KubeletSocketName) }

// Run serves and registers until ctx ends, then stops the servers and
// removes their sockets. A kubelet that is not there yet, or that refuses
// registration, is retried at every poll.
func (m *Manager) Run(ctx context.Context) error {
	defer m.stop()
	m.needRestart = true
	t := time.NewTicker(m.poll)
	defer t.Stop()
	for {
		if err := m.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.log.Error(err, "not registered with the kubelet; retrying", "in", m.poll)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sync restarts and registers the servers if the kubelet or our sockets
// changed since the last successful registration.
func (m *Manager) sync(ctx context.Context) error {
	kubelet, err := statID(m.KubeletSocket())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// No kubelet (yet); our sockets stay up for when it comes.
			if !m.waiting {
				m.log.Info("waiting for the kubelet", "socket", m.KubeletSocket())
				m.waiting = true
			}
			if m.needRestart {
				return m.restart()
			}
			return nil
		}
		return fmt.Errorf("stat kubelet socket: %w", err)
	}
	m.waiting = false
	restart := m.needRestart || !m.socketsIntact()
	if !restart && kubelet == m.registered {
		return nil
	}
	if m.registered != (fileID{}) && kubelet != m.registered {
		m.log.Info("kubelet socket re-created (kubelet restart); registering again")
	}
	if restart {
		// The kubelet removed our sockets (it does so when it starts):
		// serve on new ones before registering them.
		if err := m.restart(); err != nil {
			return err
		}
	}
	for _, s := range m.servers {
		if err := s.Register(ctx, m.KubeletSocket()); err != nil {
			// The sockets are fine; registration is retried against
			// whatever kubelet.sock is there at the next poll.
			m.registered = fileID{}
			return err
		}
	}
	m.registered = kubelet
	return nil
}

func (m *Manager) socketsIntact() bool {
	for i, s := range m.servers {
		id, err := statID(s.SocketPath())
		if err != nil || i >= len(m.ourSockets) || id != m.ourSockets[i] {
			return false
		}
	}
	return true
}

// restart (re)starts every server on a fresh socket.
func (m *Manager) restart() error {
	m.ourSockets = m.ourSockets[:0]
	for _, s := range m.servers {
		s.Stop()
		if err := s.Start(); err != nil {
			m.needRestart = true
			return err
		}
		id, err := statID(s.SocketPath())
		if err != nil {
			m.needRestart = true
			return fmt.Errorf("stat our socket: %w", err)
		}
		m.ourSockets = append(m.ourSockets, id)
	}
	m.needRestart = false
	return nil
}

func (m *Manager) stop() {
	for _, s := range m.servers {
		s.Stop()
	}
}

// DefaultDir is the kubelet's device plugin directory.
const DefaultDir = pluginapi.DevicePluginPath
