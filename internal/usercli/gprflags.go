package usercli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gpuspace/gpuspace/apiserver/client"
)

// gprFlags are the flags of gpr create and gpr estimate: one per field of
// the API's GPR request (named in each flag's help), over an optional
// template's values.
type gprFlags struct {
	workspace, name, shape, instanceType, cluster, exit, idle, template string
	gpus, nodes, memory, priority                                       int32
	enforceIdle, requeue, dedicated, eviction                           bool
	preferred                                                           []string
}

// fieldFlags maps the API's request fields to the flags that set them, so
// a 422 names the fix.
var fieldFlags = map[string]string{
	"sliceName": "--workspace", "gprName": "--name", "gpuShape": "--shape", "instanceType": "--instance-type",
	"clusterName": "--cluster", "exitDuration": "--duration", "idleTimeOutDuration": "--idle-timeout",
	"numberOfGPUs": "--gpus", "numberOfGPUNodes": "--nodes", "memoryPerGPU": "--memory-per-gpu", "memoryPerGpu": "--memory-per-gpu",
	"priority": "--priority", "enforceIdleTimeOut": "--enforce-idle-timeout", "requeueOnFailure": "--requeue-on-failure",
	"dedicatedNodes": "--dedicated-nodes", "enableEviction": "--enable-eviction", "preferredClusters": "--preferred-clusters",
	"gprId": "the GPR id argument",
}

func (f *gprFlags) add(fs *pflag.FlagSet) {
	fs.StringVarP(&f.workspace, "workspace", "w", "", "Workspace the GPUs are for (sliceName)")
	fs.StringVar(&f.name, "name", "", "Name of the request (gprName); default the template's name, else \"gpr\"")
	fs.Int32Var(&f.gpus, "gpus", 0, "GPUs per node (numberOfGPUs)")
	fs.Int32Var(&f.nodes, "nodes", 0, "Distinct nodes (numberOfGPUNodes); default 1")
	fs.StringVar(&f.shape, "shape", "", "GPU model, e.g. H100 (gpuShape); empty for any")
	fs.StringVar(&f.instanceType, "instance-type", "", "Node instance type (instanceType); empty for any")
	fs.Int32Var(&f.memory, "memory-per-gpu", 0, "GB of memory per GPU, at least (memoryPerGPU); 0 for any")
	fs.StringVar(&f.exit, "duration", "", "How long to hold the nodes, e.g. 0d2h0m or 2h (exitDuration)")
	fs.Int32Var(&f.priority, "priority", 0, "1-300: low 1-100, medium 101-200, high 201-300 (priority); default 101")
	fs.StringVar(&f.cluster, "cluster", "", "Cluster to provision in (clusterName); default the workspace's first")
	fs.StringSliceVar(&f.preferred, "preferred-clusters", nil, "Clusters to prefer, in order (preferredClusters)")
	fs.StringVar(&f.idle, "idle-timeout", "", "Release once all GPUs stay idle this long, e.g. 0d0h30m (idleTimeOutDuration)")
	fs.BoolVar(&f.enforceIdle, "enforce-idle-timeout", false, "Release on idle (enforceIdleTimeOut); default true with --idle-timeout")
	fs.BoolVar(&f.requeue, "requeue-on-failure", false, "Stay queued when no inventory can satisfy it now (requeueOnFailure)")
	fs.BoolVar(&f.dedicated, "dedicated-nodes", false, "Ask for dedicated nodes (dedicatedNodes)")
	fs.BoolVar(&f.eviction, "enable-eviction", false, "May evict lower-priority GPRs while queued (enableEviction)")
	fs.StringVar(&f.template, "from-template", "", "Start from this GPR template's values; the flags given override them")
}

