package workspace_test

import (
	"testing"

	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// env is the package's control plane (real etcd and kube-apiserver).
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }
