package cugarmetrics_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
	"github.com/cugar-metrics/cugar-metrics/clients/go/internal/testserver"
)

// server is the real cugar-metrics server process the tests talk to.
var server *testserver.Server

// runID keeps the profiles and ids of one run apart from those of an earlier run.
var runID = strings.ToLower(rand.Text()[:6])

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	server, err = testserver.Start(60 * time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the cugar-metrics server: %v\n", err)
		return 1
	}
	code := m.Run()
	if err := server.Stop(15 * time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "server shutdown: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// name returns a label-valid name unique to this test and run, e.g. "go_ab12cd_Record".
func name(t *testing.T, prefix string) string {
	n := strings.NewReplacer("/", "_", "#", "_").Replace(t.Name())
	n = strings.TrimPrefix(n, "Test")
	s := fmt.Sprintf("%s_%s_%s", prefix, runID, n)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

func newClient(t *testing.T, opts ...cugarmetrics.Option) *cugarmetrics.Client {
	t.Helper()
	c, err := cugarmetrics.NewClient(server.GRPCAddr, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dashboard(t *testing.T, c *cugarmetrics.Client, req *metricsv1.GetDashboardRequest) *metricsv1.GetDashboardResponse {
	t.Helper()
	d, err := c.Dashboard(context.Background(), req)
	if err != nil {
		t.Fatalf("Dashboard(%v): %v", req, err)
	}
	return d
}

// ingest returns the server's ingest counts (they cover every profile).
func ingest(t *testing.T, c *cugarmetrics.Client) [3]uint64 {
	t.Helper()
	in := dashboard(t, c, nil).GetIngest()
	return [3]uint64{in.GetAccepted(), in.GetDuplicate(), in.GetRejected()}
}

// assertIngestDelta checks what the Record RPCs did since before: accepted, duplicate,
// rejected.
func assertIngestDelta(t *testing.T, c *cugarmetrics.Client, before [3]uint64, accepted, duplicate, rejected uint64) {
	t.Helper()
	after := ingest(t, c)
	got := [3]uint64{after[0] - before[0], after[1] - before[1], after[2] - before[2]}
	if want := [3]uint64{accepted, duplicate, rejected}; got != want {
		t.Errorf("ingest delta (accepted, duplicate, rejected) = %v, want %v", got, want)
	}
}

func assertCounts(t *testing.T, c *cugarmetrics.Client, profile string, total, succeeded, failed uint64) {
	t.Helper()
	ex := dashboard(t, c, &metricsv1.GetDashboardRequest{Profile: profile}).GetExecutions()
	got := [3]uint64{ex.GetTotal(), ex.GetSucceeded(), ex.GetFailed()}
	if want := [3]uint64{total, succeeded, failed}; got != want {
		t.Errorf("dashboard %s executions (total, succeeded, failed) = %v, want %v", profile, got, want)
	}
}
