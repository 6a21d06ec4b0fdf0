package realnode

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The node's host resources have fixed names, so that a run killed halfway is cleaned up by
// the next one, and so that they are told apart from anything else on the machine.
const (
	// Bridge is the node's CNI bridge; Gateway is its address and the node's IP (kubelet refuses
	// a loopback node IP), PodSubnet the Pods' addresses.
	Bridge    = "stashnode0"
	Gateway   = "10.244.77.1"
	PodSubnet = "10.244.77.0/24"
	// CgroupName is the cgroup the kubelet's cgroupRoot lives under, in every v1 controller.
	CgroupName = "stash-realnode"
	// ServiceSubnet is the Services' range (the API server's default in envtest).
	ServiceSubnet = "10.0.0.0/24"

	lockFile  = "/run/stash-realnode.lock"
	stateFile = "/run/stash-realnode.json"
	cgroupFS  = "/sys/fs/cgroup"
)

// state is what a run leaves in stateFile so that the next one can undo it if it was killed.
type state struct {
	Dir   string   `json:"dir"`
	PIDs  []int    `json:"pids"`
	Exes  []string `json:"exes"`
	Proxy string   `json:"kubeProxy"`
	// IPForward is net.ipv4.ip_forward before the run.
	IPForward string `json:"ipForward"`
}

// lock takes the machine-wide lock: one real node at a time (kube-proxy's iptables chains
// have fixed names). It waits for another run to finish.
func lock() (*os.File, error) {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", lockFile, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", lockFile, err)
	}
	return f, nil
}

func (s *state) save() error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(stateFile, b, 0o600)
}

// cleanStale undoes what a killed run left: its processes (only those still running the
// binaries it started), its mounts, its directory, the bridge, kube-proxy's rules and the cgroups.
func cleanStale(log func(string, ...any)) {
	b, err := os.ReadFile(stateFile)
	if err != nil {
		return
	}
	var s state
	if json.Unmarshal(b, &s) != nil {
		return
	}
	log("cleaning up after an earlier run that did not stop (%s)", s.Dir)
	for i, pid := range s.PIDs {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && i < len(s.Exes) && exe == s.Exes[i] {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	time.Sleep(500 * time.Millisecond)
	s.teardown(log)
}

// teardown removes the host resources of a run whose processes are gone.
func (s *state) teardown(log func(string, ...any)) {
	killShims(s.Dir)
	if s.Proxy != "" {
		if out, err := exec.Command(s.Proxy, "--cleanup", "--proxy-mode=iptables").CombinedOutput(); err != nil {
			log("kube-proxy --cleanup: %v: %s", err, out)
		}
	}
	if s.Dir != "" {
		unmountUnder(s.Dir)
		if err := os.RemoveAll(s.Dir); err != nil {
			log("remove %s: %v", s.Dir, err)
		}
	}
	removeKubeletChains()
	_ = exec.Command("ip", "link", "delete", Bridge).Run()
	removeCgroups(log)
	if s.IPForward != "" {
		_ = os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte(s.IPForward), 0o644)
	}
	_ = os.Remove(stateFile)
}

// kubeletChains are the iptables chains the kubelet makes (kube-proxy --cleanup removes its own).
var kubeletChains = []string{"KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"}

// removeKubeletChains deletes the rules that jump to the kubelet's chains, then the chains, in
// IPv4 and IPv6, and nothing else.
func removeKubeletChains() {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(ipt+"-save", "-t", table).Output()
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) < 4 || f[0] != "-A" || strings.HasPrefix(f[1], "KUBE-") {
					continue
				}
				for _, ch := range kubeletChains {
					if strings.HasSuffix(line, "-j "+ch) {
						_ = exec.Command(ipt, append([]string{"-t", table, "-D"}, f[1:]...)...).Run()
					}
				}
			}
			for _, ch := range kubeletChains {
				if strings.Contains(string(out), ":"+ch+" ") {
					_ = exec.Command(ipt, "-t", table, "-F", ch).Run()
					_ = exec.Command(ipt, "-t", table, "-X", ch).Run()
				}
			}
		}
	}
}

// killShims kills the runc shims (and so the containers) that containerd started under dir:
// they outlive containerd by design.
func killShims(dir string) {
	if dir == "" {
		return
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if !strings.HasSuffix(args[0], "containerd-shim-runc-v2") || !strings.Contains(string(b), dir) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// The containers are in the kubelet's cgroups; kill what is left there.
	for _, tasks := range cgroupProcs() {
		_ = syscall.Kill(tasks, syscall.SIGKILL)
	}
	time.Sleep(300 * time.Millisecond)
}

// cgroupProcs lists the processes in the node's cgroups.
func cgroupProcs() []int {
	var pids []int
	_ = filepath.Walk(filepath.Join(cgroupFS, "pids", CgroupName), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// unmountUnder unmounts every mount below dir, deepest first (containerd's overlays, the
// kubelet's volumes, the Pods' network namespaces).
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// cgroupControllers are the v1 hierarchies the node's cgroup is made in.
func cgroupControllers() ([]string, error) {
	entries, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil, err
	}
	var ctrls []string
	for _, e := range entries {
		// cpu and cpuacct are links to cpu,cpuacct; unified is the (empty) cgroup2.
		if e.IsDir() && e.Type()&os.ModeSymlink == 0 && e.Name() != "unified" {
			ctrls = append(ctrls, e.Name())
		}
	}
	if len(ctrls) == 0 {
		return nil, errors.New("no cgroup v1 controllers under " + cgroupFS)
	}
	return ctrls, nil
}

// makeCgroups creates the node's cgroup in every controller; cpuset needs its cpus and mems
// copied from the parent before anything can join it.
func makeCgroups() error {
	ctrls, err := cgroupControllers()
	if err != nil {
		return err
	}
	for _, c := range ctrls {
		dir := filepath.Join(cgroupFS, c, CgroupName)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if strings.Contains(c, "cpuset") {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(cgroupFS, c, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %w", f, err)
				}
			}
		}
	}
	return nil
}

// removeCgroups removes the node's cgroup trees, children first.
func removeCgroups(log func(string, ...any)) {
	ctrls, _ := cgroupControllers()
	for _, c := range ctrls {
		root := filepath.Join(cgroupFS, c, CgroupName)
		var dirs []string
		_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 20; try++ {
				if err = os.Remove(dirs[i]); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil && !os.IsNotExist(err) {
				log("remove cgroup %s: %v", dirs[i], err)
			}
		}
	}
}

// makeBridge creates the node's bridge with the gateway address before anything starts: the
// API server advertises it, the kubelet registers it as the node IP, and the CNI bridge plugin
// finds it ready.
func makeBridge() error {
	for _, args := range [][]string{
		{"link", "add", Bridge, "type", "bridge"},
		{"addr", "add", Gateway + "/24", "dev", Bridge},
		{"link", "set", Bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
