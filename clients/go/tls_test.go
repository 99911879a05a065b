package cugarmetrics_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	"github.com/cugar-metrics/cugar-metrics/clients/go/internal/testserver"
)

func newCA(t *testing.T, dir, name string) *testserver.CA {
	t.Helper()
	ca, err := testserver.NewCA(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, f func(string) (string, string, error), name string) (cert, key string) {
	t.Helper()
	cert, key, err := f(name)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// assertRecords checks that c records a new execution.
func assertRecords(t *testing.T, c *cugarmetrics.Client, id string) {
	t.Helper()
	got, err := c.Record(context.Background(), success(id, "go_tls", time.Second))
	if err != nil || got != cugarmetrics.ResultAccepted {
		t.Fatalf("Record = %v, %v; want %v, nil", got, err, cugarmetrics.ResultAccepted)
	}
}

// assertHandshakeFails checks that c's call fails with UNAVAILABLE and a message holding
// want.
func assertHandshakeFails(t *testing.T, c *cugarmetrics.Client, want string) {
	t.Helper()
	_, err := c.Record(context.Background(), success("go-tls-refused", "go_tls", time.Second))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), want) {
		t.Fatalf("Record error = %v, want UNAVAILABLE with %q", err, want)
	}
}

// closedAfterHandshake is how a client sees a server refuse its certificate under TLS 1.3:
// the client's side of the handshake completes, then the server closes the connection, so
// the client reads EOF where the server's HTTP/2 preface should be, or its next write
// fails. A refused connection, a timeout or a certificate the client itself rejects reads
// differently.
var closedAfterHandshake = regexp.MustCompile(
	`error reading server preface: (EOF|read: connection reset by peer)|write: (broken pipe|connection reset by peer)`)

// assertClientCertRefused checks that c's call fails with UNAVAILABLE because the server
// closed the connection after the client's TLS handshake, and that nothing was recorded.
func assertClientCertRefused(t *testing.T, c *cugarmetrics.Client) {
	t.Helper()
	_, err := c.Record(context.Background(), success("go-mtls-refused", "go_tls", time.Second))
	if status.Code(err) != codes.Unavailable || !closedAfterHandshake.MatchString(status.Convert(err).Message()) {
		t.Fatalf("Record error = %v, want UNAVAILABLE with a connection closed by the server after the handshake (%s)",
			err, closedAfterHandshake)
	}
}

// A server on TLS: the handshake succeeds with the CA that signed its certificate, an API
// key is sent over it, and the handshake fails with another CA.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	otherCA := newCA(t, dir, "other-ca")
	cert, key := issue(t, ca.IssueServer, "server")
	keys := filepath.Join(dir, "keys.json")
	recorderKey := createKey(t, keys, "go-tls", "recorder")
	srv := startServer(t, "--tls-cert", cert, "--tls-key", key, "--auth-keys-file", keys)

	t.Run("RightCAAndAPIKeyRecords", func(t *testing.T) {
		c := dial(t, srv.GRPCAddr, cugarmetrics.WithTLS(cugarmetrics.TLSConfig{RootCA: ca.CertFile}),
			cugarmetrics.WithAPIKey(recorderKey))
		assertRecords(t, c, "go-tls-1")
	})
	t.Run("WrongCAFails", func(t *testing.T) {
		c := dial(t, srv.GRPCAddr, cugarmetrics.WithTLS(cugarmetrics.TLSConfig{RootCA: otherCA.CertFile}),
			cugarmetrics.WithAPIKey(recorderKey))
		assertHandshakeFails(t, c, "certificate signed by unknown authority")
	})
}

// A server on mutual TLS: a client certificate from its client CA is let in, a client
// without one or with one from another CA is not.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	clientCA := newCA(t, dir, "client-ca")
	otherCA := newCA(t, dir, "other-ca")
	cert, key := issue(t, ca.IssueServer, "server")
	srv := startServer(t, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", clientCA.CertFile)
	defer func() {
		// Neither refused client got an execution recorded.
		clientCert, clientKey := issue(t, clientCA.IssueClient, "checker")
		c := dial(t, srv.GRPCAddr, cugarmetrics.WithTLS(cugarmetrics.TLSConfig{
			RootCA: ca.CertFile, ClientCert: clientCert, ClientKey: clientKey,
		}))
		if in := dashboard(t, c, nil).GetIngest(); in.GetAccepted() != 1 || in.GetDuplicate() != 0 {
			t.Errorf("server ingest accepted %d, duplicate %d; want 1, 0 (only go-mtls-1)", in.GetAccepted(), in.GetDuplicate())
		}
	}()

	t.Run("ClientCertFromClientCASucceeds", func(t *testing.T) {
		clientCert, clientKey := issue(t, clientCA.IssueClient, "agent")
		c := dial(t, srv.GRPCAddr, cugarmetrics.WithTLS(cugarmetrics.TLSConfig{
			RootCA: ca.CertFile, ClientCert: clientCert, ClientKey: clientKey,
		}))
		assertRecords(t, c, "go-mtls-1")
	})
	t.Run("NoClientCertFails", func(t *testing.T) {
		c := dial(t, srv.GRPCAddr, cugarmetrics.WithTLS(cugarmetrics.TLSConfig{RootCA: ca.CertFile}))
		assertClientCertRefused(t, c)
	})
	t.Run("ClientCertFromOtherCAFails", func(t *testing.T) {
		clientCert, clientKey := issue(t, otherCA.IssueClient, "stranger")
		c := dial(t, srv.GRPCAddr, cugarmetrics.WithTLS(cugarmetrics.TLSConfig{
			RootCA: ca.CertFile, ClientCert: clientCert, ClientKey: clientKey,
		}))
		assertClientCertRefused(t, c)
	})
}

// WithTLS checks its files when the client is created.
func TestTLSConfigIsCheckedAtNewClient(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	cert, key := issue(t, ca.IssueClient, "agent")
	for _, tc := range []struct {
		cfg  cugarmetrics.TLSConfig
		want string
	}{
		{cugarmetrics.TLSConfig{RootCA: filepath.Join(dir, "missing.crt")}, "no such file"},
		{cugarmetrics.TLSConfig{RootCA: key}, "holds no PEM certificate"},
		{cugarmetrics.TLSConfig{ClientCert: cert}, "give both or neither"},
		{cugarmetrics.TLSConfig{ClientCert: cert, ClientKey: ca.CertFile}, "TLS client certificate"},
	} {
		_, err := cugarmetrics.NewClient("127.0.0.1:1", cugarmetrics.WithTLS(tc.cfg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewClient(WithTLS(%+v)) error = %v, want one with %q", tc.cfg, err, tc.want)
		}
	}
}
