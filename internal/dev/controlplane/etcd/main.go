// Command etcd is a plain etcd server built from the etcd module that
// Kubernetes pins, so the local control plane needs no downloaded binary.
// It takes etcd's own flags.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
