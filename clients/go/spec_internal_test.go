package cugarmetrics

import (
	"bytes"
	"os"
	"slices"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/codes"
)

// spec is clients/spec.yaml, the defaults every cugar-metrics client shares.
type spec struct {
	Version int `yaml:"version"`
	Call    struct {
		DeadlineSeconds        float64  `yaml:"deadline_seconds"`
		AttemptDeadlineSeconds float64  `yaml:"attempt_deadline_seconds"`
		MaxAttempts            int      `yaml:"max_attempts"`
		InitialBackoffSeconds  float64  `yaml:"initial_backoff_seconds"`
		MaxBackoffSeconds      float64  `yaml:"max_backoff_seconds"`
		BackoffMultiplier      float64  `yaml:"backoff_multiplier"`
		RetryableCodes         []string `yaml:"retryable_codes"`
	} `yaml:"call"`
	Connection struct {
		InitialReconnectBackoffSeconds float64 `yaml:"initial_reconnect_backoff_seconds"`
		MaxReconnectBackoffSeconds     float64 `yaml:"max_reconnect_backoff_seconds"`
		LoadBalancingPolicy            string  `yaml:"load_balancing_policy"`
	} `yaml:"connection"`
	RateLimit struct {
		RetryInfoCapSeconds float64 `yaml:"retry_info_cap_seconds"`
		RateLimitRetries    int     `yaml:"rate_limit_retries"`
	} `yaml:"rate_limit"`
	Recorder struct {
		BufferSize                 int      `yaml:"buffer_size"`
		BatchSize                  int      `yaml:"batch_size"`
		FlushIntervalSeconds       float64  `yaml:"flush_interval_seconds"`
		CloseTimeoutSeconds        float64  `yaml:"close_timeout_seconds"`
		RetryInitialBackoffSeconds float64  `yaml:"retry_initial_backoff_seconds"`
		RetryMaxBackoffSeconds     float64  `yaml:"retry_max_backoff_seconds"`
		RetryBackoffMultiplier     float64  `yaml:"retry_backoff_multiplier"`
		RetryableCodes             []string `yaml:"retryable_codes"`
	} `yaml:"recorder"`
	Watch struct {
		IntervalSeconds                float64  `yaml:"interval_seconds"`
		ReconnectCodes                 []string `yaml:"reconnect_codes"`
		ReconnectInitialBackoffSeconds float64  `yaml:"reconnect_initial_backoff_seconds"`
		ReconnectMaxBackoffSeconds     float64  `yaml:"reconnect_max_backoff_seconds"`
		ReconnectBackoffMultiplier     float64  `yaml:"reconnect_backoff_multiplier"`
	} `yaml:"watch"`
}

func readSpec(t *testing.T) spec {
	t.Helper()
	data, err := os.ReadFile("../spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var s spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a key added to the spec and not checked here fails the test
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("clients/spec.yaml: %v", err)
	}
	if s.Version != 1 {
		t.Fatalf("clients/spec.yaml version %d, this test reads version 1", s.Version)
	}
	return s
}

func seconds(f float64) time.Duration {
	return time.Duration(f * float64(time.Second))
}

// specCodes turns the spec's code names (UNAVAILABLE, ...) into gRPC codes.
func specCodes(t *testing.T, names []string) []codes.Code {
	t.Helper()
	var cs []codes.Code
	for _, n := range names {
		var c codes.Code
		if err := c.UnmarshalJSON([]byte(`"` + n + `"`)); err != nil {
			t.Fatalf("clients/spec.yaml: status code %q: %v", n, err)
		}
		cs = append(cs, c)
	}
	return cs
}