// request builds the API request: the template's values (if any), then
// every flag given on the command line.
func (f *gprFlags) request(ctx context.Context, cmd *cobra.Command, s *session) (client.GPRRequest, error) {
	var req client.GPRRequest
	if f.template != "" {
		r, err := s.api.GetGPRTemplateWithResponse(ctx, &client.GetGPRTemplateParams{GprTemplateName: f.template})
		if err := check(r, err, map[string]string{"gprTemplateName": "--from-template"}); err != nil {
			return req, err
		}
		req = fromTemplate(r.JSON200.Data)
	}
	set := cmd.Flags().Changed
	str := func(flag, v string, dst **string) {
		if set(flag) {
			*dst = &v
		}
	}
	i32 := func(flag string, v int32, dst **int32) {
		if set(flag) {
			*dst = &v
		}
	}
	boolean := func(flag string, v bool, dst **bool) {
		if set(flag) {
			*dst = &v
		}
	}
	if set("workspace") {
		req.SliceName = f.workspace
	}
	if set("name") {
		req.GprName = f.name
	}
	if req.GprName == "" {
		req.GprName = "gpr"
	}
	if set("gpus") {
		req.NumberOfGPUs = f.gpus
	}
	if set("duration") {
		d, err := egsDuration(f.exit)
		if err != nil {
			return req, err
		}
		req.ExitDuration = d
	}
	i32("nodes", f.nodes, &req.NumberOfGPUNodes)
	str("shape", f.shape, &req.GpuShape)
	str("instance-type", f.instanceType, &req.InstanceType)
	i32("memory-per-gpu", f.memory, &req.MemoryPerGPU)
	i32("priority", f.priority, &req.Priority)
	str("cluster", f.cluster, &req.ClusterName)
	if set("idle-timeout") {
		d, err := egsDuration(f.idle)
		if err != nil {
			return req, errors.New("--idle-timeout: " + strings.TrimPrefix(err.Error(), "--duration: "))
		}
		req.IdleTimeOutDuration = &d
	}
	boolean("enforce-idle-timeout", f.enforceIdle, &req.EnforceIdleTimeOut)
	boolean("requeue-on-failure", f.requeue, &req.RequeueOnFailure)
	boolean("dedicated-nodes", f.dedicated, &req.DedicatedNodes)
	boolean("enable-eviction", f.eviction, &req.EnableEviction)
	if set("preferred-clusters") {
		req.PreferredClusters = &f.preferred
	}
	switch {
	case req.SliceName == "":
		return req, errors.New("--workspace: which workspace are the GPUs for? (gpuspace ws list)")
	case req.ExitDuration == "":
		return req, errors.New("--duration: how long to hold the nodes, e.g. --duration 2h")
	}
	return req, nil
}

// fromTemplate is a request with a template's values.
func fromTemplate(t client.GPRTemplate) client.GPRRequest {
	req := client.GPRRequest{GprName: t.Name, NumberOfGPUs: t.NumberOfGPUs}
	if d, err := time.ParseDuration(t.ExitDuration); err == nil && d > 0 {
		req.ExitDuration = egsOf(d)
	}
	if d, err := time.ParseDuration(t.IdleTimeOutDuration); err == nil && d > 0 {
		s := egsOf(d)
		req.IdleTimeOutDuration = &s
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	optI := func(n int32) *int32 {
		if n == 0 {
			return nil
		}
		return &n
	}
	req.GpuShape, req.InstanceType, req.ClusterName, req.GpuSharingMode = opt(t.GpuShape), opt(t.InstanceType), opt(t.ClusterName), opt(t.GpuSharingMode)
	req.NumberOfGPUNodes, req.MemoryPerGPU, req.Priority = optI(t.NumberOfGPUNodes), optI(t.MemoryPerGpu), optI(t.Priority)
	req.EnforceIdleTimeOut, req.RequeueOnFailure, req.EnableEviction = &t.EnforceIdleTimeOut, &t.RequeueOnFailure, &t.EnableEviction
	return req
}

// egsDuration accepts the API's NdNhNm or a Go duration (2h30m) and
// returns the API's form.
func egsDuration(s string) (string, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 || d%time.Minute != 0 {
			return "", errors.New("--duration " + s + ": want whole minutes, e.g. 2h or 0d2h30m")
		}
		return egsOf(d), nil
	}
	var days, hours, mins int
	if n, err := fmt.Sscanf(s, "%dd%dh%dm", &days, &hours, &mins); err != nil || n != 3 {
		return "", errors.New("--duration " + s + ": want NdNhNm (0d2h30m) or a duration such as 2h30m")
	}
	return s, nil
}

func egsOf(d time.Duration) string {
	m := int(d / time.Minute)
	return fmt.Sprintf("%dd%dh%dm", m/(24*60), m/60%24, m%60)
}
