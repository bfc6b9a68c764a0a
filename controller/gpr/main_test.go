// The tests of package gpr_test drive the GPR controller through the whole
// of gpuspace's controllers (controller.Setup) on a real etcd and
// kube-apiserver: bind, idle release, lost nodes, preemption, cost,
// policies, restarts, chaos and admission. The unit tests of package gpr
// share the test binary, so they run once the control plane is up.
package gpr_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/util/logging"
)

// env is the control plane every test of the package shares.
var env *testenv.Env

// TestMain starts one control plane for the package. Controller logs are
// dropped unless GPUSPACE_TEST_LOG is set (e.g. GPUSPACE_TEST_LOG=debug).
func TestMain(m *testing.M) {
	log := logr.Discard()
	if lvl := os.Getenv("GPUSPACE_TEST_LOG"); lvl != "" {
		_, lr, err := logging.New(logging.Options{Format: "console", Level: lvl})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		log = lr
	}
	ctrl.SetLogger(log)
	testenv.Main(m, &env)
}
