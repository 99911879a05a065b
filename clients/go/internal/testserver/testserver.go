// Package testserver starts the real cugar-metrics server process for the Go client's
// tests, on ports chosen by the operating system.
package testserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server is a running cugar-metrics server process.
type Server struct {
	// GRPCAddr is the gRPC address, "127.0.0.1:PORT".
	GRPCAddr string
	// MetricsAddr is the Prometheus scrape address, "127.0.0.1:PORT".
	MetricsAddr string

	cmd  *exec.Cmd
	dir  string
	exit chan error
}

type readyFile struct {
	GRPCPort    int `json:"grpc_port"`
	MetricsPort int `json:"metrics_port"`
	PID         int `json:"pid"`
}

// Binary is the server command: $CUGAR_METRICS_BIN, or the repository's .venv
// installation found from dir (the test's working directory) upwards.
func Binary(dir string) (string, error) {
	if bin := os.Getenv("CUGAR_METRICS_BIN"); bin != "" {
		return bin, nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		bin := filepath.Join(d, ".venv", "bin", "cugar-metrics")
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("cugar-metrics server not found: run scripts/install-tools.sh or set CUGAR_METRICS_BIN")
		}
	}
}

// Start runs `cugar-metrics serve` on free ports (the gRPC one given by a "--grpc-port" in
// args, if there is one), with args added to its command line, and waits until its ready
// file appears.
func Start(timeout time.Duration, args ...string) (*Server, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	bin, err := Binary(wd)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cugar-metrics-go-test-")
	if err != nil {
		return nil, err
	}
	ready := filepath.Join(dir, "ready.json")
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	base := []string{"serve", "--host", "127.0.0.1", "--metrics-port", "0", "--ready-file", ready}
	if !slices.Contains(args, "--grpc-port") {
		// A port chosen by the system, unless the test needs a fixed one (a server that
		// replaces another on the same address).
		base = append(base, "--grpc-port", "0")
	}
	if !slices.Contains(args, "--auth-keys-file") {
		// An explicit authentication choice (without one the server is in protected mode).
		base = append(base, "--no-auth")
	} else if !slices.Contains(args, "--metrics-basic-auth-file") {
		// With API keys, /metrics must be guarded too or left open explicitly.
		base = append(base, "--metrics-open")
	}
	cmd := exec.Command(bin, append(base, args...)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{cmd: cmd, dir: dir, exit: make(chan error, 1)}
	go func() { s.exit <- cmd.Wait() }()

	deadline := time.Now().Add(timeout)
	for {
		var rf readyFile
		if data, err := os.ReadFile(ready); err == nil && json.Unmarshal(data, &rf) == nil && rf.GRPCPort > 0 {
			s.GRPCAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(rf.GRPCPort))
			s.MetricsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(rf.MetricsPort))
			return s, nil
		}
		select {
		case err := <-s.exit:
			return nil, fmt.Errorf("server exited before it was ready (%v); its log:\n%s", err, s.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-s.exit
			return nil, fmt.Errorf("server not ready after %s; its log:\n%s", timeout, s.Log())
		}
	}
}

// CreateKey runs `cugar-metrics keys create` to add a key for agent name with role to the
// keys file, and returns the key it prints.
func CreateKey(file, name, role string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	bin, err := Binary(wd)
	if err != nil {
		return "", err
	}
	var stderr strings.Builder
	cmd := exec.Command(bin, "keys", "create", "--file", file, "--name", name, "--role", role)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("keys create: %w: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// Metric returns the value of the sample named series (name and labels exactly as the
// server writes them, e.g. `cugar_rate_limited_total{role="recorder"}`) on /metrics, and
// whether it is there.
func (s *Server) Metric(series string) (float64, bool, error) {
	resp, err := http.Get("http://" + s.MetricsAddr + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	for line := range strings.Lines(string(body)) {
		if value, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			return v, err == nil, err
		}
	}
	return 0, false, nil
}

// Log returns what the server printed so far.
func (s *Server) Log() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(data)
}

// Pause stops the server process with SIGSTOP: its connections stay open and nothing on
// them is answered until Resume.
func (s *Server) Pause() error {
	return s.cmd.Process.Signal(syscall.SIGSTOP)
}

// Resume lets a paused server run again (SIGCONT).
func (s *Server) Resume() error {
	return s.cmd.Process.Signal(syscall.SIGCONT)
}

// Stop sends SIGTERM, waits for the server to drain and exit, and removes its files. It
// returns an error when the server does not exit 0 within timeout.
func (s *Server) Stop(timeout time.Duration) error {
	defer os.RemoveAll(s.dir)
	_ = s.Resume() // a paused server would not see the SIGTERM
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal server: %w", err)
	}
	select {
	case err := <-s.exit:
		if err != nil {
			return fmt.Errorf("server exited with %v; its log:\n%s", err, s.Log())
		}
		return nil
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		<-s.exit
		return fmt.Errorf("server did not exit within %s of SIGTERM", timeout)
	}
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago, for a server that
// must listen on a port known in advance ("--grpc-port").
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
