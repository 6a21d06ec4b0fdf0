// Package hook runs the hooks of a backup or restore session (spec.hooks, Stash's shape): a
// command in a container of the target's Pod through the API server's pods/exec, an HTTP GET
// or POST, or a TCP connection from the runner's Pod. Each hook is bounded by its timeout.
//
// A hook's error is written into the session's status and the runner's log, so it never
// holds a header's value, a request body or a command's output: a credential that a header
// reads from a Secret stays out of status, events and logs.
package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"stash.dev/redis/api/v1alpha1"
)

// Executor runs a command in a container of a Pod (PodExec through the API server).
type Executor interface {
	Exec(ctx context.Context, namespace, pod, container string, command []string, stdout, stderr io.Writer) error
}

// SecretReader returns the value of key in the Secret name of the session's namespace.
type SecretReader func(ctx context.Context, name, key string) ([]byte, error)

// Runner runs the hooks of one session.
type Runner struct {
	// Namespace of the session and of the target's Pod.
	Namespace string
	// Pod is the target's Pod that exec hooks run in (chosen by the controller, which grants
	// the runner pods/exec on it alone); empty when the session has no exec hook.
	Pod string
	// DefaultHost is where HTTP and TCP hooks without a host connect: the target's host.
	DefaultHost string
	// Exec runs exec hooks; nil refuses them.
	Exec Executor
	// Secret reads the Secrets that headers refer to.
	Secret SecretReader
	// Client sends HTTP hooks; nil means a client that verifies certificates with the
	// system's roots and follows no redirects.
	Client *http.Client
	// Log receives what a hook printed (an exec hook's output, at most a few KiB); may be nil.
	Log io.Writer
}

// outputLimit bounds how much of an exec hook's output reaches the log.
const outputLimit = 4 << 10

// Run runs h and returns why it failed, nil when it succeeded. A hook that outlives its
// timeout is cancelled and fails with "timed out".
func (r *Runner) Run(ctx context.Context, h *v1alpha1.HookHandler) error {
	timeout, err := time.ParseDuration(h.Timeout)
	if err != nil || timeout <= 0 {
		timeout, _ = time.ParseDuration(v1alpha1.DefaultHookTimeout)
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case h.Exec != nil:
		err = r.exec(hctx, h)
	case h.HTTPGet != nil:
		g := h.HTTPGet
		err = r.http(hctx, http.MethodGet, endpoint{g.Scheme, g.Host, g.Port.IntValue(), g.Path}, g.HTTPHeaders, "", nil)
	case h.HTTPPost != nil:
		p := h.HTTPPost
		err = r.http(hctx, http.MethodPost, endpoint{p.Scheme, p.Host, p.Port.IntValue(), p.Path}, p.HTTPHeaders, p.Body, p.Form)
	case h.TCPSocket != nil:
		err = r.tcp(hctx, h.TCPSocket)
	default:
		return errors.New("no action: set one of exec, httpGet, httpPost and tcpSocket")
	}
	if err != nil && hctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		return fmt.Errorf("%s: timed out after %s", Describe(h), timeout)
	}
	return err
}

// Describe names what h does, for status and logs: the kind and where, never a header or
// the body.
func Describe(h *v1alpha1.HookHandler) string {
	switch {
	case h.Exec != nil:
		return fmt.Sprintf("exec %q", firstWord(h.Exec.Command))
	case h.HTTPGet != nil:
		return "httpGet " + hostPort(h.HTTPGet.Host, h.HTTPGet.Port.IntValue())
	case h.HTTPPost != nil:
		return "httpPost " + hostPort(h.HTTPPost.Host, h.HTTPPost.Port.IntValue())
	case h.TCPSocket != nil:
		return "tcpSocket " + hostPort(h.TCPSocket.Host, h.TCPSocket.Port.IntValue())
	}
	return "hook"
}

func firstWord(cmd []string) string {
	if len(cmd) == 0 {
		return ""
	}
	return cmd[0]
}

