// Package plugin serves the kubelet device plugin API (v1beta1) for the
// node's GPUs: whole GPUs (nvidia.com/gpu) and GPU memory in GiB
// (gpuspace.io/gpu-memory). A Server serves one resource on its own unix
// socket; a Manager registers its servers with the kubelet and registers
// them again whenever the kubelet restarts.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// HealthSource tells servers which GPUs are unhealthy and when that
// changes; *health.Monitor is one.
type HealthSource interface {
	// Unhealthy maps unhealthy GPUs' UUIDs to the reason.
	Unhealthy() map[string]string
	// Subscribe returns a channel woken after every change, and a function
	// that ends the subscription.
	Subscribe() (<-chan struct{}, func())
}

// AllHealthy is a HealthSource for when health checks are off.
type AllHealthy struct{}

// Unhealthy implements HealthSource.
func (AllHealthy) Unhealthy() map[string]string { return nil }

// Subscribe implements HealthSource; the channel never fires.
func (AllHealthy) Subscribe() (<-chan struct{}, func()) { return make(chan struct{}), func() {} }

// Server is the device plugin gRPC server of one resource.
type Server struct {
	pluginapi.UnimplementedDevicePluginServer

	res    Resource
	health HealthSource
	dir    string // the kubelet's device plugin directory
	socket string // our socket's file name in dir
	log    logr.Logger

	mu   sync.Mutex
	srv  *grpc.Server
	done chan struct{} // closed by Stop, ends ListAndWatch streams
	wg   sync.WaitGroup
}

// NewServer returns a Server for res with its socket called socket in the
// kubelet's device plugin directory dir.
func NewServer(res Resource, health HealthSource, dir, socket string, log logr.Logger) *Server {
	return &Server{res: res, health: health, dir: dir, socket: socket, log: log.WithValues("resource", res.Name())}
}

// Resource is the resource this server serves.
func (s *Server) Resource() Resource { return s.res }

// SocketPath is where the server listens.
func (s *Server) SocketPath() string { return filepath.Join(s.dir, s.socket) }

// Start listens on the socket (replacing a stale one) and serves in the
// background until Stop.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("already started")
	}
	path := s.SocketPath()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	s.srv = grpc.NewServer()
	s.done = make(chan struct{})
	pluginapi.RegisterDevicePluginServer(s.srv, s)
	srv := s.srv
	s.wg.Go(func() {
		if err := srv.Serve(lis); err != nil {
			s.log.Error(err, "gRPC server stopped")
		}
	})
	s.log.Info("serving", "socket", path)
	return nil
}

// Stop stops serving and removes the socket. It is safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	close(done)
	srv.Stop()
	s.wg.Wait()
	if err := os.Remove(s.SocketPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error(err, "remove socket")
	}
}

// Register registers the server with the kubelet at kubeletSocket.
func (s *Server) Register(ctx context.Context, kubeletSocket string) error {
	conn, err := grpc.NewClient("unix://"+kubeletSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to kubelet at %s: %w", kubeletSocket, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     s.socket,
		ResourceName: s.res.Name(),
		Options:      pluginOptions(),
	})
	if err != nil {
		return fmt.Errorf("register %s with kubelet: %w", s.res.Name(), err)
	}
	s.log.Info("registered with the kubelet")
	return nil
}

func pluginOptions() *pluginapi.DevicePluginOptions {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}
}

// GetDevicePluginOptions implements pluginapi.DevicePluginServer.
func (s *Server) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return pluginOptions(), nil
}

// ListAndWatch implements pluginapi.DevicePluginServer: it sends the
// device list at once and again after every health change that alters it.
func (s *Server) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	changes, cancel := s.health.Subscribe()
	defer cancel()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	var last *pluginapi.ListAndWatchResponse
	for {
		resp := &pluginapi.ListAndWatchResponse{Devices: s.res.Devices(s.health.Unhealthy())}
		if last == nil || !proto.Equal(last, resp) {
			if err := stream.Send(resp); err != nil {
				return fmt.Errorf("send device list: %w", err)
			}
			last = resp
		}
		select {
		case <-changes:
		case <-done:
			return nil
		case <-stream.Context().Done():
			return nil
		}
	}
}

// Allocate implements pluginapi.DevicePluginServer.
func (s *Server) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		cr, err := s.res.Allocate(c.DevicesIds)
		if err != nil {
			return nil, fmt.Errorf("allocate %s: %w", s.res.Name(), err)
		}
		resp.ContainerResponses = append(resp.ContainerResponses, cr)
	}
	return resp, nil
}

// GetPreferredAllocation implements pluginapi.DevicePluginServer.
func (s *Server) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, c := range req.ContainerRequests {
		ids := s.res.Preferred(c.AvailableDeviceIDs, c.MustIncludeDeviceIDs, int(c.AllocationSize))
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

// PreStartContainer implements pluginapi.DevicePluginServer; the kubelet
// does not call it because the options do not ask for it.
func (s *Server) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
