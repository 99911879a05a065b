// Command otlp-go is an agent instrumented with the OpenTelemetry Go SDK whose OTLP gRPC
// exporter sends its GenAI spans to cugar-metrics: no cugar-metrics client is involved.
//
//	go run . -endpoint localhost:50051 -runs 3
//
// Each run is an `invoke_agent` span with a `chat` span (gen_ai.usage.* tokens) and an
// `execute_tool` span under it; the children are flushed in an export of their own before
// their agent span ends, as a long-running agent's would be. The last run's tool call fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func main() {
	endpoint := flag.String("endpoint", "localhost:50051", "cugar-metrics gRPC (or --otlp-port) address")
	runs := flag.Int("runs", 3, "agent runs to trace")
	apiKey := flag.String("api-key", os.Getenv("CUGAR_METRICS_API_KEY"), "recorder API key, if the server has --auth-keys-file")
	flag.Parse()
	if err := run(*endpoint, *runs, *apiKey); err != nil {
		log.Fatal(err)
	}
}

func run(endpoint string, runs int, apiKey string) error {
	ctx := context.Background()
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure()}
	if apiKey != "" {
		opts = append(opts, otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + apiKey}))
	}
	exporter, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return fmt.Errorf("exporter: %w", err)
	}
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter, sdktrace.WithBatchTimeout(time.Minute)))
	tracer := provider.Tracer("otlp-go-agent")
	for i := 0; i < runs; i++ {
		agentCtx, agent := tracer.Start(ctx, "invoke_agent sales_rep")
		agent.SetAttributes(
			attribute.String("gen_ai.operation.name", "invoke_agent"),
			attribute.String("gen_ai.agent.name", "go_agent"),
		)
		_, chat := tracer.Start(agentCtx, "chat gpt-4o")
		chat.SetAttributes(
			attribute.String("gen_ai.operation.name", "chat"),
			attribute.String("gen_ai.provider.name", "openai"),
			attribute.String("gen_ai.request.model", "gpt-4o"),
			attribute.Int("gen_ai.usage.input_tokens", 400),
			attribute.Int("gen_ai.usage.output_tokens", 50),
		)
		chat.End()
		_, tool := tracer.Start(agentCtx, "execute_tool search_accounts")
		tool.SetAttributes(
			attribute.String("gen_ai.operation.name", "execute_tool"),
			attribute.String("gen_ai.tool.name", "search_accounts"),
			attribute.String("cugar.domain", "territory"),
		)
		if i == runs-1 {
			tool.SetAttributes(attribute.String("error.type", "timeout"))
			tool.SetStatus(codes.Error, "timeout")
		}
		tool.End()
		// The children leave in an export of their own, before their agent span ends.
		if err := provider.ForceFlush(ctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		agent.End()
	}
	return errors.Join(provider.ForceFlush(ctx), provider.Shutdown(ctx))
}
