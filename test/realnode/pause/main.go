// Command pause is the sandbox ("pause") container of test/realnode's node: it holds a Pod's
// namespaces open and does nothing until it is told to stop. There is no registry to pull
// registry.k8s.io/pause from, so the tests build this one and import it into containerd.
package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	// As PID 1 of the Pod's PID namespace (when shared), reap orphans.
	go func() {
		for {
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(-1, &ws, 0, nil); err != nil {
				time.Sleep(time.Second) // no children yet
			}
		}
	}()
	<-stop
}
