package cugarmetrics_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
	"github.com/cugar-metrics/cugar-metrics/clients/go/internal/testserver"
)

// startServer starts a server process of its own, with extra flags, for one test.
func startServer(t *testing.T, args ...string) *testserver.Server {
	t.Helper()
	s, err := testserver.Start(60*time.Second, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(15 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return s
}

// createKey adds a key for agent name with role to the keys file and returns it.
func createKey(t *testing.T, file, name, role string) string {
	t.Helper()
	key, err := testserver.CreateKey(file, name, role)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// dial creates a client of addr that tries each call once.
func dial(t *testing.T, addr string, opts ...cugarmetrics.Option) *cugarmetrics.Client {
	t.Helper()
	c, err := cugarmetrics.NewClient(addr, append([]cugarmetrics.Option{cugarmetrics.WithMaxAttempts(1)}, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// assertAuthError checks that err is an *AuthError with code and reason.
func assertAuthError(t *testing.T, err error, code codes.Code, reason string) *cugarmetrics.AuthError {
	t.Helper()
	var denied *cugarmetrics.AuthError
	if !errors.As(err, &denied) {
		t.Fatalf("error = %v (%T), want *AuthError", err, err)
	}
	if denied.Code != code || denied.Reason != reason || status.Code(err) != code {
		t.Errorf("AuthError code %v reason %q (status.Code %v), want %v %q", denied.Code, denied.Reason,
			status.Code(err), code, reason)
	}
	return denied
}

// With --auth-keys-file: no key or an unknown one is UNAUTHENTICATED with its reason, a
// recorder key records, and a reader key may read but not record.
func TestAPIKeyAuthentication(t *testing.T) {
	t.Parallel()
	keys := filepath.Join(t.TempDir(), "keys.json")
	recorderKey := createKey(t, keys, "go-recorder", "recorder")
	readerKey := createKey(t, keys, "go-reader", "reader")
	srv := startServer(t, "--auth-keys-file", keys)
	ctx := context.Background()
	e := success("go-auth-1", "go_auth", time.Second)

	t.Run("NoKeyIsUnauthenticated", func(t *testing.T) {
		_, err := dial(t, srv.GRPCAddr).Record(ctx, e)
		denied := assertAuthError(t, err, codes.Unauthenticated, cugarmetrics.ReasonMissingCredentials)
		want := "cugarmetrics: unauthenticated (MISSING_CREDENTIALS): this server requires an API key: " +
			"send metadata 'authorization: Bearer <key>'"
		if denied.Error() != want {
			t.Errorf("Error() = %q, want %q", denied.Error(), want)
		}
	})
	t.Run("UnknownKeyIsUnauthenticated", func(t *testing.T) {
		_, err := dial(t, srv.GRPCAddr, cugarmetrics.WithAPIKey("cgm_not-a-key")).Record(ctx, e)
		assertAuthError(t, err, codes.Unauthenticated, cugarmetrics.ReasonUnknownKey)
	})
	t.Run("RecorderKeyRecords", func(t *testing.T) {
		got, err := dial(t, srv.GRPCAddr, cugarmetrics.WithAPIKey(recorderKey+"\n")).Record(ctx, e)
		if err != nil || got != cugarmetrics.ResultAccepted {
			t.Fatalf("Record = %v, %v; want %v, nil", got, err, cugarmetrics.ResultAccepted)
		}
	})
	t.Run("ReaderKeyMayReadButNotRecord", func(t *testing.T) {
		c := dial(t, srv.GRPCAddr, cugarmetrics.WithAPIKey(readerKey))
		_, err := c.Record(ctx, e)
		denied := assertAuthError(t, err, codes.PermissionDenied, cugarmetrics.ReasonRoleNotAllowed)
		if denied.Metadata["role"] != "reader" {
			t.Errorf("ErrorInfo metadata = %v, want role reader", denied.Metadata)
		}
		d, err := c.Dashboard(ctx, &metricsv1.GetDashboardRequest{Profile: "go_auth"})
		if err != nil {
			t.Fatalf("Dashboard with a reader key: %v", err)
		}
		if got := d.GetExecutions().GetTotal(); got != 1 {
			t.Errorf("executions total = %d, want 1", got)
		}
	})
}

// A key that is empty or holds white space inside is refused before anything is sent.
func TestAPIKeyMustBePrintable(t *testing.T) {
	for _, key := range []string{"", " \n", "cgm_a b", "cgm_\x00"} {
		if _, err := cugarmetrics.NewClient("127.0.0.1:1", cugarmetrics.WithAPIKey(key)); err == nil {
			t.Errorf("NewClient(WithAPIKey(%q)) succeeded, want an error", key)
		}
	}
}
