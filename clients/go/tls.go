package cugarmetrics

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"

	"google.golang.org/grpc/credentials"
)

// TLSConfig names the PEM files of a TLS connection to a server started with --tls-cert and
// --tls-key (and --tls-client-ca for mutual TLS).
type TLSConfig struct {
	// RootCA is a PEM file of the CA certificates the server's certificate must chain to;
	// empty: the system's roots.
	RootCA string
	// ClientCert and ClientKey are the PEM certificate chain and private key the client
	// presents to a server that requires mutual TLS; both or neither. They are read again
	// for each new connection, so rotated files are used without a restart; a pair that
	// does not load at that moment (a half-written file) is skipped and the previous one
	// is presented.
	ClientCert, ClientKey string
	// ServerName is the name the server's certificate must carry; empty: the target's host.
	ServerName string
}

// WithTLS connects over TLS, and mutual TLS when cfg has a client certificate. It replaces
// WithTransportCredentials (give one or the other). An API key (WithAPIKey) is then sent
// only over the secure connection.
func WithTLS(cfg TLSConfig) Option {
	return func(o *clientOptions) { o.tls = &cfg }
}

// transportCredentials builds the gRPC credentials of cfg, checking every file.
func (cfg TLSConfig) transportCredentials() (credentials.TransportCredentials, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
	if cfg.RootCA != "" {
		pem, err := os.ReadFile(cfg.RootCA)
		if err != nil {
			return nil, fmt.Errorf("cugarmetrics: TLS root CA: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cugarmetrics: TLS root CA %s holds no PEM certificate", cfg.RootCA)
		}
	}
	if (cfg.ClientCert == "") != (cfg.ClientKey == "") {
		return nil, errors.New("cugarmetrics: TLS client certificate and key go together: give both or neither")
	}
	if cfg.ClientCert != "" {
		pair := &clientPair{certFile: cfg.ClientCert, keyFile: cfg.ClientKey}
		if _, err := pair.get(nil); err != nil {
			return nil, err
		}
		conf.GetClientCertificate = pair.get
	}
	return credentials.NewTLS(conf), nil
}

// clientPair loads the client certificate for each handshake, keeping the last pair that
// loaded for when the files are caught mid-rotation.
type clientPair struct {
	certFile, keyFile string

	mu   sync.Mutex
	last *tls.Certificate
}

func (p *clientPair) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.last != nil {
			return p.last, nil
		}
		return nil, fmt.Errorf("cugarmetrics: TLS client certificate %s / key %s: %w", p.certFile, p.keyFile, err)
	}
	p.last = &pair
	return p.last, nil
}