func hostPort(host string, port int) string {
	if host == "" {
		host = "(target)"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func (r *Runner) exec(ctx context.Context, h *v1alpha1.HookHandler) error {
	if r.Exec == nil || r.Pod == "" {
		return fmt.Errorf("%s: no Pod of the target to run it in (the controller found none behind the target's Service)", Describe(h))
	}
	var out limitedBuffer
	err := r.Exec.Exec(ctx, r.Namespace, r.Pod, h.ContainerName, h.Exec.Command, &out, &out)
	if printed := strings.TrimRight(out.String(), "\n"); r.Log != nil && printed != "" {
		fmt.Fprintf(r.Log, "hook %s in pod %s printed:\n%s\n", Describe(h), r.Pod, printed)
	}
	if err != nil {
		// pods/exec reports an exit code as ExitStatus (client-go's CodeExitError), a local
		// process as ExitCode.
		var status interface{ ExitStatus() int }
		if errors.As(err, &status) {
			return fmt.Errorf("%s in pod %s: exit code %d", Describe(h), r.Pod, status.ExitStatus())
		}
		var code interface{ ExitCode() int }
		if errors.As(err, &code) && code.ExitCode() >= 0 {
			return fmt.Errorf("%s in pod %s: exit code %d", Describe(h), r.Pod, code.ExitCode())
		}
		return fmt.Errorf("%s in pod %s: %w", Describe(h), r.Pod, err)
	}
	return nil
}

// endpoint is where an HTTP hook goes.
type endpoint struct {
	scheme corev1.URIScheme
	host   string
	port   int
	path   string
}

func (r *Runner) http(ctx context.Context, method string, e endpoint, headers []v1alpha1.HTTPHeader, body string, form []v1alpha1.FormEntry) error {
	if e.host == "" {
		e.host = r.DefaultHost
	}
	u := url.URL{Scheme: strings.ToLower(string(e.scheme)), Host: net.JoinHostPort(e.host, strconv.Itoa(e.port)), Path: e.path}
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	where := method + " " + u.Scheme + "://" + u.Host + e.path
	var payload io.Reader
	contentType := ""
	switch {
	case len(form) > 0:
		v := url.Values{}
		for _, f := range form {
			v[f.Key] = append(v[f.Key], f.Values...)
		}
		payload, contentType = strings.NewReader(v.Encode()), "application/x-www-form-urlencoded"
	case body != "":
		payload = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), payload)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, h := range headers {
		v := h.Value
		if h.ValueFrom != nil && h.ValueFrom.SecretKeyRef != nil {
			ref := h.ValueFrom.SecretKeyRef
			if r.Secret == nil {
				return fmt.Errorf("%s: header %s: no access to Secrets", where, h.Name)
			}
			b, err := r.Secret(ctx, ref.Name, ref.Key)
			if err != nil {
				// The reader's error names the Secret and key, not the value.
				return fmt.Errorf("%s: header %s: %w", where, h.Name, err)
			}
			v = strings.TrimRight(string(b), "\r\n")
		}
		if strings.EqualFold(h.Name, "Host") {
			req.Host = v
			continue
		}
		req.Header.Add(h.Name, v)
	}
	c := r.Client
	if c == nil {
		c = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := c.Do(req)
	if err != nil {
		// url.Error repeats the URL, which is ours to say (without a query string).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("%s: %s", where, resp.Status)
	}
	return nil
}

func (r *Runner) tcp(ctx context.Context, t *v1alpha1.TCPSocketHook) error {
	host := t.Host
	if host == "" {
		host = r.DefaultHost
	}
	addr := net.JoinHostPort(host, strconv.Itoa(t.Port.IntValue()))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		return fmt.Errorf("tcpSocket %s: %w", addr, err)
	}
	return conn.Close()
}

// limitedBuffer keeps the last outputLimit bytes written to it; stdout and stderr write to it
// from two goroutines.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - outputLimit; extra > 0 {
		b.buf.Next(extra)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
