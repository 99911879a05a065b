package cugarmetrics_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
	"github.com/cugar-metrics/cugar-metrics/clients/go/internal/conformance"
)

// The conformance scenario passes, prints the field violation, and leaves on the server
// exactly what the cross-language harness checks.
func TestConformanceScenario(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	before := ingest(t, c)
	var out strings.Builder

	if err := conformance.Run(context.Background(), c, profile, &out); err != nil {
		t.Fatalf("scenario: %v\noutput:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "\nfield violation: execution.duration: ") {
		t.Errorf("output lacks the field violation line:\n%s", out.String())
	}
	assertCounts(t, c, profile, 3, 2, 1)
	assertIngestDelta(t, c, before, 3, 1, 2)
	d := dashboard(t, c, &metricsv1.GetDashboardRequest{Profile: profile})
	if et := d.GetErrorTypes(); len(et) != 1 || et[0].GetErrorType() != "ToolError" || et[0].GetCount() != 1 {
		t.Errorf("error types = %v, want [ToolError: 1]", et)
	}
	var tools []string
	for _, domain := range []string{"territory", "qualification", "engagement"} {
		for _, tr := range dashboard(t, c, &metricsv1.GetDashboardRequest{Domain: domain}).GetTools() {
			tools = append(tools, fmt.Sprintf("%s/%s calls=%d errors=%d", tr.GetDomain(), tr.GetTool(), tr.GetCalls(), tr.GetErrors()))
		}
	}
	want := []string{
		"territory/search_accounts calls=1 errors=0",
		"qualification/score_lead calls=1 errors=1",
		"engagement/send_email calls=1 errors=0",
	}
	if !slices.Equal(tools, want) {
		t.Errorf("tool rows = %q, want %q", tools, want)
	}
}
