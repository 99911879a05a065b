// Command conformance runs the cugar-metrics client conformance scenario against a server:
//
//	conformance --target HOST:PORT --profile P
//
// It exits 0 when every answer matches, and 1 with a message naming the first mismatch.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	"github.com/cugar-metrics/cugar-metrics/clients/go/internal/conformance"
)

func main() {
	target := flag.String("target", "", "the server's gRPC address, HOST:PORT")
	profile := flag.String("profile", "", "the profile to record under, also the execution_id prefix")
	flag.Parse()
	if *target == "" || *profile == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: conformance --target HOST:PORT --profile P")
		os.Exit(2)
	}
	if err := run(*target, *profile); err != nil {
		fmt.Fprintf(os.Stderr, "conformance: FAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("conformance: OK")
}

func run(target, profile string) error {
	c, err := cugarmetrics.NewClient(target)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return conformance.Run(ctx, c, profile, os.Stdout)
}
