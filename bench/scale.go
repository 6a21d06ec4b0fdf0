package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/test/localcluster"
)

// scaleMain measures the controller at scale (`go run ./bench scale`, after `make build` and
// with KUBEBUILDER_ASSETS from hack/envtest-assets.sh): on the local cluster of the e2e tests
// (a real API server and kube-controller-manager, stash-webhook as a process, Pods run by the
// test node agent) it creates -configs BackupConfigurations across -namespaces namespaces and
// reports how long the controller takes to make them all Ready with their CronJobs, its CPU and
// peak memory, and the API requests it made per reconcile; then it triggers -sessions
// BackupSessions at once and waits until every one has ended, Succeeded or Failed with a reason.
func scaleMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	configs := fs.Int("configs", 1000, "BackupConfigurations")
	namespaces := fs.Int("namespaces", 100, "namespaces they are spread over")
	sessions := fs.Int("sessions", 100, "BackupSessions triggered at once")
	bin := fs.String("bin", "bin", "directory with kubectl-stash, stash-webhook and stash-runner (`make build`)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-scale")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	logf("starting the local cluster")
	lc, err := localcluster.Start(localcluster.Options{BinDir: binDir, Dir: filepath.Join(work, "cluster")})
	if err != nil {
		return err
	}
	defer lc.Stop()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	cfg := *lc.Config
	cfg.QPS, cfg.Burst = 500, 1000 // the bench's own client is not what is measured
	c, err := client.New(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	src, err := startRedis(ctx, filepath.Join(work, "redis"))
	if err != nil {
		return err
	}
	defer src.stop()
	if err := load(ctx, src.addr, 2000, 0, 0, 0); err != nil {
		return err
	}

	pid := lc.Pid("stash-webhook")
	before := sample(pid, 0)
	requests0, reconciles0 := controllerCounters(lc)
	start := time.Now()
	perNS := (*configs + *namespaces - 1) / *namespaces
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for n := range *namespaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := scaleNamespace(ctx, c, n, perNS, min(perNS, *configs-n*perNS), src.addr, work); err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	created := time.Since(start)
	logf("created %d BackupConfigurations in %d namespaces in %s", *configs, *namespaces, created.Round(time.Millisecond))
	var peakRSS int64
	for {
		u := sample(pid, time.Since(start))
		peakRSS = max(peakRSS, u.rss)
		var list v1alpha1.BackupConfigurationList
		if err := c.List(ctx, &list); err != nil {
			return err
		}
		ready := 0
		for _, bc := range list.Items {
			if bc.Status.Phase == v1alpha1.BackupConfigurationReady {
				ready++
			}
		}
		if ready >= *configs {
			break
		}
		if time.Since(start) > 15*time.Minute {
			return fmt.Errorf("after %s only %d of %d configurations are Ready", time.Since(start).Round(time.Second), ready, *configs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	allReady := time.Since(start)
	after := sample(pid, allReady)
	requests1, reconciles1 := controllerCounters(lc)
	logf("all Ready in %s", allReady.Round(time.Millisecond))

	// Sessions at once: one BackupSession each for the first -sessions configurations.
	start2 := time.Now()
	names := make([][2]string, 0, *sessions)
	for i := range *sessions {
		ns, bc := scaleNames(i%*namespaces, i / *namespaces)
		names = append(names, [2]string{ns, bc})
	}
	wg = sync.WaitGroup{}
	for _, nm := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &v1alpha1.BackupSession{ObjectMeta: metav1.ObjectMeta{Name: nm[1] + "-bench", Namespace: nm[0]},
				Spec: v1alpha1.BackupSessionSpec{Invoker: v1alpha1.BackupInvokerRef{Name: nm[1]}}}
			if err := c.Create(ctx, s); err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	phases := map[v1alpha1.SessionPhase]int{}
	var reasons []string
	for {
		peakRSS = max(peakRSS, sample(pid, time.Since(start)).rss)
		clear(phases)
		reasons = reasons[:0]
		done := 0
		for _, nm := range names {
			s := &v1alpha1.BackupSession{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: nm[0], Name: nm[1] + "-bench"}, s); err != nil {
				return err
			}
			phases[s.Status.Phase]++
			switch s.Status.Phase {
			case v1alpha1.SessionSucceeded, v1alpha1.SessionSkipped:
				done++
			case v1alpha1.SessionFailed:
				done++
				reason := s.Status.Error
				if reason == "" {
					reason = "failed without a reason"
				}
				reasons = append(reasons, s.Namespace+"/"+s.Name+": "+reason)
			}
		}
		if done == len(names) {
			break
		}
		if time.Since(start2) > 20*time.Minute {
			return fmt.Errorf("after %s: %v", time.Since(start2).Round(time.Second), phases)
		}
		time.Sleep(time.Second)
	}
	sessionsDone := time.Since(start2)

	reconciles := reconciles1 - reconciles0
	fmt.Printf("# controller at scale, %s, %d CPUs\n\n", time.Now().UTC().Format("2006-01-02"), numCPU())
	fmt.Printf("command: `go run ./bench scale %s`\n\n", strings.Join(args, " "))
	fmt.Println("| measure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| %d BackupConfigurations in %d namespaces: created / all Ready with their CronJobs | %s / %s |\n", *configs, *namespaces,
		created.Round(time.Millisecond), allReady.Round(time.Millisecond))
	fmt.Printf("| stash-webhook CPU until all Ready | %s (%.0f%% of one core) |\n", (after.cpu - before.cpu).Round(10*time.Millisecond),
		100*(after.cpu-before.cpu).Seconds()/allReady.Seconds())
	fmt.Printf("| stash-webhook peak RSS (the whole run) | %s |\n", human(peakRSS))
	fmt.Printf("| reconciles / API requests of the controller | %d / %d (%.1f per reconcile) |\n", reconciles, requests1-requests0,
		float64(requests1-requests0)/float64(max(reconciles, 1)))
	fmt.Printf("| %d BackupSessions created at once: all ended | %s: %v |\n", len(names), sessionsDone.Round(time.Second), phases)
	if len(reasons) > 0 {
		fmt.Printf("| failed sessions and why | %s |\n", strings.Join(reasons, "; "))
	}
	return nil
}

func scaleNames(ns, i int) (string, string) {
	return fmt.Sprintf("scale-%03d", ns), fmt.Sprintf("redis-%03d", i)
}

// scaleNamespace creates namespace n with a storage Secret, a local Repository and count
// BackupConfigurations of the Redis at addr.
func scaleNamespace(ctx context.Context, c client.Client, n, perNS, count int, addr, work string) error {
	ns, _ := scaleNames(n, 0)
	repo := filepath.Join(work, "repos", ns)
	if err := os.MkdirAll(repo, 0o777); err != nil {
		return err
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "storage", Namespace: ns}, StringData: map[string]string{"RESTIC_PASSWORD": "bench-" + strconv.Itoa(n)}},
		&v1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: ns}, Spec: v1alpha1.RepositorySpec{Backend: v1alpha1.Backend{
			StorageSecretName: "storage",
			Local:             &v1alpha1.LocalSpec{MountPath: repo, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: repo}}},
		}}},
	}
	for i := range count {
		_, name := scaleNames(n, i)
		objs = append(objs, &v1alpha1.BackupConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.BackupConfigurationSpec{
			Schedule: "@daily", Repository: v1alpha1.RepositoryRef{Name: "repo"},
			Target:          v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: addr}},
			RetentionPolicy: &v1alpha1.RetentionPolicy{KeepLast: ptrInt32(3)},
		}})
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s/%s: %w", o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

func ptrInt32(v int32) *int32 { return &v }

// controllerCounters reads from the controller's /metrics the API requests its clients made
// (rest_client_requests_total) and its BackupConfiguration reconciles.
func controllerCounters(lc *localcluster.Cluster) (requests, reconciles int64) {
	page, err := lc.Metrics()
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(page) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		switch {
		case strings.HasPrefix(name, "rest_client_requests_total{"):
			requests += int64(v)
		case strings.HasPrefix(name, "controller_runtime_reconcile_total{") && strings.Contains(name, `controller="backupconfiguration"`):
			reconciles += int64(v)
		}
	}
	return requests, reconciles
}
