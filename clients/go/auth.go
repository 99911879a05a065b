package cugarmetrics

import (
	"context"
	"errors"
	"strings"
	"unicode"

	"google.golang.org/grpc/credentials"
)

// The ErrorInfo reasons of the server's UNAUTHENTICATED and PERMISSION_DENIED answers, in
// AuthError.Reason.
const (
	// ReasonMissingCredentials: the call carried no authorization metadata.
	ReasonMissingCredentials = "MISSING_CREDENTIALS"
	// ReasonMalformedCredentials: the authorization metadata is not "Bearer <key>".
	ReasonMalformedCredentials = "MALFORMED_CREDENTIALS"
	// ReasonUnknownKey: the server's keys file has no such key.
	ReasonUnknownKey = "UNKNOWN_KEY"
	// ReasonRevokedKey: the key was revoked.
	ReasonRevokedKey = "REVOKED_KEY"
	// ReasonRoleNotAllowed: the key's role may not call the method (PERMISSION_DENIED).
	ReasonRoleNotAllowed = "ROLE_NOT_ALLOWED"
)

// WithAPIKey sends key as "authorization: Bearer <key>" metadata on every call, through
// the connection's per-call credentials. Create keys with `cugar-metrics keys create`;
// surrounding white space (the newline of a key read from a file) is ignored. Over TLS
// (WithTLS, or TLS transport credentials) gRPC refuses to send the key on a connection that
// is not secure; over plaintext, the default, the key crosses the network in clear, so use
// plaintext only on a trusted network.
func WithAPIKey(key string) Option {
	return func(o *clientOptions) { o.apiKey = &key }
}

// apiKeyCredentials are the per-call credentials that carry an API key.
type apiKeyCredentials struct {
	header  string
	private bool
}

func newAPIKeyCredentials(key string, private bool) (*apiKeyCredentials, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, errors.New("cugarmetrics: the API key is empty")
	}
	if strings.IndexFunc(key, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsGraphic(r) || r == ' ' }) >= 0 {
		return nil, errors.New("cugarmetrics: the API key holds white space or characters that are not printable ASCII")
	}
	return &apiKeyCredentials{header: "Bearer " + key, private: private}, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *apiKeyCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": c.header}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: true when the client
// was configured with TLS, so that the key is never sent on a connection that is not.
func (c *apiKeyCredentials) RequireTransportSecurity() bool {
	return c.private
}

var _ credentials.PerRPCCredentials = (*apiKeyCredentials)(nil)
