package plugintest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/scheduler"
	schedulerapi "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/profile"
)

// RepoFile returns the path of a file relative to the repository root.
func RepoFile(rel string) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "..", rel)
}

// LoadProfiles reads manifests/scheduler/config.yaml, as gpuspace-scheduler
// --config does (the scheduler's own decoder, with its defaulting).
func LoadProfiles(t testing.TB) []schedulerapi.KubeSchedulerProfile {
	t.Helper()
	data, err := os.ReadFile(RepoFile("manifests/scheduler/config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := scheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		t.Fatalf("decode scheduler config: %v", err)
	}
	cfg, ok := obj.(*schedulerapi.KubeSchedulerConfiguration)
	if !ok {
		t.Fatalf("scheduler config is a %T", obj)
	}
	return cfg.Profiles
}

// StartScheduler runs the real kube-scheduler (scheduler.New) against cfg
// with profiles (nil: kube-scheduler's default profile) and the
// out-of-tree plugins of reg until the test ends; stop stops it sooner.
func StartScheduler(t testing.TB, cfg *rest.Config, profiles []schedulerapi.KubeSchedulerProfile, reg frameworkruntime.Registry) (stop func()) {
	t.Helper()
	// The scheduler logs a lot at ktesting's default verbosity; -v=2 keeps
	// what explains a failure.
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))
	if _, ok := t.(*testing.B); ok {
		// Benchmarks time the scheduler, not its logging.
		logger = klog.LoggerWithName(logr.Discard(), "scheduler")
	}
	ctx := klog.NewContext(context.Background(), logger)
	ctx, cancel := context.WithCancel(ctx)
	cs := kubernetes.NewForConfigOrDie(cfg)
	inf := scheduler.NewInformerFactory(cs, 0, nil)
	dyn := dynamicinformer.NewDynamicSharedInformerFactory(dynamic.NewForConfigOrDie(cfg), 0)
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	opts := []scheduler.Option{scheduler.WithKubeConfig(cfg), scheduler.WithFrameworkOutOfTreeRegistry(reg)}
	if profiles != nil {
		opts = append(opts, scheduler.WithProfiles(profiles...))
	}
	sched, err := scheduler.New(ctx, cs, inf, dyn, profile.NewRecorderFactory(broadcaster), opts...)
	if err != nil {
		cancel()
		t.Fatalf("scheduler.New: %v", err)
	}
	broadcaster.StartRecordingToSink(ctx.Done())
	inf.Start(ctx.Done())
	dyn.Start(ctx.Done())
	inf.WaitForCacheSync(ctx.Done())
	dyn.WaitForCacheSync(ctx.Done())
	if err := sched.WaitForHandlersSync(ctx); err != nil {
		cancel()
		t.Fatalf("scheduler handlers: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sched.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			inf.Shutdown()
			dyn.Shutdown()
			broadcaster.Shutdown()
		})
	}
	t.Cleanup(stop)
	return stop
}
