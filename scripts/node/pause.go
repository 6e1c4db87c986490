// The pod sandbox ("pause") image's one process: it holds the pod's namespaces until the kubelet stops the pod.
// Built by scripts/build-images.sh (no image registry is reachable, so the usual registry.k8s.io/pause is not).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