// Every default of the Go client is the one clients/spec.yaml gives.
func TestDefaultsMatchSpec(t *testing.T) {
	s := readSpec(t)
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"call.deadline_seconds", DefaultTimeout, seconds(s.Call.DeadlineSeconds)},
		{"call.attempt_deadline_seconds", DefaultAttemptTimeout, seconds(s.Call.AttemptDeadlineSeconds)},
		{"call.max_attempts", DefaultMaxAttempts, s.Call.MaxAttempts},
		{"call.initial_backoff_seconds", DefaultInitialBackoff, seconds(s.Call.InitialBackoffSeconds)},
		{"call.max_backoff_seconds", DefaultMaxBackoff, seconds(s.Call.MaxBackoffSeconds)},
		{"call.backoff_multiplier", DefaultBackoffMultiplier, s.Call.BackoffMultiplier},
		{"call.retryable_codes", retryableCodes, specCodes(t, s.Call.RetryableCodes)},
		{"connection.initial_reconnect_backoff_seconds", DefaultInitialReconnectBackoff, seconds(s.Connection.InitialReconnectBackoffSeconds)},
		{"connection.max_reconnect_backoff_seconds", DefaultMaxReconnectBackoff, seconds(s.Connection.MaxReconnectBackoffSeconds)},
		{"connection.load_balancing_policy", LoadBalancingPolicy, s.Connection.LoadBalancingPolicy},
		{"rate_limit.retry_info_cap_seconds", MaxRetryDelay, seconds(s.RateLimit.RetryInfoCapSeconds)},
		{"rate_limit.rate_limit_retries", DefaultRateLimitRetries, s.RateLimit.RateLimitRetries},
		{"recorder.buffer_size", DefaultBufferSize, s.Recorder.BufferSize},
		{"recorder.batch_size", DefaultBatchSize, s.Recorder.BatchSize},
		{"recorder.flush_interval_seconds", DefaultFlushInterval, seconds(s.Recorder.FlushIntervalSeconds)},
		{"recorder.close_timeout_seconds", DefaultCloseTimeout, seconds(s.Recorder.CloseTimeoutSeconds)},
		{"recorder.retry_initial_backoff_seconds", DefaultRecorderInitialBackoff, seconds(s.Recorder.RetryInitialBackoffSeconds)},
		{"recorder.retry_max_backoff_seconds", DefaultRecorderMaxBackoff, seconds(s.Recorder.RetryMaxBackoffSeconds)},
		{"recorder.retry_backoff_multiplier", DefaultRecorderBackoffMultiplier, s.Recorder.RetryBackoffMultiplier},
		{"recorder.retryable_codes", recorderRetryableCodes, specCodes(t, s.Recorder.RetryableCodes)},
		{"watch.interval_seconds", DefaultWatchInterval, seconds(s.Watch.IntervalSeconds)},
		{"watch.reconnect_codes", watchReconnectCodes, specCodes(t, s.Watch.ReconnectCodes)},
		{"watch.reconnect_initial_backoff_seconds", DefaultWatchReconnectInitialBackoff, seconds(s.Watch.ReconnectInitialBackoffSeconds)},
		{"watch.reconnect_max_backoff_seconds", DefaultWatchReconnectMaxBackoff, seconds(s.Watch.ReconnectMaxBackoffSeconds)},
		{"watch.reconnect_backoff_multiplier", DefaultWatchReconnectBackoffMultiplier, s.Watch.ReconnectBackoffMultiplier},
	} {
		equal := false
		switch got := c.got.(type) {
		case []codes.Code:
			equal = slices.Equal(got, c.want.([]codes.Code))
		default:
			equal = c.got == c.want
		}
		if !equal {
			t.Errorf("%s: the Go client has %v, clients/spec.yaml says %v", c.key, c.got, c.want)
		}
	}
}

// The defaults above are the ones a new Client and Recorder actually use.
func TestNewClientAndRecorderUseTheDefaults(t *testing.T) {
	c, err := NewClient("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.retryInfoCap != MaxRetryDelay {
		t.Errorf("client RetryInfo cap %s, want %s", c.retryInfoCap, MaxRetryDelay)
	}
	r := NewRecorder(c)
	o := r.opts
	_ = r.Close(t.Context())
	if o.batchSize != DefaultBatchSize || o.bufferSize != DefaultBufferSize ||
		o.flushInterval != DefaultFlushInterval || o.closeTimeout != DefaultCloseTimeout {
		t.Errorf("recorder options %+v, want the defaults", o)
	}
	if got, want := serviceConfig(), `{"loadBalancingConfig":[{"round_robin":{}}]}`; got != want {
		t.Errorf("service config %s, want %s", got, want)
	}
	p := connectParams()
	if p.Backoff.BaseDelay != DefaultInitialReconnectBackoff || p.Backoff.MaxDelay != DefaultMaxReconnectBackoff {
		t.Errorf("reconnect backoff %+v, want %s to %s", p.Backoff, DefaultInitialReconnectBackoff, DefaultMaxReconnectBackoff)
	}
}

// A watch reopens its stream after 0.2 s, then twice as long while reopening fails, at most
// 5 s (spec: watch.reconnect_*), and WatchDashboard fills in the spec's interval.
func TestWatchUsesTheSpecDefaults(t *testing.T) {
	s := readSpec(t)
	want := []time.Duration{200, 400, 800, 1600, 3200, 5000, 5000, 5000}
	for failures, ms := range want {
		if got := watchBackoff(failures); got != ms*time.Millisecond {
			t.Errorf("watchBackoff(%d) = %s, want %s", failures, got, ms*time.Millisecond)
		}
	}
	if got, max := watchBackoff(1000), seconds(s.Watch.ReconnectMaxBackoffSeconds); got != max {
		t.Errorf("watchBackoff(1000) = %s, want the maximum %s", got, max)
	}
	c, err := NewClient("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := c.WatchDashboard(t.Context(), nil)
	defer w.Close()
	if got := w.req.GetInterval().AsDuration(); got != seconds(s.Watch.IntervalSeconds) {
		t.Errorf("a watch without an interval asks for %s, want %s", got, seconds(s.Watch.IntervalSeconds))
	}
	if !w.opts.reconnect {
		t.Error("a watch reconnects by default")
	}
}
