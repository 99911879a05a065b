// Package testserver starts the real cugar-metrics server process for the Go client's
// tests, on ports chosen by the operating system.
package testserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// Start runs `cugar-metrics serve` on free ports and waits until its ready file appears.
func Start(timeout time.Duration) (*Server, error) {
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
	cmd := exec.Command(bin, "serve", "--host", "127.0.0.1", "--grpc-port", "0", "--metrics-port", "0",
		"--ready-file", ready)
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

// Log returns what the server printed so far.
func (s *Server) Log() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(data)
}

// Stop sends SIGTERM, waits for the server to drain and exit, and removes its files. It
// returns an error when the server does not exit 0 within timeout.
func (s *Server) Stop(timeout time.Duration) error {
	defer os.RemoveAll(s.dir)
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
