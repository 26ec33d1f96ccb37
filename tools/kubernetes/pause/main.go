// Command pause is the pod sandbox ("infra") container of the local test cluster.
//
// No image can be pulled from a public registry here, so scripts/cluster-up.sh builds this
// static binary into a FROM-scratch image and pushes it to the local registry. It holds the
// pod's namespaces open: it sleeps until SIGINT/SIGTERM and, being PID 1 of the pod when
// the PID namespace is shared, reaps orphaned children.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		os.Stderr.WriteString("pause: warning: not running as PID 1\n")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every exited child; WNOHANG so an idle pod never blocks here.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
